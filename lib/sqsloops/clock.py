"""The only reader of wall time: everything else receives a Clock, so tests can move time on purpose."""

from __future__ import annotations

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
