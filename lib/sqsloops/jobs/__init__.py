"""The job layer: declare plain functions as jobs (`@job`), and the pure pieces the runner and enqueuers share.

Importing this package imports no AWS SDK: job modules are imported by producers, runners and `jobs apply`, and a
declaration must stay cheap to import.
"""

from typing import TYPE_CHECKING, Any

from sqsloops.jobs.current import JobContext, NotInJobError, current_job
from sqsloops.jobs.definition import JobFunction, JobOptions, job, jobs_in
from sqsloops.jobs.enqueue import enqueue, enqueue_many
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.errors import (
    EnqueueTimeError,
    JobArgsError,
    JobDefinitionError,
    JobError,
    JobNotFoundError,
    JobTooLargeError,
    MalformedEnvelopeError,
    NoEnqueuerError,
    NotCancellableError,
    Retry,
    UnknownJobError,
)
from sqsloops.jobs.retry_policy import Decision, Exponential, RetryPolicy, Schedule
from sqsloops.jobs.timeout import JobTimeoutError

if TYPE_CHECKING:
    from sqsloops.jobs.lambda_handler import lambda_handler


def __getattr__(name: str) -> Any:
    """`lambda_handler` on first use: it brings the runner and boto3, which declaring jobs does not need."""
    if name == "lambda_handler":
        from sqsloops.jobs.lambda_handler import lambda_handler

        return lambda_handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Decision",
    "EnqueueTimeError",
    "Envelope",
    "Exponential",
    "JobArgsError",
    "JobContext",
    "JobDefinitionError",
    "JobError",
    "JobFunction",
    "JobNotFoundError",
    "JobOptions",
    "JobTimeoutError",
    "JobTooLargeError",
    "MalformedEnvelopeError",
    "NoEnqueuerError",
    "NotCancellableError",
    "NotInJobError",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "UnknownJobError",
    "current_job",
    "enqueue",
    "enqueue_many",
    "job",
    "jobs_in",
    "lambda_handler",
]
