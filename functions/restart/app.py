"""Restart: every minute (EventBridge schedule), reconcile every queue's loop count and restart stale loops."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqsloops.restart import restart
from sqsloops.root import Root


@functools.cache
def root() -> Root:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    return Root.from_env()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, root)


def handle(event: dict[str, Any], context: Any, make_root: Callable[[], Root]) -> dict[str, Any]:
    """The event (a Scheduled Event) carries nothing we need: every run looks at the whole table."""
    r = make_root()
    summary = restart(
        registry=r.registry,
        tokens=r.tokens,
        sqs=r.sqs,
        fleet=r.fleet,
        launcher=r.launcher,
        stale_after_s=r.settings.stale_after_s,
        clock=r.clock,
    )
    return summary.as_dict()
