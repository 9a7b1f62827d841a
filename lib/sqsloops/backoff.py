"""Retry delays: exponential with full jitter, capped (AWS Architecture Blog, "Exponential Backoff And Jitter")."""

from __future__ import annotations

import random

from sqsloops import defaults

_RNG = random.Random()


def backoff_cap_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """The ceiling of the delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    # Bound the exponent so huge attempt counts cannot overflow a float.
    return float(min(max_s, base_s * 2 ** min(attempt - 1, 62)))


def compute_backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """A delay drawn uniformly from [0, cap]: full jitter spreads retries of a failed burst apart."""
    return (rng or _RNG).uniform(0.0, backoff_cap_s(attempt, base_s=base_s, max_s=max_s))


def visibility_backoff_s(receive_count: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> int:
    """Whole seconds to hide a failed message for, within SQS's 0..12 h range."""
    delay = compute_backoff_s(max(receive_count, 1), base_s=base_s, max_s=max_s, rng=rng)
    return max(0, min(defaults.MAX_VISIBILITY_TIMEOUT_S, round(delay)))
