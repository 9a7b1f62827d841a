"""In-process handlers for demos and benchmarks: register them as `python:sqsloops.examples:NAME`."""

from __future__ import annotations

import json
import os
from typing import Any

from sqsloops.clock import SYSTEM_CLOCK

WORK_S = 0.020
LEDGER_ENV = "SQSLOOPS_LEDGER_PATH"  # where `ledger` appends one line per processed message


def noop(record: dict[str, Any]) -> None:
    """Accept every message: measures the loop's own overhead."""


def work_20ms(record: dict[str, Any]) -> None:
    """Spend ~20 ms per message, like a handler waiting on a database or an HTTP call."""
    SYSTEM_CLOCK.sleep(WORK_S)


def ledger(record: dict[str, Any]) -> None:
    """work_20ms, then append the message's identity to the file named by $SQSLOOPS_LEDGER_PATH.

    The identity is the body's "seq" when the body is a JSON object that has one (what the demo sends), else the
    message id. One line per success, duplicates included: counting the lines against the distinct values tells
    processed from redelivered. Several loops (processes) append at once: one O_APPEND write per line keeps lines
    whole. Without the variable the handler only works.
    """
    work_20ms(record)
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    line = f"{ledger_identity(record)}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def ledger_identity(record: dict[str, Any]) -> str:
    """The body's "seq" if it has one, else the message id; never contains a newline."""
    try:
        body = json.loads(record.get("body", ""))
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and "seq" in body:
        return " ".join(str(body["seq"]).split())
    return " ".join(str(record.get("messageId", "")).split())
