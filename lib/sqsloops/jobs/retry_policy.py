"""What happens after a failed attempt: retry after some delay, or dead. A small validated value object.

The rules, in order, for the attempt that just failed (1-based):
1. a `non_retryable` exception: dead at once;
2. the budget is spent (`attempt > retries`): dead. An explicit `Retry` counts as an attempt too (as in Sidekiq and
   huey), so a job that keeps asking for retries still ends: `retries=0` means one attempt only;
3. a `Retry` exception: retry after its own `in_s` (it wins over the backoff), or the backoff's if it gave none;
4. anything else: retry after the backoff's delay for this attempt.

Every delay fits SQS: a retry waits on the message's visibility timeout, whose ceiling is 12 h, so backoffs longer
than that are refused when defined and a longer `Retry(in_s=...)` is clamped (the decision's reason says so).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqsloops import defaults
from sqsloops.backoff import compute_backoff_s
from sqsloops.errors import ConfigError
from sqsloops.jobs.durations import DurationLike, parse_duration_s
from sqsloops.jobs.errors import Retry

# 10 retries (11 attempts) of full-jitter exponential backoff from 2 s capped at 1 h: the ceilings add up to ~34 min
# (2 + 4 + ... + 1024 s), enough to ride out the dependency outages Sidekiq and Oban users count on retries for
# (they retry 20-25 times), while a job that is truly broken reaches the DLQ, where it is visible, within the hour.
DEFAULT_RETRIES = 10
MAX_RETRIES = 1000  # sanity ceiling: a larger count is a typo, not a policy
DEFAULT_BACKOFF_BASE_S = 2.0
DEFAULT_BACKOFF_MAX_S = 3600.0
MAX_RETRY_DELAY_S = float(defaults.MAX_VISIBILITY_TIMEOUT_S)  # a retry waits on visibility: SQS caps it at 12 h
EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class Exponential:
    """Full jitter: the delay before retry n is uniform in [0, min(max_s, base_s * 2^(n-1))]."""

    base_s: float = DEFAULT_BACKOFF_BASE_S
    max_s: float = DEFAULT_BACKOFF_MAX_S

    def __post_init__(self) -> None:
        _check_delay_s(self.base_s, "base_s", allow_zero=False)
        _check_delay_s(self.max_s, "max_s", allow_zero=False)
        if self.max_s < self.base_s:
            raise ConfigError(f"exponential backoff: max_s ({self.max_s:g}) is below base_s ({self.base_s:g})")

    def delay_s(self, attempt: int, rng: random.Random | None) -> float:
        return compute_backoff_s(attempt, base_s=self.base_s, max_s=self.max_s, rng=rng)


@dataclass(frozen=True)
class Schedule:
    """Explicit delays: retry n waits the n-th entry; past the end, the last one repeats."""

    delays_s: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.delays_s:
            raise ConfigError("a backoff schedule needs at least one delay")
        for index, delay_s in enumerate(self.delays_s):
            _check_delay_s(delay_s, f"schedule entry {index + 1}", allow_zero=True)

    def delay_s(self, attempt: int, rng: random.Random | None) -> float:
        return self.delays_s[min(attempt, len(self.delays_s)) - 1]


Backoff = Exponential | Schedule
BackoffLike = Backoff | tuple[Literal["exponential"], DurationLike, DurationLike] | Iterable[DurationLike] | None


def _check_delay_s(delay_s: float, what: str, *, allow_zero: bool) -> None:
    if isinstance(delay_s, bool) or not isinstance(delay_s, int | float):
        raise ConfigError(f"{what}: {delay_s!r} is not a number of seconds")
    parse_duration_s(delay_s, what=what, allow_zero=allow_zero)
    if delay_s > MAX_RETRY_DELAY_S:
        raise ConfigError(
            f"{what}: {delay_s:g} s is longer than a retry can wait ({MAX_RETRY_DELAY_S:g} s, SQS's visibility cap)"
        )


def parse_backoff(value: BackoffLike) -> Backoff:
    """A backoff from its written forms: None (the default exponential), ("exponential", base, max), a schedule of
    durations ("10s", "1m", "10m", "1h"), or an `Exponential` / `Schedule` as is."""
    if value is None:
        return Exponential()
    if isinstance(value, Exponential | Schedule):
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(
            f"{value!r} is not a backoff; write ('exponential', base, max) or a schedule like ('10s', '1m', '1h')"
        )
    items = list(value)
    if items and items[0] == EXPONENTIAL:
        if len(items) != 3:
            raise ConfigError(f"{tuple(items)!r}: write ('exponential', base, max), e.g. ('exponential', '2s', '1h')")
        return Exponential(
            base_s=parse_duration_s(items[1], what="exponential base"),
            max_s=parse_duration_s(items[2], what="exponential max"),
        )
    return Schedule(tuple(parse_duration_s(item, what="backoff schedule entry", allow_zero=True) for item in items))


def check_retries(value: int) -> int:
    """How many retries after the first attempt: a whole number from 0 (one attempt only) to MAX_RETRIES."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be a whole number of retries, got {value!r}")
    if not 0 <= value <= MAX_RETRIES:
        raise ConfigError(f"must be between 0 (one attempt only) and {MAX_RETRIES}, got {value}")
    return value


