"""The running job's context: what job code may ask about the attempt it is in (`current_job()`).

A ContextVar set by the runner (jobs/execution.py) around the call, so a job's signature stays the user's own: no
`ctx` parameter to add, and calling the function outside a job still works (current_job() then says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqsloops.jobs.errors import JobError


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """The attempt in progress. `attempt` is 1-based; `max_attempts` is retries + 1; `timeout_s` the time it has."""

    id: str
    job: str
    attempt: int
    max_attempts: int
    enqueued_at: datetime
    timeout_s: float
    key: str | None = None
    tracked: bool = True

    @property
    def last_attempt(self) -> bool:
        """True when a failure now makes the job dead (unless it is non-retryable, which is dead anyway)."""
        return self.attempt >= self.max_attempts


class NotInJobError(JobError):
    """current_job() was called outside a job run."""


_current: ContextVar[JobContext | None] = ContextVar("sqsloops_current_job", default=None)


def current_job() -> JobContext:
    """The context of the job this code runs in; NotInJobError when it runs outside one."""
    context = _current.get()
    if context is None:
        raise NotInJobError("current_job() is only available while a job runs (in the runner or the eager mode)")
    return context


def current_job_or_none() -> JobContext | None:
    return _current.get()


@contextmanager
def running_as(context: JobContext) -> Iterator[JobContext]:
    """Make `context` the current job's while the block runs (the runner's, around the call)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
