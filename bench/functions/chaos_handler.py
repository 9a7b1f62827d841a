"""The chaos benchmark's python: handler (`python:bench.functions.chaos_handler:handle`), in the process function.

It reaches the workers in a layer (bench.chaos.CHAOS_HANDLER_LAYER), so it imports only the standard library.
Each body is JSON `{"seq": N, "fate": "ok" | "transient" | "poison", "log": PATH}`: a transient message fails
on its first receive and succeeds after, a poison one always fails (SQS moves it to the DLQ after
maxReceiveCount receives). Every success appends `seq` to `log` in one O_APPEND write, so loops in several
worker processes share the file; counting lines against distinct seqs tells processed from duplicated.
"""

from __future__ import annotations

import json
import os
from typing import Any


class TransientError(Exception):
    """Fails this receive only."""


class PoisonError(Exception):
    """Fails every receive."""


def handle(record: dict[str, Any]) -> None:
    body = json.loads(record["body"])
    if body["fate"] == "poison":
        raise PoisonError(f"message {body['seq']} always fails")
    if body["fate"] == "transient" and int(record["attributes"]["ApproximateReceiveCount"]) <= 1:
        raise TransientError(f"message {body['seq']} fails on its first receive")
    fd = os.open(body["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{body['seq']}\n".encode())
    finally:
        os.close(fd)
