"""Watching registered queues: successive status samples and the throughput they imply.

Loops add their counters to their tokens only at heartbeats, so a counter moves in steps: throughput is the
counters' increase over a sliding window (a few heartbeats), never the delta between two refreshes.
No rich here: the terminal view (sqsloops.cli.watch) renders what this computes.
"""

from __future__ import annotations

import builtins
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sqsloops import defaults
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import SqsloopsError
from sqsloops.ops.registration import Counters, QueueStatus

MIN_WINDOW_S = 10.0
HEARTBEATS_PER_WINDOW = 2  # a window spanning two heartbeats sees every loop's flush at least once


def default_window_s(heartbeat_s: float = defaults.HEARTBEAT_S) -> float:
    return max(MIN_WINDOW_S, HEARTBEATS_PER_WINDOW * heartbeat_s)


class StatusSource(Protocol):
    """What a Watcher reads: sqsloops.ops.registration.QueueAdmin, or anything with its status()."""

    def status(self, queue_url: str | None = None) -> builtins.list[QueueStatus]: ...


@dataclass(frozen=True)
class Rates:
    """Messages per second; None until enough history exists to say."""

    processed_per_s: float | None = None
    failed_per_s: float | None = None


@dataclass(frozen=True)
class _Sample:
    at_s: float
    processed: int
    failed: int


class Throughput:
    """Per-second rates of one queue's cumulative counters, over a sliding window of samples.

    The counters are sums over the queue's tokens, retired ones included, so they drop when the restart sweep deletes
    a retired token or a new loop reclaims its slot: a drop counts as no progress for that step rather than as
    negative throughput.
    """

    def __init__(self, *, window_s: float = MIN_WINDOW_S, min_span_s: float = 0.0) -> None:
        self._window_s = window_s
        self._min_span_s = min(min_span_s, window_s)
        self._samples: deque[_Sample] = deque()

    def add(self, at_s: float, counters: Counters) -> None:
        """Record the counters read at monotonic time at_s; samples older than the window go."""
        if self._samples and at_s <= self._samples[-1].at_s:
            return  # the clock did not move: nothing to learn
        self._samples.append(_Sample(at_s, counters.processed, counters.failed))
        # Keep one sample at or before the window's start, so the span covers the whole window once it can.
        while len(self._samples) > 2 and self._samples[1].at_s <= at_s - self._window_s:
            self._samples.popleft()

    def rates(self) -> Rates:
        if len(self._samples) < 2:
            return Rates()
        span_s = self._samples[-1].at_s - self._samples[0].at_s
        if span_s < self._min_span_s:
            return Rates()
        processed = failed = 0
        for before, after in pairwise(self._samples):
            processed += max(0, after.processed - before.processed)
            failed += max(0, after.failed - before.failed)
        return Rates(processed_per_s=processed / span_s, failed_per_s=failed / span_s)


@dataclass(frozen=True)
class Snapshot:
    """What the view shows at one refresh."""

    taken_at: float  # epoch seconds of this refresh
    statuses: list[QueueStatus]
    rates: dict[str, Rates] = field(default_factory=dict)
    error: str | None = None  # this refresh failed: statuses and rates are the last good ones
    statuses_at: float | None = None  # epoch seconds the statuses were read

    def rates_of(self, queue_url: str) -> Rates:
        return self.rates.get(queue_url, Rates())


def describe_error(exc: BaseException) -> str:
    """One line for an AWS or sqsloops error, as the CLI prints it."""
    if isinstance(exc, ClientError):
        details = exc.response.get("Error", {})
        return f"{details.get('Code', 'AWS error')}: {details.get('Message', exc)}"
    return " ".join(str(exc).split()) or type(exc).__name__


class Watcher:
    """Samples the registered queues' statuses and keeps each queue's throughput over a sliding window."""

    def __init__(
        self,
        source: StatusSource,
        *,
        queue_url: str | None = None,
        window_s: float = MIN_WINDOW_S,
        min_span_s: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._source = source
        self._queue_url = queue_url
        self._window_s = window_s
        self._min_span_s = min_span_s
        self._clock = clock
        self._throughput: dict[str, Throughput] = {}
        self.last: Snapshot | None = None

    def sample(self) -> Snapshot:
        """Read every watched queue's status now; AWS and sqsloops errors propagate."""
        statuses = self._source.status(self._queue_url)
        at_s, now = self._clock.monotonic(), self._clock.now()
        seen = {s.queue_url for s in statuses}
        for url in set(self._throughput) - seen:  # deregistered: its history means nothing any more
            del self._throughput[url]
        for status in statuses:
            throughput = self._throughput.get(status.queue_url)
            if throughput is None:
                throughput = Throughput(window_s=self._window_s, min_span_s=self._min_span_s)
                self._throughput[status.queue_url] = throughput
            throughput.add(at_s, status.counters)
        rates = {url: t.rates() for url, t in self._throughput.items()}
        self.last = Snapshot(taken_at=now, statuses=statuses, rates=rates, statuses_at=now)
        return self.last

    def refresh(self) -> Snapshot:
        """Like sample(), but a failed read becomes the snapshot's error and the last good values stay on show."""
        try:
            return self.sample()
        except (ClientError, BotoCoreError, SqsloopsError) as exc:
            last = self.last
            return Snapshot(
                taken_at=self._clock.now(),
                statuses=last.statuses if last else [],
                rates=last.rates if last else {},
                error=describe_error(exc),
                statuses_at=last.statuses_at if last else None,
            )
