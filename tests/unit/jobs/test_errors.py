"""The job layer's errors carry what their catcher acts on, and sit where callers catch them."""

from __future__ import annotations

import pytest

from sqsloops.errors import ConfigError, SqsloopsError
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


def test_a_definition_error_names_the_job_and_the_option() -> None:
    error = JobDefinitionError("charge", "timeout", "must be more than zero, got '0s'")
    assert str(error) == "job 'charge': option 'timeout': must be more than zero, got '0s'"
    assert (error.job, error.option, error.problem) == ("charge", "timeout", "must be more than zero, got '0s'")


@pytest.mark.parametrize("error_class", [JobDefinitionError, JobArgsError, EnqueueTimeError, NoEnqueuerError])
def test_bad_input_that_wrote_nothing_is_a_config_error(error_class: type[Exception]) -> None:
    assert issubclass(error_class, ConfigError)
    assert issubclass(error_class, JobError)


@pytest.mark.parametrize(
    "error_class", [UnknownJobError, MalformedEnvelopeError, JobNotFoundError, NotCancellableError]
)
def test_other_job_errors_are_not_config_errors(error_class: type[Exception]) -> None:
    assert issubclass(error_class, SqsloopsError)
    assert not issubclass(error_class, ConfigError)


def test_errors_carry_their_data() -> None:
    assert UnknownJobError("nope").name == "nope"
    assert JobArgsError("charge", "args[0]: set is not JSON").problem == "args[0]: set is not JSON"
    assert MalformedEnvelopeError("missing field(s) 'id'").reason == "missing field(s) 'id'"
    assert JobNotFoundError("abc").job_id == "abc"
    cancelled = NotCancellableError("abc", "running")
    assert (cancelled.job_id, cancelled.state) == ("abc", "running")
    assert "running" in str(cancelled)


def test_retry_takes_a_duration_and_a_reason() -> None:
    # When job code asks for a retry in a minute, saying why
    retry = Retry(in_s="1m", reason="rate limited upstream")
    # Then it carries both, in seconds
    assert retry.in_s == 60.0
    assert retry.reason == "rate limited upstream"
    assert str(retry) == "retry in 60 s: rate limited upstream"


def test_retry_without_a_delay_leaves_it_to_the_backoff() -> None:
    assert Retry().in_s is None
    assert Retry(in_s=0).in_s == 0.0


def test_retry_is_not_an_sqsloops_error() -> None:
    # A request from job code, not a failure of sqsloops
    assert issubclass(Retry, Exception)
    assert not issubclass(Retry, SqsloopsError)


def test_retry_with_a_bad_delay_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Retry\(in_s\): must not be negative"):
        Retry(in_s=-5)
