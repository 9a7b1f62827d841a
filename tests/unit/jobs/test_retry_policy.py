"""Every branch of the retry decision, with seeded randomness."""

from __future__ import annotations

import random

import pytest

from sqsloops.errors import ConfigError
from sqsloops.jobs.errors import Retry
from sqsloops.jobs.retry_policy import (
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_RETRIES,
    MAX_RETRY_DELAY_S,
    Exponential,
    RetryPolicy,
    Schedule,
)


class PaymentDeclinedError(Exception):
    pass


def test_defaults_are_exponential_full_jitter_from_2s_to_1h() -> None:
    policy = RetryPolicy()
    assert policy.retries == DEFAULT_RETRIES
    assert policy.backoff == Exponential(base_s=DEFAULT_BACKOFF_BASE_S, max_s=DEFAULT_BACKOFF_MAX_S)
    assert (DEFAULT_BACKOFF_BASE_S, DEFAULT_BACKOFF_MAX_S) == (2.0, 3600.0)
    assert policy.non_retryable == ()


def test_a_failure_within_the_budget_retries_after_a_jittered_backoff() -> None:
    # Given the default exponential backoff
    policy = RetryPolicy(retries=5)
    # When attempt 3 fails, many times over with seeded randomness
    rng = random.Random(42)
    decisions = [policy.decide(3, RuntimeError("boom"), rng=rng) for _ in range(500)]
    # Then each is a retry within [0, 2 * 2^2] = [0, 8] s, spread over the whole range
    assert all(not decision.dead for decision in decisions)
    delays = [decision.delay_s for decision in decisions]
    assert 0 <= min(delays) < 0.5
    assert 7.5 < max(delays) <= 8.0
    assert decisions[0].reason == "RuntimeError on attempt 3 of 6: backoff"


def test_the_same_seed_gives_the_same_delay() -> None:
    policy = RetryPolicy(retries=5)
    first = policy.decide(2, RuntimeError(), rng=random.Random(7)).delay_s
    again = policy.decide(2, RuntimeError(), rng=random.Random(7)).delay_s
    assert first == again


def test_exponential_backoff_is_capped_at_its_max() -> None:
    policy = RetryPolicy(retries=100, backoff=("exponential", "1s", "10s"))
    rng = random.Random(1)
    delays = [policy.decide(50, RuntimeError(), rng=rng).delay_s for _ in range(200)]
    assert max(delays) <= 10.0
    assert max(delays) > 9.0


def test_a_schedule_uses_the_nth_delay_and_repeats_the_last() -> None:
    # Given an explicit schedule
    policy = RetryPolicy(retries=8, backoff=("10s", "1m", "10m", "1h"))
    # Then attempt n waits the n-th entry, and the last one once the schedule runs out
    delays = [policy.decide(attempt, RuntimeError()).delay_s for attempt in range(1, 9)]
    assert delays == [10.0, 60.0, 600.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0]


def test_attempts_exhausted_means_dead() -> None:
    # Given 3 retries: 4 attempts in all
    policy = RetryPolicy(retries=3, backoff=("1s",))
    # When the third attempt fails, there is still a retry; when the fourth fails, the job is dead
    assert not policy.decide(3, RuntimeError()).dead
    last = policy.decide(4, RuntimeError("still broken"))
    assert last.dead
    assert last.delay_s == 0.0
    assert last.reason == "RuntimeError on attempt 4 of 4: retries exhausted"


def test_zero_retries_means_one_attempt_only() -> None:
    decision = RetryPolicy(retries=0).decide(1, RuntimeError())
    assert decision.dead
    assert "attempt 1 of 1" in decision.reason


def test_a_non_retryable_exception_is_dead_at_once() -> None:
    # Given a policy with budget left, and a payment declined for good
    policy = RetryPolicy(retries=10, non_retryable=(PaymentDeclinedError, KeyError))
    # When the first attempt fails with it
    decision = policy.decide(1, PaymentDeclinedError("card declined"))
    # Then the job is dead without another try
    assert decision.dead
    assert decision.reason == "PaymentDeclinedError is non-retryable"


