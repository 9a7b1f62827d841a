"""The job layer: declare plain functions as jobs (`@job`), and the pure pieces the runner and enqueuers share.

Importing this package imports no AWS SDK: job modules are imported by producers, runners and `jobs apply`, and a
declaration must stay cheap to import.
"""

from sqsloops.jobs.definition import JobFunction, JobOptions, job, jobs_in
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.errors import (
    EnqueueTimeError,
    JobArgsError,
    JobDefinitionError,
    JobError,
    JobNotFoundError,
    MalformedEnvelopeError,
    NoEnqueuerError,
    NotCancellableError,
    Retry,
    UnknownJobError,
)
from sqsloops.jobs.retry_policy import Decision, Exponential, RetryPolicy, Schedule

__all__ = [
    "Decision",
    "EnqueueTimeError",
    "Envelope",
    "Exponential",
    "JobArgsError",
    "JobDefinitionError",
    "JobError",
    "JobFunction",
    "JobNotFoundError",
    "JobOptions",
    "MalformedEnvelopeError",
    "NoEnqueuerError",
    "NotCancellableError",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "UnknownJobError",
    "job",
    "jobs_in",
]
