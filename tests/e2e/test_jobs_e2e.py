"""The job layer end to end: `sqsloops demo jobs` on an embedded AWS of its own (time x60), as `make demo-jobs` runs it.

The embedded AWS is one per process (moto's backends are global), and the package's runs at x10, where the delayed
job's hour would last six minutes: so the demo runs in a subprocess, once for this module, and each test reads the
line its path printed (`check JOB: ok|FAILED: observed`), which the driver (sqsloops.ops.demo_jobs) measured from
outside: the Jobs table's rows and results, the queues, the schedule.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_demo import sqsloops_command

pytestmark = pytest.mark.e2e

DEMO_DEADLINE_S = 240  # the driver's own, real seconds; the run takes ~70 s on a quiet 2-core machine


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str

    def check(self, job: str) -> tuple[bool, str]:
        """(ok, observed) of the job's line."""
        match = re.search(rf"^check {re.escape(job)}: (ok|FAILED): (.*)$", self.stdout, re.MULTILINE)
        assert match, f"no line for {job}:\n{self.stdout}\n{self.stderr}"
        return match.group(1) == "ok", match.group(2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out: Path = tmp_path_factory.mktemp("demo-jobs")
    args = [
        "demo",
        "jobs",
        "--out",
        str(out),
        "--burst",
        "6",
        "--rate-jobs",
        "20",
        "--deadline-s",
        str(DEMO_DEADLINE_S),
    ]
    completed = subprocess.run(
        sqsloops_command(*args), capture_output=True, text=True, timeout=DEMO_DEADLINE_S + 120, check=False
    )
    return DemoRun(completed.returncode, completed.stdout, completed.stderr)


def test_the_jobs_demo_passes_every_check_and_says_so(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo jobs ok: all 9 checks as expected" in demo.stdout


def test_apply_creates_the_apps_resources_and_a_second_apply_changes_nothing(demo: DemoRun) -> None:
    ok, observed = demo.check("apply app.jobs")
    assert ok, observed
    assert re.fullmatch(r"[1-9]\d* changes, then 0", observed)


def test_a_job_delayed_by_an_hour_runs_after_its_hour_through_a_one_time_schedule(demo: DemoRun) -> None:
    ok, observed = demo.check("later")
    assert ok, observed
    minutes = float(re.fullmatch(r"scheduled, ran after ([\d.]+) min \(stack time\)", observed).group(1))  # type: ignore[union-attr]
    assert minutes >= 58.8


def test_a_cron_in_a_non_utc_zone_ticks_a_minute_apart(demo: DemoRun) -> None:
    ok, observed = demo.check("minutely")
    assert ok, observed
    assert observed.startswith("zone Europe/Paris, ")
    assert observed.endswith("gaps [60] s")


def test_a_unique_pair_runs_once(demo: DemoRun) -> None:
    ok, observed = demo.check("charge_once")
    assert ok, observed
    assert observed == "2nd duplicate, 1 run(s)"


def test_a_flaky_job_is_retried_until_it_succeeds_on_its_third_attempt(demo: DemoRun) -> None:
    ok, observed = demo.check("flaky")
    assert ok, observed
    assert observed == "succeeded on attempt 3"


def test_a_poison_job_dies_into_its_dlq_and_succeeds_once_redriven(demo: DemoRun) -> None:
    ok, observed = demo.check("poison")
    assert ok, observed
    assert re.fullmatch(r"dead after \d+ attempts \(1 in DLQ\), redrove 1, succeeded on attempt 1", observed)


def test_a_concurrency_1_job_never_runs_twice_at_once(demo: DemoRun) -> None:
    ok, observed = demo.check("one_at_a_time")
    assert ok, observed
    assert observed == "6 ran, 0 overlap(s)"
