"""Every benchmark runs end to end at a tiny size, so that none of them can rot between the runs that matter.

They run at once, each as its own process with its own embedded AWS (one per process), exactly as
`make bench-…` runs them. What is checked is that each finishes and prints its table, never its figures:
timing on a shared machine is no test. Only recovery's "messages lost" is a correctness figure, and it must be 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 150.0  # per benchmark, on a loaded 2-core machine; they normally finish in well under a minute
TINY = {
    "throughput": ["--messages", "50", "--consumers", "1", "--repeat", "1", "--time-scale", "20"],
    "scaling": ["--burst", "300", "--max-loops", "2", "--repeat", "1", "--time-scale", "20", "--tick", "0.2"],
    "recovery": ["--loops", "2", "--kill", "1", "--repeat", "1", "--time-scale", "20", "--rate", "50"],
    "jobs": ["--jobs", "50", "--consumers", "1", "--repeat", "1", "--samples", "3", "--time-scale", "20"],
    "entry": ["--jobs", "50", "--repeat", "1", "--samples", "3"],  # time x1: the jobs-api function's 29 s timeout
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Run the benchmarks in parallel; (exit code, output) of each."""
    logs = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    procs = {
        name: subprocess.Popen(  # our own interpreter and modules
            [sys.executable, "-m", f"bench.{name}", *args, "--log-dir", str(logs / name)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, args in TINY.items()
    }
    give_up_at = time.monotonic() + DEADLINE_S
    results: dict[str, tuple[int, str]] = {}
    for name, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=max(1.0, give_up_at - time.monotonic()))
        except subprocess.TimeoutExpired:
            out = _stop(proc)
        results[name] = (proc.returncode, out.decode(errors="replace"))
    return results


def _stop(proc: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM lets the benchmark stop its embedded AWS and workers; the group is killed if it does not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return out


def test_throughput_prints_every_consumer_with_its_ratio_and_api_calls(outputs: dict[str, tuple[int, str]]) -> None:
    code, out = outputs["throughput"]
    assert code == 0, out
    assert "msgs/s  x raw  API calls/msg" in out
    for consumer in ("raw boto3", "sqsloops python: noop", "sqsloops lambda: noop", "2016 pattern", "celery"):
        assert f"\n{consumer}" in out, consumer
    assert "target sqsloops <= 0.25 API calls/msg" in out


def test_scaling_prints_both_cases_and_the_target(outputs: dict[str, tuple[int, str]]) -> None:
    code, out = outputs["scaling"]
    assert code == 0, out
    assert "first extra loop" in out
    assert "\nmin 1 " in out
    assert "\nfrom zero " in out
    assert "target from zero: max loops within P + one sweep" in out


def test_recovery_brings_killed_loops_back_and_loses_no_message(outputs: dict[str, tuple[int, str]]) -> None:
    code, out = outputs["recovery"]
    assert code == 0, out
    assert "all back after (median)" in out
    assert "target messages lost = 0: met" in out


def test_jobs_prints_every_figure_with_its_target(outputs: dict[str, tuple[int, str]]) -> None:
    code, out = outputs["jobs"]
    assert code == 0, out
    assert "target  verdict" in out
    for figure in (
        "enqueue: untracked / bare",
        "throughput: tracked / python:",
        "throughput: untracked / celery",
        "latency enqueue->start tracked: p50 / p99 (ms)",
        "SQS requests/job untracked: loops on the backlog",
        "DynamoDB writes/tracked job, success",
        "tracking cost per 1M jobs",
    ):
        assert f"\n{figure}" in out, figure


def test_entry_prints_every_door_with_its_latency_and_requests(outputs: dict[str, tuple[int, str]]) -> None:
    code, out = outputs["entry"]
    assert code == 0, out
    assert "value  detail" in out  # the table's header
    for door in ("enqueue_many", "POST /jobs/batch", "SNS PublishBatch"):
        assert f"\nthroughput: {door} (jobs/s)" in out, door
        assert f"\nrequests/job {door} (batched)" in out, door
    for single in ("enqueue", "POST /jobs", "SNS Publish"):
        assert f"\nlatency {single}: call p50 / p99 (ms)" in out, single
        assert f"\nlatency {single} -> start: p50 / p99 (ms)" in out, single
    for door in ("POST /jobs", "SNS Publish"):
        assert f"\n  added by {door} over enqueue" in out, door
