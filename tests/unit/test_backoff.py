import random

import pytest

from sqsloops.backoff import backoff_cap_s, compute_backoff_s, visibility_backoff_s


def test_cap_doubles_from_base_and_stops_at_max() -> None:
    caps = [backoff_cap_s(n, base_s=2, max_s=30) for n in range(1, 7)]
    assert caps == [2, 4, 8, 16, 30, 30]


def test_huge_attempt_does_not_overflow() -> None:
    assert backoff_cap_s(10_000, base_s=1, max_s=900) == 900


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_cap_s(0, base_s=1, max_s=10)


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [compute_backoff_s(4, base_s=1, max_s=100, rng=rng) for _ in range(2000)]
    assert min(delays) >= 0
    assert max(delays) <= 8
    # full jitter, not equal jitter: the whole range is used
    assert min(delays) < 0.5
    assert max(delays) > 7.5


def test_visibility_backoff_stays_within_sqs_limits() -> None:
    rng = random.Random(1)
    for count in (0, 1, 5, 50, 10_000):
        delay = visibility_backoff_s(count, base_s=60, max_s=10**9, rng=rng)
        assert isinstance(delay, int)
        assert 0 <= delay <= 43_200
