"""Process: one SQS poller loop. Polls its queue until the invocation's time runs low, then invokes itself again."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqsloops.errors import ConfigError
from sqsloops.log import logger
from sqsloops.loop import LoopPayload, clipped, run_loop
from sqsloops.root import Root

MALFORMED_EVENT = "malformed_event"


@functools.cache
def root() -> Root:
    """Built on the first invocation, then reused (with the registration cache) by this execution environment."""
    return Root.from_env()


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, root)


def handle(event: Any, context: Any, make_root: Callable[[], Root]) -> dict[str, Any]:
    """Never raises for an event it cannot use: retrying it could not help. A malformed event builds nothing."""
    try:
        payload = LoopPayload.parse(event)
    except ConfigError as exc:
        error = clipped(str(exc))
        logger.error("malformed process event; ignoring it", extra={"error": error, "event": clipped(repr(event))})
        return {"reason": MALFORMED_EVENT, "recursed": False, "error": error}
    r: Root = make_root()
    result = run_loop(
        payload,
        remaining_ms=context.get_remaining_time_in_millis,
        settings=r.settings,
        registry=r.cached_registry,
        tokens=r.tokens,
        sqs=r.sqs,
        receive_sqs=r.clients.sqs_receive,
        dispatchers=r.dispatchers,
        launcher=r.launcher,
        clock=r.clock,
    )
    return {**payload.as_dict(), **result.as_dict()}
