"""Scale-up and scale-down: SNS delivers a depth alarm's notification; move the loop count toward the backlog.

Two functions (one per topic) share this code: `scale_up` acts on ALARM, `scale_down` on ALARM->OK.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqsloops.root import Root


@functools.cache
def root() -> Root:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    return Root.from_env()


def scale_up(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add loops up to what the backlog calls for. Never raises for a message it cannot use: SNS would retry it."""
    return handle(event, context, root, up=True)


def scale_down(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """On ALARM->OK, stop loops the backlog no longer needs (never below min_loops)."""
    return handle(event, context, root, up=False)


def handle(event: dict[str, Any], context: Any, make_root: Callable[[], Root], *, up: bool) -> dict[str, Any]:
    """Every record acted on in its own guard; bad records and failed ones are counted beside the results."""
    results = make_root().alarm_scaling.on_event(event, up=up)
    return {
        "results": [result.as_dict() for result in results],
        "bad_records": sum(result.bad_record for result in results),
        "errors": sum(result.action == "error" for result in results),
    }