def test_a_subclass_of_a_non_retryable_exception_is_non_retryable() -> None:
    class ExpiredCardError(PaymentDeclinedError):
        pass

    assert RetryPolicy(non_retryable=PaymentDeclinedError).decide(1, ExpiredCardError()).dead


def test_other_exceptions_are_retried_despite_a_non_retryable_list() -> None:
    assert not RetryPolicy(non_retryable=(PaymentDeclinedError,)).decide(1, TimeoutError()).dead


def test_an_explicit_retry_wins_over_the_backoff() -> None:
    # Given a schedule that would wait an hour
    policy = RetryPolicy(retries=3, backoff=("1h",))
    # When the job raises Retry(in_s=30)
    decision = policy.decide(1, Retry(in_s=30))
    # Then it waits its own 30 s
    assert not decision.dead
    assert decision.delay_s == 30.0
    assert decision.reason == "Retry asked for 30 s"


def test_an_explicit_retry_still_spends_an_attempt() -> None:
    # Given one retry
    policy = RetryPolicy(retries=1)
    # When the second attempt raises Retry as well
    decision = policy.decide(2, Retry(in_s="1m"))
    # Then the budget is spent: dead, so a job that always asks for a retry still ends
    assert decision.dead
    assert "retries exhausted" in decision.reason


def test_a_retry_without_a_delay_takes_the_backoff() -> None:
    policy = RetryPolicy(retries=3, backoff=("10s", "1m"))
    decision = policy.decide(2, Retry(reason="not yet"))
    assert decision.delay_s == 60.0
    assert decision.reason == "Retry on attempt 2 of 4: backoff"


def test_a_retry_longer_than_sqs_can_hide_a_message_is_clamped_and_says_so() -> None:
    decision = RetryPolicy(retries=3).decide(1, Retry(in_s="2d"))
    assert decision.delay_s == MAX_RETRY_DELAY_S == 43_200.0
    assert "clamped" in decision.reason


@pytest.mark.parametrize("attempt", [0, -1, True, 1.0])
def test_attempts_are_one_based_whole_numbers(attempt: object) -> None:
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().decide(attempt, RuntimeError())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retries", "message"),
    [(-1, "between 0"), (1001, "between 0"), (2.5, "whole number"), (True, "whole number"), ("3", "whole number")],
)
def test_bad_retry_counts_are_refused(retries: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(retries=retries)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backoff", "message"),
    [
        ((), "at least one delay"),
        (("exponential", "2s"), r"write \('exponential', base, max\)"),
        (("exponential", "1h", "1s"), "below base_s"),
        (("exponential", "0s", "1h"), "more than zero"),
        (("10s", "soon"), "is not a duration"),
        (("10s", "-1m"), "must not be negative"),
        (("13h",), "longer than a retry can wait"),
        (("exponential", "1s", "1d"), "longer than a retry can wait"),
        ("10s", "is not a backoff"),
        (42, "is not a backoff"),
    ],
)
def test_bad_backoffs_are_refused(backoff: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(backoff=backoff)  # type: ignore[arg-type]


def test_backoff_objects_are_taken_as_they_are() -> None:
    assert RetryPolicy(backoff=Schedule((1.0, 2.0))).backoff == Schedule((1.0, 2.0))
    assert RetryPolicy(backoff=Exponential(1.0, 30.0)).backoff == Exponential(1.0, 30.0)


@pytest.mark.parametrize(("non_retryable", "message"), [((ValueError, "x"), "exception classes"), ((Retry,), "Retry")])
def test_bad_non_retryable_lists_are_refused(non_retryable: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(non_retryable=non_retryable)  # type: ignore[arg-type]


def test_a_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy(retries=2, backoff=("1s",))
    assert policy == RetryPolicy(retries=2, backoff=["1s"])
    with pytest.raises(AttributeError):
        policy.retries = 5  # type: ignore[misc]
