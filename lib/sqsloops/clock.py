"""The only reader of wall time: everything else receives a Clock, so tests can move time on purpose."""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall time for timestamps, monotonic time for durations, and sleep."""

    def now(self) -> float:
        """Seconds since the epoch (what DynamoDB timestamps hold)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and cadences)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = Clock()


class ManualClock(Clock):
    """Time that moves only when told to or when code sleeps (sleep returns at once): for tests and replays."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self._start_s = start_s
        self.elapsed_s = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._start_s + self.elapsed_s

    def monotonic(self) -> float:
        with self._lock:
            return self.elapsed_s

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.elapsed_s += seconds