def check_non_retryable(value: type[BaseException] | Iterable[type[BaseException]]) -> tuple[type[BaseException], ...]:
    """Exception classes that make a job dead at once (a single class or several)."""
    items = (value,) if isinstance(value, type) else tuple(value)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigError(f"must be exception classes, got {item!r}")
        if issubclass(item, Retry):
            raise ConfigError("Retry asks for a retry; it cannot also be non-retryable")
    return items


@dataclass(frozen=True)
class Decision:
    """After a failed attempt: dead (to the DLQ, state dead), or retry after `delay_s`; `reason` says which rule."""

    dead: bool
    delay_s: float
    reason: str


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """Retries, their backoff and the exceptions that are never retried; validated on construction."""

    retries: int
    backoff: Backoff
    non_retryable: tuple[type[BaseException], ...]

    def __init__(
        self,
        retries: int = DEFAULT_RETRIES,
        backoff: BackoffLike = None,
        non_retryable: type[BaseException] | Iterable[type[BaseException]] = (),
    ) -> None:
        object.__setattr__(self, "retries", check_retries(retries))
        object.__setattr__(self, "backoff", parse_backoff(backoff))
        object.__setattr__(self, "non_retryable", check_non_retryable(non_retryable))

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def decide(self, attempt: int, exc: BaseException, *, rng: random.Random | None = None) -> Decision:
        """What to do now that attempt number `attempt` (1-based) failed with `exc` (rules in the module doc)."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt!r}")
        name = type(exc).__name__
        if self.non_retryable and isinstance(exc, self.non_retryable):
            return Decision(dead=True, delay_s=0.0, reason=f"{name} is non-retryable")
        if attempt > self.retries:
            return Decision(
                dead=True, delay_s=0.0, reason=f"{name} on attempt {attempt} of {self.max_attempts}: retries exhausted"
            )
        if isinstance(exc, Retry) and exc.in_s is not None:
            if exc.in_s > MAX_RETRY_DELAY_S:
                reason = f"Retry asked for {exc.in_s:g} s, clamped to SQS's {MAX_RETRY_DELAY_S:g} s visibility cap"
                return Decision(dead=False, delay_s=MAX_RETRY_DELAY_S, reason=reason)
            return Decision(dead=False, delay_s=exc.in_s, reason=f"Retry asked for {exc.in_s:g} s")
        delay_s = self.backoff.delay_s(attempt, rng)
        return Decision(
            dead=False, delay_s=delay_s, reason=f"{name} on attempt {attempt} of {self.max_attempts}: backoff"
        )
