"""Restart: every minute (EventBridge schedule), reconcile every queue's loop count, restart stale loops and sweep the
catalog's cron jobs for missed runs; and, as the process function's OnFailure destination, revive a loop whose
invocation failed (sqsloops.restart.revive)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqsloops.jobs.root import JobsRoot
from sqsloops.log import logger
from sqsloops.restart import FailedInvocation, restart, revive
from sqsloops.root import Root


@functools.cache
def root() -> Root:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    return JobsRoot.from_env()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, root)


def handle(event: dict[str, Any], context: Any, make_root: Callable[[], Root]) -> dict[str, Any]:
    """A Lambda destination record (the process function's OnFailure): revive that one loop at once. Any other event
    (the schedule's, which carries nothing we need): reconcile and sweep the whole table, then sweep for missed cron
    runs (a JobsRoot on a stack with a Jobs table). Neither stops the other; a failed loop sweep is raised after."""
    r = make_root()
    if FailedInvocation.is_record(event):
        return {"revival": revive(event, registry=r.registry, tokens=r.tokens, launcher=r.launcher).as_dict()}
    failure: Exception | None = None
    try:
        result = restart(
            registry=r.registry,
            tokens=r.tokens,
            sqs=r.sqs,
            fleet=r.fleet,
            launcher=r.launcher,
            stale_after_s=r.settings.stale_after_s,
            clock=r.clock,
        ).as_dict()
    except Exception as exc:  # the missed-run sweep still runs; Lambda still counts the error (RestartErrorsAlarm)
        logger.exception("restart sweep of loops failed")
        failure, result = exc, {}
    missed = r.sweep_missed_runs() if isinstance(r, JobsRoot) else None  # never raises
    if failure is not None:
        raise failure
    return result if missed is None else {**result, "missed_runs": missed.as_dict()}
