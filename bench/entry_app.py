"""The no-op jobs of the entry-points benchmark (bench/entry.py), applied as `jobs:bench.entry_app`.

One job per door, so that each door's jobs land on a queue of their own (`jobs apply` makes one per job) and are
counted there: `entry_direct` (JobClient.enqueue_many), `entry_api` (POST /jobs/batch), `entry_sns` (the entry
topic). The three take the same arguments, so every door carries jobs of the same size. Untracked: no Jobs table row
at any door, so the comparison is of the doors alone. Like bench/jobs_app.py they reach the process function's
workers in a layer (bench.entry.ENTRY_APP_LAYER) and import nothing but sqsloops and the standard library.

`probe=True` makes a job print the moment it starts (`PROBE <n> <epoch seconds>`): the benchmark reads that line
from the function log for enqueue-to-start latency. It prints `n`, not the job id: a bare SNS message's id is the
SQS message id of its delivery, which the producer never learns.
"""

from __future__ import annotations

import time

from sqsloops.jobs import job

PROBE = "bench-entry started"
TIMEOUT = "5s"  # fits any invocation under the benchmark's time compression


def _run(n: int, payload: str, probe: bool) -> None:
    if probe:
        print(f"{PROBE} {n} {time.time():.6f}", flush=True)


@job(track=False, timeout=TIMEOUT, retries=0, concurrency=1)  # one loop, pinned for the latency phase
def entry_direct(n: int, payload: str, probe: bool = False) -> None:
    """Enqueued by JobClient.enqueue_many."""
    _run(n, payload, probe)


@job(track=False, timeout=TIMEOUT, retries=0, concurrency=1)  # one loop, pinned for the latency phase
def entry_api(n: int, payload: str, probe: bool = False) -> None:
    """Enqueued through the HTTP API (POST /jobs/batch, POST /jobs)."""
    _run(n, payload, probe)


@job(track=False, timeout=TIMEOUT, retries=0, concurrency=1)  # one loop, pinned for the latency phase
def entry_sns(n: int, payload: str, probe: bool = False) -> None:
    """Published to the entry topic as a bare message (args as the body, a `job` attribute)."""
    _run(n, payload, probe)
