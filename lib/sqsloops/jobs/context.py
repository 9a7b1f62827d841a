"""Where `.enqueue()` sends jobs: one enqueuer per process, set by the composition root.

Job modules are imported by producers, runners and `jobs apply` alike, and only some of them send messages; so the
decorator knows nothing of AWS and `JobFunction.enqueue` asks this module for the enqueuer at call time. A process
global rather than a ContextVar: threads a producer starts must see the enqueuer its root set.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqsloops.jobs.errors import NoEnqueuerError

if TYPE_CHECKING:
    from sqsloops.jobs.definition import JobFunction
    from sqsloops.jobs.durations import DurationLike


class Enqueuer(Protocol):
    """Sends one job: arguments already bound to the signature and JSON-checked, key already rendered."""

    def enqueue(
        self,
        job: JobFunction[..., Any] | str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        delay: DurationLike | None = None,
        run_at: datetime | None = None,
        key: str | None = None,
        id: str | None = None,
    ) -> Any: ...


_lock = threading.Lock()
_enqueuer: Enqueuer | None = None


def set_enqueuer(enqueuer: Enqueuer | None) -> Enqueuer | None:
    """Make `enqueuer` the one `.enqueue()` uses (None: none); returns the previous one, so tests can restore it."""
    global _enqueuer  # the one process-wide setting this module exists to hold
    with _lock:
        previous, _enqueuer = _enqueuer, enqueuer
    return previous


def current_enqueuer() -> Enqueuer:
    """The enqueuer set by `set_enqueuer`; NoEnqueuerError if there is none yet."""
    enqueuer = _enqueuer
    if enqueuer is None:
        raise NoEnqueuerError(
            "no enqueuer is configured: build the job client from the composition root (or call"
            " sqsloops.jobs.context.set_enqueuer) before calling .enqueue()"
        )
    return enqueuer
