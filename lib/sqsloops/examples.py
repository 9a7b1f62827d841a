"""In-process handlers for demos and benchmarks: register them as `python:sqsloops.examples:NAME`."""

from __future__ import annotations

from typing import Any

from sqsloops.clock import SYSTEM_CLOCK

WORK_S = 0.020


def noop(record: dict[str, Any]) -> None:
    """Accept every message: measures the loop's own overhead."""


def work_20ms(record: dict[str, Any]) -> None:
    """Spend ~20 ms per message, like a handler waiting on a database or an HTTP call."""
    SYSTEM_CLOCK.sleep(WORK_S)
