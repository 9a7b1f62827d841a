"""Pacing a loop to a message rate: a token bucket the loop asks before each receive.

A registration's rate_per_s is shared by all its loops, so each loop is paced to rate_per_s / live_loops.
The bucket holds at most one second's worth (and at most a batch), so a loop that waited cannot burst far past it.
"""

from __future__ import annotations

import math

from sqsloops.clock import Clock

_EPSILON = 1e-9  # float slack: 0.9999999999 tokens is a whole one, or a loop could wait ~0 s forever


class Pacer:
    """At most `rate_per_s` messages per second on average; unlimited while the rate is None."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._rate_per_s: float | None = None
        self._capacity = 1.0
        self._tokens = 1.0  # the first message may go at once
        self._updated_s = clock.monotonic()

    @property
    def rate_per_s(self) -> float | None:
        return self._rate_per_s

    def set_rate(self, rate_per_s: float | None, *, batch_size: int) -> None:
        """Change the rate (e.g. when the number of live loops changed); tokens earned so far are kept."""
        self._refill()
        self._rate_per_s = rate_per_s if rate_per_s and rate_per_s > 0 else None
        self._capacity = max(1.0, min(float(batch_size), rate_per_s or 1.0))
        self._tokens = min(self._tokens, self._capacity)

    def delay_s(self) -> float:
        """How long to wait before the next message may be taken (0 when it may go now)."""
        if self._rate_per_s is None:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 1.0 - _EPSILON else (1.0 - self._tokens) / self._rate_per_s

    def take(self, wanted: int) -> int:
        """Take up to `wanted` messages' worth (at least 1: call after delay_s() returned 0)."""
        if self._rate_per_s is None:
            return wanted
        self._refill()
        granted = max(1, min(wanted, math.floor(self._tokens + _EPSILON)))
        self._tokens -= granted
        return granted

    def refund(self, unused: int) -> None:
        """Give back what a receive did not use (it returned fewer messages than granted)."""
        if self._rate_per_s is not None and unused > 0:
            self._tokens = min(self._capacity, self._tokens + unused)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if self._rate_per_s is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._updated_s) * self._rate_per_s)
        self._updated_s = now
