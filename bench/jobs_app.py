"""The no-op jobs of the jobs benchmark (bench/jobs.py), registered as `jobs:bench.jobs_app`.

They reach the process function's workers in a layer (bench.jobs.JOBS_APP_LAYER), as a deployment's App layer
would, so this module imports nothing but sqsloops and the standard library. `probe=True` makes a job print the
moment it starts (`PROBE <job id> <epoch seconds>`): the benchmark reads that line from the function log to
measure enqueue-to-start latency; the throughput runs leave it off, so they measure nothing but the job layer.
"""

from __future__ import annotations

import time

from sqsloops.jobs import current_job, job

PROBE = "bench-jobs started"
TIMEOUT = "5s"  # fits any invocation under the benchmark's time compression


def _probe() -> None:
    print(f"{PROBE} {current_job().id} {time.time():.6f}", flush=True)


@job(track=False, timeout=TIMEOUT)
def noop_untracked(probe: bool = False) -> None:
    """A high-volume job: no Jobs table row, nothing but the run itself."""
    if probe:
        _probe()


@job(timeout=TIMEOUT)
def noop_tracked(probe: bool = False) -> None:
    """The same job with its status row: queued at enqueue, running, succeeded."""
    if probe:
        _probe()
