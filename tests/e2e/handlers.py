"""Handlers the e2e tests register as `python:tests.e2e.handlers:NAME`: they run inside the process function's workers.

A worker finds this module in the test layer the e2e stack attaches to the process function (conftest.py:
TEST_HANDLERS_LAYER), so it imports only the standard library. Every message body is JSON,
`{"id": ..., "log": PATH, ...}`; a handler appends one JSON line per handled message to `log` with a single
O_APPEND write, so loops in several worker processes can share one file. The test reads it back with `read_log`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

SLOW_S = 0.04  # per message: a burst outlives one alarm period on a single loop, so scaling up has work to do
BLOCK_MAX_S = 30.0  # a blocked handler gives up by itself if the test never kills it


def body_of(message: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message["body"])
    return body


def append_line(path: str | Path, entry: dict[str, Any]) -> None:
    """One write of one line: atomic with O_APPEND, whichever process writes."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, json.dumps(entry).encode() + b"\n")
    finally:
        os.close(fd)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Every entry written so far (none when the file does not exist yet)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


def record(message: dict[str, Any]) -> None:
    """Accept the message and say so: its id, SQS message id, receive count and the worker's pid."""
    body = body_of(message)
    append_line(
        body["log"],
        {
            "id": body["id"],
            "message_id": message["messageId"],
            "receive_count": int(message["attributes"]["ApproximateReceiveCount"]),
            "pid": os.getpid(),
        },
    )


def slow(message: dict[str, Any]) -> None:
    """Like `record`, after SLOW_S of work."""
    time.sleep(SLOW_S)
    record(message)


def blocking(message: dict[str, Any]) -> None:
    """While the file `gate` exists: announce this worker's pid in `blocked_log`, wait for the gate to go, record.

    Lets a test hold a loop in the middle of a batch for as long as it needs (to kill its execution environment),
    with no timing assumptions.
    """
    body = body_of(message)
    gate = body.get("gate")
    if gate and os.path.exists(gate):
        append_line(body["blocked_log"], {"id": body["id"], "pid": os.getpid()})
        give_up_at = time.monotonic() + BLOCK_MAX_S
        while os.path.exists(gate) and time.monotonic() < give_up_at:
            time.sleep(0.05)
    record(message)
