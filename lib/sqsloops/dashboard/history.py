"""The last hour of each queue's depth and loops, kept in the dashboard's memory.

Nothing in the stack stores a history of depth or loops (CloudWatch has the depth, not the loops), so the dashboard
keeps what it sampled: one point per sample per queue, dropped once older than the window. A restarted dashboard
starts with an empty chart.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from sqsloops.ops.watch import Snapshot

DEFAULT_WINDOW_S = 3600.0


@dataclass(frozen=True)
class Point:
    """One sample of one queue; at is epoch seconds."""

    at: float
    visible: int
    in_flight: int
    running: int
    stale: int
    desired: int | None


class History:
    """Points per queue URL, oldest first, none older than window_s before the newest sample."""

    def __init__(self, *, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.window_s = window_s
        self._points: dict[str, deque[Point]] = {}
        self._lock = threading.Lock()

    def add(self, snapshot: Snapshot) -> None:
        """Record a snapshot's statuses (a failed refresh records nothing: its statuses are the last good ones)."""
        if snapshot.error is not None:
            return
        at = snapshot.statuses_at or snapshot.taken_at
        with self._lock:
            for status in snapshot.statuses:
                depth = status.depth
                point = Point(
                    at=at,
                    visible=depth.visible if depth else 0,
                    in_flight=depth.in_flight if depth else 0,
                    running=status.loops.running,
                    stale=status.loops.stale,
                    desired=status.loops.desired,
                )
                points = self._points.setdefault(status.queue_url, deque())
                if points and at <= points[-1].at:
                    continue
                points.append(point)
                while points and points[0].at < at - self.window_s:
                    points.popleft()
            for url in set(self._points) - {s.queue_url for s in snapshot.statuses}:
                del self._points[url]  # deregistered

    def of(self, queue_url: str) -> list[Point]:
        with self._lock:
            return list(self._points.get(queue_url, ()))
