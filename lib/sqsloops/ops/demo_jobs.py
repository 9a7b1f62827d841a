"""`sqsloops demo jobs`: the example app's jobs (app/jobs.py) on an embedded AWS, each behaviour checked from outside.

Given a started embedded AWS (anything with `client()`, `settings` and `time_scale`), `JobsDemo.run()` applies the
app's jobs as `sqsloops jobs apply app.jobs` does, enqueues every kind of job at once, then waits for each and
compares what it promised with what the Jobs table, the queues and the results say:

- immediate jobs succeed on their first attempt;
- a job delayed by an hour goes through a one-time Scheduler schedule (compressed: at x60 it fires a minute later)
  and runs no earlier than its (compressed) hour;
- the minutely cron in Europe/Paris ticks with ids `minutely@<scheduled time>`, a (compressed) minute apart;
- a unique pair runs once (the second enqueue is flagged a duplicate, one row);
- the flaky job succeeds on its third attempt;
- the poison job ends dead in its DLQ, is redriven after its fix flag flips, then succeeds;
- a burst of the concurrency=1 job never has two runs overlapping (their start/end times, from the results);
- the rate-limited job's runs, measured from their start times, stay within 10 % of its rate. Rates are not
  compressed: the loops pace on their own clock, which is the stack's clock (only schedules, alarms, timeouts and
  heartbeats are compressed).

No sqsloops.local and no rich here: the CLI (sqsloops.cli.demo) starts the embedded AWS and prints the table.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqsloops.clients import Clients
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.jobs.client import JobCall, JobClient
from sqsloops.jobs.handle import JobHandle
from sqsloops.jobs.states import JobState
from sqsloops.jobs.store import JobRecord, JobStore
from sqsloops.ops.demo import DemoStack
from sqsloops.ops.jobs_admin import JobsAdmin
from sqsloops.ops.jobs_apply import JobsApply, cron_schedule_name, import_jobs
from sqsloops.ops.root import OpsRoot

APP_MODULE = "app.jobs"
DEFAULT_TIME_SCALE = 60.0  # the demo's hour lasts a minute, its minutely cron ticks every second
DEFAULT_DEADLINE_S = 240.0
DELAY = "1h"
DELAY_S = 3600.0
CRON_TICKS = 3  # ticks to see before the cron's row says ok
RATE_TOLERANCE = 0.10
T = TypeVar("T")


@dataclass(frozen=True)
class JobsDemoOptions:
    burst: int = 12  # concurrency=1 jobs sent at once
    rate_jobs: int = 40  # rate-limited jobs sent at once
    deadline_s: float = DEFAULT_DEADLINE_S  # the whole run's, real seconds
    app_dir: Path = field(default_factory=Path.cwd)  # where `app/` is (the template's directory)
    poll_s: float = 0.25

    def validate(self) -> JobsDemoOptions:
        if self.burst < 2:
            raise ConfigError(f"the concurrency burst needs at least 2 jobs, got {self.burst}")
        if self.rate_jobs < 10:
            raise ConfigError(f"the rate measure needs at least 10 jobs, got {self.rate_jobs}")
        if self.deadline_s <= 0:
            raise ConfigError(f"deadline must be positive, got {self.deadline_s:g}")
        return self


@dataclass(frozen=True)
class Check:
    """One row of the table: a job, what it should do, what it did."""

    job: str
    expected: str
    observed: str
    ok: bool


@dataclass(frozen=True)
class JobsDemoResult:
    checks: tuple[Check, ...]
    applied: int  # changes the apply made
    reapply_changes: int  # changes a second apply planned (0: apply is idempotent)
    time_scale: float
    run_s: float

    @property
    def failure(self) -> str | None:
        """One line saying why the demo failed, or None."""
        bad = [f"{c.job}: expected {c.expected}, observed {c.observed}" for c in self.checks if not c.ok]
        return "; ".join(bad) or None


class JobsDemo:
    """One run against a started embedded stack; run() blocks."""

    def __init__(self, stack: DemoStack, options: JobsDemoOptions | None = None, *, clock: Clock = SYSTEM_CLOCK):
        self.options = (options or JobsDemoOptions()).validate()
        self._stack = stack
        self._clock = clock
        self.settings = stack.settings
        self.root = OpsRoot(self.settings, clients=Clients(stack.client), clock=clock)
        self._give_up_at = 0.0
        self._lock = threading.Lock()

    @property
    def client(self) -> JobClient:
        return self.root.job_client

    def run(self) -> JobsDemoResult:
        started = self._clock.monotonic()
        self._give_up_at = started + self.options.deadline_s
        applier = JobsApply.for_root(self.root)
        _, jobs = import_jobs(APP_MODULE, app_dir=self.options.app_dir)
        applied = len(applier.apply(applier.plan(APP_MODULE, jobs)))
        reapply = len(applier.plan(APP_MODULE, jobs).changes)
        checks: list[tuple[str, Callable[[], Check]]] = [
            ("hello", self.check_immediate),
            ("later", self.check_delayed),
            ("minutely", self.check_cron),
            ("charge_once", self.check_unique),
            ("flaky", self.check_flaky),
            ("poison", self.check_poison),
            ("one_at_a_time", self.check_serial),
            ("limited", self.check_rate),
        ]
        with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="demo-jobs") as pool:
            futures = [pool.submit(self._guarded, job, check) for job, check in checks]
            results = tuple(future.result() for future in futures)
        apply_check = Check(
            "apply app.jobs",
            "changes, then none on a 2nd apply",
            f"{applied} changes, then {reapply}",
            applied > 0 and reapply == 0,
        )
        return JobsDemoResult(
            checks=(apply_check, *results),
            applied=applied,
            reapply_changes=reapply,
            time_scale=self._stack.time_scale,
            run_s=self._clock.monotonic() - started,
        )

    def _guarded(self, job: str, check: Callable[[], Check]) -> Check:
        """A check that raises is a failed row of its job, never a crashed demo."""
        try:
            return check()
        except Exception as exc:  # any failure of a check is its row's observation
            expected = (check.__doc__ or "").strip() or "see the README"
            return Check(job, expected, f"error: {type(exc).__name__}: {exc}", False)

    def _store(self) -> JobStore:
        store = self.root.job_store
        if store is None:
            raise ConfigError("the stack has no Jobs table")
        return store

    # --- waiting ------------------------------------------------------------------------------------------

    def _wait(self, what: str, probe: Callable[[], T | None]) -> T:
        while True:
            value = probe()
            if value:
                return value
            if self._clock.monotonic() >= self._give_up_at:
                raise TimeoutError(f"not within the deadline: {what}")
            self._clock.sleep(self.options.poll_s)

    def _final(self, handle: JobHandle) -> JobRecord:
        def probe() -> JobRecord | None:
            record = self.client.store_get(handle.id)
            return record if record is not None and record.final else None

        return self._wait(f"{handle.job} {handle.id} to finish", probe)

    def _result(self, handle: JobHandle) -> Any:
        self._final(handle)
        return handle.result(timeout=0)

    # --- the checks -----------------------------------------------------------------------------------------

    def check_immediate(self) -> Check:
        """3 jobs due now succeed on their first attempt"""
        handles = [self.client.enqueue("hello", [name]) for name in ("ada", "grace", "linus")]
        results = [self._result(h) for h in handles]
        attempts = sorted({r["attempt"] for r in results})
        ok = [r["greeting"] for r in results] == ["hello ada", "hello grace", "hello linus"] and attempts == [1]
        return Check("hello", "3 succeed, attempt 1", f"{len(results)} succeeded, attempts {attempts}", ok)

    def check_delayed(self) -> Check:
        """a job delayed by an hour goes through a one-time schedule and runs after its hour"""
        sent_at = self._clock.now()
        handle = self.client.enqueue("later", ["in an hour"], delay=DELAY)
        scheduled = handle.status().state is JobState.SCHEDULED and handle.schedule_name is not None
        result = self._result(handle)
        waited = (result["ran_at"] - sent_at) * self._stack.time_scale
        ok = scheduled and waited >= DELAY_S * 0.98  # Scheduler's minute precision, on the compressed timeline
        return Check(
            "later",
            f"via a one-time schedule, runs after {DELAY}",
            f"{'scheduled' if scheduled else 'not scheduled'}, ran after {waited / 60:.1f} min (stack time)",
            ok,
        )

    def check_cron(self) -> Check:
        """the minutely Europe/Paris cron ticks a minute apart, each tick its own job"""
        schedule = self.root.clients.scheduler.get_schedule(
            Name=cron_schedule_name("minutely"), GroupName=self.settings.schedule_group
        )
        zone = schedule.get("ScheduleExpressionTimezone", "UTC")

        store = self._store()

        def ticks() -> list[JobRecord] | None:
            records, _ = store.list("minutely", state=JobState.SUCCEEDED)
            return records if len(records) >= CRON_TICKS else None

        records = self._wait(f"{CRON_TICKS} cron ticks", ticks)
        times = sorted(datetime.fromisoformat(r.id.split("@", 1)[1].replace("Z", "+00:00")) for r in records)
        gaps = {round((b - a).total_seconds()) for a, b in itertools.pairwise(times)}
        ids_ok = all(r.id.startswith("minutely@") for r in records)
        ok = zone == "Europe/Paris" and ids_ok and gaps == {60}
        return Check(
            "minutely",
            f"cron * * * * * Europe/Paris, >= {CRON_TICKS} ticks 60 s apart",
            f"zone {zone}, {len(records)} ticks, gaps {sorted(gaps)} s",
            ok,
        )

    def check_unique(self) -> Check:
        """the second of two enqueues with one key is a duplicate; the job runs once"""
        order = int(self._clock.now() * 1000) % 10**9
        first = self.client.enqueue("charge_once", kwargs={"order_id": order, "amount": 5})
        second = self.client.enqueue("charge_once", kwargs={"order_id": order, "amount": 5})
        self._result(first)
        rows = [r for r in self._store().list("charge_once")[0] if r.key == f"order-{order}"]
        ok = second.duplicate and second.id == first.id and len(rows) == 1
        return Check(
            "charge_once",
            "2 enqueues, 2nd a duplicate, runs once",
            f"2nd {'duplicate' if second.duplicate else 'new'}, {len(rows)} run(s)",
            ok,
        )

    def check_flaky(self) -> Check:
        """the flaky job succeeds on its third attempt"""
        handle = self.client.enqueue("flaky", ["demo"])
        record = self._final(handle)
        attempt = handle.result(timeout=0)["attempt"] if record.state is JobState.SUCCEEDED else None
        ok = record.state is JobState.SUCCEEDED and attempt == 3 and record.attempts == 3
        return Check("flaky", "succeeded on attempt 3", f"{record.state.value} on attempt {attempt}", ok)

    def check_poison(self) -> Check:
        """the poison job is dead in its DLQ, then redriven after its fix and succeeds"""
        from app.jobs import set_poison_fixed  # the app's own module, imported by import_jobs in run()

        admin = JobsAdmin.for_root(self.root)
        handle = self.client.enqueue("poison", ["demo"])
        dead = self._final(handle)
        in_dlq = self._wait("the dead poison job in its DLQ", lambda: admin.depth_of_dlq("poison"))
        set_poison_fixed(self.root.clients.dynamodb, table=self.settings.jobs_table)
        moved = admin.redrive("poison")

        def succeeded() -> JobRecord | None:
            record = self.client.store_get(handle.id)
            return record if record is not None and record.state is JobState.SUCCEEDED else None

        record = self._wait("the redriven poison job to succeed", succeeded)
        ok = dead.state is JobState.DEAD and in_dlq == 1 and handle.id in moved.done and record.attempts == 1
        return Check(
            "poison",
            "dead (in DLQ), fixed, redriven, succeeded",
            f"{dead.state.value} after {dead.attempts} attempts ({in_dlq} in DLQ), redrove {len(moved.done)}, "
            f"{record.state.value} on attempt {record.attempts}",
            ok,
        )

    def check_serial(self) -> Check:
        """a burst of the concurrency=1 job never has two runs at once"""
        results = [self._result(h) for h in self._burst("one_at_a_time", self.options.burst)]
        spans = sorted((r["started_at"], r["finished_at"]) for r in results)
        overlaps = sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)
        return Check(
            "one_at_a_time",
            f"{self.options.burst} jobs, concurrency=1: 0 overlaps",
            f"{len(results)} ran, {overlaps} overlap(s)",
            len(results) == self.options.burst and overlaps == 0,
        )

    def check_rate(self) -> Check:
        """the rate-limited job runs within 10% of its rate"""
        limit = 5.0  # app.jobs: rate="5/s"
        results = [self._result(h) for h in self._burst("limited", self.options.rate_jobs)]
        times = sorted(r["ran_at"] for r in results)
        # The bucket may start with up to one second's worth: measure from the first run after it.
        steady = times[int(limit) :]
        rate = (len(steady) - 1) / (steady[-1] - steady[0]) if steady[-1] > steady[0] else float("inf")
        ok = abs(rate - limit) <= RATE_TOLERANCE * limit
        return Check("limited", f"rate {limit:g}/s +-{RATE_TOLERANCE:.0%}", f"{rate:.2f}/s over {len(times)} runs", ok)

    def _burst(self, job: str, count: int) -> list[JobHandle]:
        results = self.client.enqueue_many([JobCall(job, [n]) for n in range(count)])
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"{len(bad)} of {count} {job} jobs not enqueued: {bad[0]}")
        return [r.handle for r in results if r.handle is not None]
