"""Per-job metrics as CloudWatch embedded metric format (Powertools), one EMF line per job name per batch.

Names and the namespace are constants here, so `jobs apply` (the failure-rate alarm per job) reads the same ones.
Counts are emitted only when non-zero, except the pair a failure rate divides: a line with attempts carries both
JobSucceeded and JobFailed, zero included, so the failure-rate alarm's JobFailed / (JobSucceeded + JobFailed) has
both series whenever the job ran (a job that only fails still has a JobSucceeded series of zeros: no metric math
FILL of a series with no data at all is needed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from sqsloops.log import SERVICE

NAMESPACE = "sqsloops/jobs"
DIMENSION = "job"
SUCCEEDED = "JobSucceeded"  # attempts that returned
FAILED = "JobFailed"  # attempts that raised or timed out (each one, retried or not)
RETRIED = "JobRetried"  # failed attempts that will run again
DEAD = "JobDead"  # jobs given up on (retries spent, non-retryable, malformed or unknown)
DUPLICATE = "JobDuplicate"  # entry-topic deliveries of a unique job whose key another job holds (skipped)
DURATION = "JobDurationMs"  # each attempt's run time
START_LATENCY = "JobStartLatencyMs"  # from enqueue (or run_at, when later) to the first attempt's start
MAX_VALUES_PER_METRIC = 100  # EMF carries at most 100 values per metric in one line


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    durations_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


class JobMetrics:
    """Collects a batch's figures by job name; `flush()` writes them (stdout, where Lambda's log picks EMF up)."""

    def __init__(self, *, namespace: str = NAMESPACE) -> None:
        self._namespace = namespace
        self._tallies: dict[str, _Tally] = defaultdict(_Tally)

    def count(self, job: str, metric: str) -> None:
        self._tallies[job].counts[metric] += 1

    def duration(self, job: str, seconds: float) -> None:
        self._tallies[job].durations_ms.append(max(seconds, 0.0) * 1000)

    def start_latency(self, job: str, seconds: float) -> None:
        self._tallies[job].latencies_ms.append(max(seconds, 0.0) * 1000)

    def flush(self) -> None:
        tallies, self._tallies = self._tallies, defaultdict(_Tally)
        for job, tally in sorted(tallies.items()):
            metrics = EphemeralMetrics(namespace=self._namespace, service=SERVICE)
            metrics.add_dimension(DIMENSION, job)
            counts = dict(tally.counts)
            if counts.get(SUCCEEDED) or counts.get(FAILED):  # the failure rate's two series, side by side
                counts.setdefault(SUCCEEDED, 0)
                counts.setdefault(FAILED, 0)
            for name, count in sorted(counts.items()):
                if count or name in (SUCCEEDED, FAILED):
                    metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
            for name, values in ((DURATION, tally.durations_ms), (START_LATENCY, tally.latencies_ms)):
                for milliseconds in values[-MAX_VALUES_PER_METRIC:]:
                    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)
            metrics.flush_metrics()
