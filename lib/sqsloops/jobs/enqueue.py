"""`sqsloops.jobs.enqueue(name, args)` and `enqueue_many`: sending by name through the process's enqueuer.

Kept apart from jobs/client.py so that importing these (and `sqsloops.jobs`) imports no AWS SDK: the enqueuer is
whatever the composition root installed (`JobClient.install()`, or the eager test mode's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqsloops.jobs.context import current_enqueuer

if TYPE_CHECKING:
    from sqsloops.jobs.client import EnqueueResult, JobCall
    from sqsloops.jobs.durations import DurationLike


def enqueue(
    name: str,
    args: Sequence[Any] | Mapping[str, Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    delay: DurationLike | None = None,
    run_at: datetime | None = None,
    key: str | None = None,
    id: str | None = None,
) -> Any:
    """Send the job named `name`; `args` is a list of positional arguments, or a mapping of keyword arguments
    (then `kwargs` must be None). Returns the enqueuer's handle."""
    positional: list[Any] = []
    if isinstance(args, Mapping):
        if kwargs is not None:
            raise TypeError("give keyword arguments once: as args (a mapping) or as kwargs")
        kwargs = args
    else:
        positional = list(args)
    return current_enqueuer().enqueue(name, positional, dict(kwargs or {}), delay=delay, run_at=run_at, key=key, id=id)


def enqueue_many(calls: Iterable[JobCall]) -> list[EnqueueResult]:
    """Send many jobs at once through the enqueuer's `enqueue_many` (one result per call, in order)."""
    enqueuer: Any = current_enqueuer()
    return list(enqueuer.enqueue_many(calls))
