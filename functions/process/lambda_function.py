"""Process: one SQS poller loop. Polls its queue until the invocation's time runs low, then invokes itself again.

It also answers `register`'s handler check, `{"check_handler": "python:module:function"}` invoked synchronously:
`{"ok": bool, "error": str}`, whether the target imports here, with this function's code, layers and environment
(where the loop will import it), not the operator's machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqsloops import defaults
from sqsloops.errors import ConfigError, HandlerError
from sqsloops.handlers import PYTHON, resolve_python, validate_handler
from sqsloops.jobs.root import JobsRoot
from sqsloops.log import logger
from sqsloops.loop import LoopPayload, clipped, run_loop
from sqsloops.root import Root

MALFORMED_EVENT = "malformed_event"
CHECK_HANDLER = "check_handler"  # sqsloops.ops.handler_check.CHECK_EVENT_KEY (the runtime does not import ops/)


@functools.cache
def root() -> Root:
    """Built on the first invocation, then reused (with the registration cache) by this execution environment."""
    return JobsRoot.from_env()


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, root)


def handle(event: Any, context: Any, make_root: Callable[[], Root]) -> dict[str, Any]:
    """Never raises for an event it cannot use: retrying it could not help. A malformed event builds nothing."""
    if isinstance(event, dict) and CHECK_HANDLER in event:
        return check_handler(event[CHECK_HANDLER])
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
        request_id=getattr(context, "aws_request_id", None),
    )
    return {**payload.as_dict(), **result.as_dict()}


def check_handler(handler: Any) -> dict[str, Any]:
    """Whether a python: handler imports in this environment; never raises (the answer says what went wrong)."""
    if not isinstance(handler, str) or len(handler) > defaults.PAYLOAD_TEXT_MAX_CHARS:
        return {"ok": False, "error": f"check_handler must be a handler string, got {clipped(repr(handler), 100)}"}
    try:
        spec = validate_handler(handler)
        if spec.kind != PYTHON:
            return {"ok": False, "error": f"only python: handlers are checked here, got {clipped(handler, 200)}"}
        resolve_python(spec.target)
    except (ConfigError, HandlerError) as exc:
        return {"ok": False, "error": clipped(str(exc), 500)}
    logger.info("handler check passed", extra={"handler": handler})
    return {"ok": True, "error": ""}
