"""The job layer's errors, each carrying what its catcher needs (the job, the option, the reason, the state).

Bad input that wrote nothing (a definition, arguments, a time) is also a `ConfigError`, so callers that map errors
to answers (the HTTP API: 400) catch one class. `Retry` is not an error: job code raises it to ask for another try.
"""

from __future__ import annotations

from sqsloops.errors import ConfigError, SqsloopsError
from sqsloops.jobs.durations import DurationLike, parse_duration_s


class JobError(SqsloopsError):
    """Base of the job layer's errors."""


class JobDefinitionError(JobError, ConfigError):
    """A `@job(...)` declaration is invalid; raised at import, before anything runs."""

    def __init__(self, job: str, option: str, problem: str) -> None:
        super().__init__(f"job {job!r}: option {option!r}: {problem}")
        self.job = job
        self.option = option
        self.problem = problem


class UnknownJobError(JobError):
    """No job of that name is declared (or in the catalog)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no job is named {name!r}")
        self.name = name


class JobArgsError(JobError, ConfigError):
    """A job's arguments do not fit its signature, are not JSON, or make the message too large."""

    def __init__(self, job: str, problem: str) -> None:
        super().__init__(f"job {job!r}: {problem}")
        self.job = job
        self.problem = problem


class JobTooLargeError(JobArgsError):
    """The job's message is over its door's size limit (SQS 1 MiB, the entry topic 256 KB): pass a reference."""

    def __init__(self, job: str, problem: str, *, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(job, problem)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class EnqueueTimeError(JobError, ConfigError):
    """A delay or run_at cannot be used: unparsable, naive, in the past, or both given."""


class MalformedEnvelopeError(JobError):
    """A message body is not a job envelope this runner reads; it goes to the DLQ with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed job envelope: {reason}")
        self.reason = reason


class JobNotFoundError(JobError):
    """No status row holds that job id (never tracked, or purged after its TTL)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job has id {job_id!r}")
        self.job_id = job_id


class NotCancellableError(JobError):
    """The job is past the point where cancelling means anything (running, finished, dead)."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id!r} is {state} and can no longer be cancelled")
        self.job_id = job_id
        self.state = state


class NoEnqueuerError(JobError, ConfigError):
    """`.enqueue()` was called before the composition root set an enqueuer."""


class Retry(Exception):  # no Error suffix: job code raises it as a request, like huey's RetryTask
    """Job code asks for another try, after `in_s` (None: the job's backoff); it counts as an attempt."""

    def __init__(self, in_s: DurationLike | None = None, *, reason: str | None = None) -> None:
        self.in_s = None if in_s is None else parse_duration_s(in_s, what="Retry(in_s)", allow_zero=True)
        self.reason = reason
        when = "with the job's backoff" if self.in_s is None else f"in {self.in_s:g} s"
        super().__init__(f"retry {when}" + (f": {reason}" if reason else ""))
