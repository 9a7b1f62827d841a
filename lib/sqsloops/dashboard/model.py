"""What each dashboard page shows, read through the operator's read models, and the actions it may take.

Every read goes through what the CLI uses: `Watcher` snapshots of `QueueAdmin.status` (ops/watch.py), the Loops
table's tokens, the job catalog, `JobStore` (get, list and count by state through its index, cron ticks), `JobsAdmin`
(dead-letter queues, redrive, discard) and the cost model (ops/cost.py). Nothing here writes but the two actions.

Snapshots are shared: every page and every live refresh reads the latest one, and a new one is taken only when it is
older than `min_sample_interval_s`, so ten open tabs cost AWS what one does. The sampler thread (app.py) takes one
every `sample_interval_s` even when nobody looks, which is what the queue page's chart of the last hour is made of.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from sqsloops.dashboard.history import DEFAULT_WINDOW_S, History, Point
from sqsloops.errors import ConfigError, SqsloopsError
from sqsloops.jobs.catalog import CatalogEntry, read_catalog
from sqsloops.jobs.cron import next_fire_times
from sqsloops.jobs.missed import CronJob
from sqsloops.jobs.states import DEAD, SUCCEEDED, JobState
from sqsloops.jobs.store import MAX_LIST_LIMIT, JobRecord, JobStore, Tick
from sqsloops.ops.cost import Comparison, Workload, compare
from sqsloops.ops.jobs_admin import JobsAdmin, Moved
from sqsloops.ops.registration import QueueStatus
from sqsloops.ops.root import OpsRoot
from sqsloops.ops.watch import Rates, Snapshot, Watcher, default_window_s, describe_error

AWS_ERRORS = (ClientError, BotoCoreError, SqsloopsError)
DEFAULT_MIN_SAMPLE_INTERVAL_S = 1.0
COUNT_CAP = MAX_LIST_LIMIT  # per state: past it the page says "1000+"
RECENT_JOBS = 25
DEAD_LISTED = 100
NEXT_RUNS = 5
TICKS_SHOWN = 30
TICKS_LOOKBACK_S = 7 * 24 * 3600.0
DURATION_SAMPLE = 50  # succeeded rows whose run times make a job type's measured duration
ASSUMED_HANDLER_MS = 100.0  # a queue whose handler time nobody measures (not a job queue): said so on the page
DEFAULT_MEMORY_MB = 256  # template.yaml's ProcessMemoryMB, when the function's own cannot be read
OLDEST_AGE_TTL_S = 60.0  # SQS publishes ApproximateAgeOfOldestMessage once a minute


@dataclass(frozen=True)
class Health:
    """One queue's state in a word (ok, warn, bad) and a line saying why."""

    level: str
    text: str


def health_of(status: QueueStatus) -> Health:
    if status.broken is not None:
        return Health("bad", f"handler unusable: {status.broken.reason}")
    if status.error is not None:
        return Health("bad", status.error)
    if not status.config.enabled:
        return Health("warn", "paused (registration disabled)")
    if status.loops.stale:
        return Health("warn", f"{status.loops.stale} stale loop(s): the restart sweep takes them over")
    if status.dlq_depth is not None and status.dlq_depth.visible + status.dlq_depth.in_flight:
        return Health("warn", "messages in the dead-letter queue")
    return Health("ok", "ok")


@dataclass(frozen=True)
class QueueRow:
    status: QueueStatus
    rates: Rates
    health: Health
    oldest_age_s: float | None  # ApproximateAgeOfOldestMessage from CloudWatch; None where it is not published

    @property
    def name(self) -> str:
        return self.status.queue_url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class LoopRow:
    """One token of the Loops table, as a row: its heartbeat age says whether its loop is alive."""

    slot: str
    loop_id: str
    heartbeat_age_s: float
    age_s: float
    processed: int
    failed: int
    invocations: int
    retired: bool
    stale: bool


@dataclass(frozen=True)
class QueueView:
    row: QueueRow
    loops: list[LoopRow]
    points: list[Point]
    jobs: list[str]  # job types whose queue this is


@dataclass(frozen=True)
class JobTypeRow:
    entry: CatalogEntry
    counts: dict[str, int]  # state -> rows, capped at COUNT_CAP


@dataclass(frozen=True)
class JobTypeView:
    entry: CatalogEntry
    counts: dict[str, int]
    recent: list[JobRecord]


@dataclass(frozen=True)
class DeadView:
    entry: CatalogEntry
    rows: list[JobRecord]
    dlq_messages: int | None
    dlq_error: str | None


@dataclass(frozen=True)
class ActionOutcome:
    """What an action did, in words, with the messages it moved; error when it failed as a whole."""

    action: str  # "redrive" or "discard"
    job: str
    moved: Moved | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.moved is not None and not self.moved.failed

    @property
    def message(self) -> str:
        if self.error is not None or self.moved is None:
            return f"{self.action} of {self.job} failed: {self.error}"
        done = len(self.moved.done)
        if self.action == "redrive":
            said = (
                f"redrove {done} job(s) of {self.job}: {done} message(s) moved from its dead-letter queue "
                "back to its queue"
            )
        else:
            said = f"discarded {done} job(s) of {self.job}: {done} message(s) deleted from its dead-letter queue"
        if self.moved.failed:
            said += f"; {len(self.moved.failed)} not moved"
        if self.moved.unreadable:
            said += f"; {self.moved.unreadable} unreadable message(s) left where they are"
        return said


@dataclass(frozen=True)
class NextRun:
    local: datetime  # in the job's own zone
    utc: datetime


@dataclass(frozen=True)
class CronView:
    entry: CatalogEntry
    next_runs: list[NextRun] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class CostRow:
    """One queue's (or job type's) monthly estimate at what the dashboard measured."""

    name: str
    kind: str  # "queue" or "job"
    rate_per_s: float
    handler_ms: float
    handler_measured: bool
    memory_mb: int
    comparison: Comparison | None
    error: str | None = None


class Dashboard:
    """The read side of every page, built from one OpsRoot (the CLI's or the embedded AWS's)."""

    def __init__(
        self,
        root: OpsRoot,
        *,
        history_s: float = DEFAULT_WINDOW_S,
        min_sample_interval_s: float = DEFAULT_MIN_SAMPLE_INTERVAL_S,
    ) -> None:
        self.root = root
        self.settings = root.settings
        self.clock = root.clock
        window_s = default_window_s(self.settings.heartbeat_s)
        self.watcher = Watcher(
            root.admin,
            window_s=window_s,
            min_span_s=min(self.settings.heartbeat_s, window_s),
            clock=self.clock,
        )
        self.history = History(window_s=history_s)
        self._min_interval_s = min_sample_interval_s
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None
        self._latest_at = 0.0
        self._oldest: dict[str, tuple[float, float | None]] = {}  # queue name -> (read at, age)

    # --- queues -----------------------------------------------------------------------------------------------

    def sample(self) -> Snapshot:
        """A fresh snapshot (a failed read becomes its error), recorded in the history."""
        with self._lock:
            return self._sample_locked()

    def snapshot(self) -> Snapshot:
        """The latest snapshot, or a new one if it is older than the minimum interval."""
        with self._lock:
            if self._latest is None or self.clock.monotonic() - self._latest_at >= self._min_interval_s:
                return self._sample_locked()
            return self._latest

    def _sample_locked(self) -> Snapshot:
        snapshot = self.watcher.refresh()
        self.history.add(snapshot)
        self._latest, self._latest_at = snapshot, self.clock.monotonic()
        return snapshot

    def rows(self, snapshot: Snapshot) -> list[QueueRow]:
        return [
            QueueRow(s, snapshot.rates_of(s.queue_url), health_of(s), self._oldest_age_s(s.queue_url))
            for s in snapshot.statuses
        ]

    def queue(self, queue_url: str) -> QueueView | None:
        """One registered queue's row, loops and history; None when it is not registered."""
        snapshot = self.snapshot()
        url = self.root.admin.resolve(queue_url)
        status = next((s for s in snapshot.statuses if s.queue_url == url), None)
        if status is None:
            return None
        now = self.clock.now()
        stale_after_s = self.settings.stale_after_s
        loops = [
            LoopRow(
                slot=t.slot,
                loop_id=t.loop_id,
                heartbeat_age_s=max(0.0, now - t.last_used),
                age_s=max(0.0, now - t.created_at),
                processed=t.processed,
                failed=t.failed,
                invocations=t.invocations,
                retired=t.retired,
                stale=not t.retired and t.is_stale(now, stale_after_s),
            )
            for t in self.root.admin.tokens.list(url, live=False)
        ]
        row = QueueRow(status, snapshot.rates_of(url), health_of(status), self._oldest_age_s(url))
        jobs = sorted(e.job for e in self.catalog().values() if e.queue_url == url)
        return QueueView(row, loops, self.history.of(url), jobs)

    def _oldest_age_s(self, queue_url: str) -> float | None:
        """The queue's ApproximateAgeOfOldestMessage (the last minute's maximum), read at most once a minute."""
        name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        mono = self.clock.monotonic()
        cached = self._oldest.get(name)
        if cached is not None and mono - cached[0] < OLDEST_AGE_TTL_S:
            return cached[1]
        age: float | None = None
        end = datetime.fromtimestamp(self.clock.now(), UTC)
        try:
            datapoints = self.root.clients.cloudwatch.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": name}],
                StartTime=end - timedelta(minutes=5),
                EndTime=end,
                Period=60,
                Statistics=["Maximum"],
            ).get("Datapoints", [])
            if datapoints:
                newest = max(datapoints, key=lambda d: d["Timestamp"])
                age = float(newest.get("Maximum", 0.0))
        except AWS_ERRORS:
            age = None  # not allowed or not there: the column says "-"
        self._oldest[name] = (mono, age)
        return age

    # --- jobs -------------------------------------------------------------------------------------------------

    @property
    def store(self) -> JobStore | None:
        return self.root.job_store

    def catalog(self) -> dict[str, CatalogEntry]:
        """Job name -> entry, as `jobs apply` wrote it; empty on a stack without the job layer."""
        if not self.settings.jobs_table:
            return {}
        return dict(read_catalog(self.root.clients.dynamodb, table_name=self.settings.jobs_table).entries)

    def entry(self, job: str) -> CatalogEntry | None:
        return self.catalog().get(job)

    def counts(self, job: str) -> dict[str, int]:
        store = self._store()
        return {state.value: store.count(job, state, cap=COUNT_CAP) for state in JobState}

    def job_types(self) -> list[JobTypeRow]:
        return [JobTypeRow(entry, self.counts(name)) for name, entry in sorted(self.catalog().items())]

    def job_type(self, job: str) -> JobTypeView | None:
        entry = self.entry(job)
        if entry is None:
            return None
        recent, _ = self._store().list(job, limit=RECENT_JOBS)
        return JobTypeView(entry, self.counts(job), recent)

    def job(self, job_id: str) -> JobRecord | None:
        return self._store().get(job_id)

    def dead(self, job: str) -> DeadView | None:
        entry = self.entry(job)
        if entry is None:
            return None
        rows, _ = self._store().list(job, state=DEAD, limit=DEAD_LISTED)
        messages: int | None = None
        error: str | None = None
        try:
            messages = self._jobs_admin.depth_of_dlq(job)
        except AWS_ERRORS as exc:
            error = describe_error(exc)
        return DeadView(entry, rows, messages, error)

    def redrive(self, job: str, ids: list[str] | None) -> ActionOutcome:
        """Move the job's dead messages (all, or those ids) back to its queue: JobsAdmin.redrive."""
        return self._act("redrive", job, lambda: self._jobs_admin.redrive(job, ids=ids))

    def discard(self, job: str, ids: list[str] | None) -> ActionOutcome:
        return self._act("discard", job, lambda: self._jobs_admin.discard(job, ids=ids))

    def _act(self, action: str, job: str, run: Any) -> ActionOutcome:
        try:
            moved: Moved = run()
        except AWS_ERRORS as exc:
            return ActionOutcome(action, job, error=describe_error(exc))
        return ActionOutcome(action, job, moved=moved)

    @cached_property
    def _jobs_admin(self) -> JobsAdmin:
        return JobsAdmin.for_root(self.root)

    def _store(self) -> JobStore:
        store = self.store
        if store is None:
            raise ConfigError("the stack has no Jobs table: set SQSLOOPS_JOBS_TABLE (or pass --stack NAME)")
        return store

    # --- crons ------------------------------------------------------------------------------------------------

    def crons(self) -> list[CronView]:
        """Every cron job in the catalog: its next firings in its own zone, and its recorded ticks, newest first."""
        now = self.clock.now()
        views: list[CronView] = []
        for name, entry in sorted(self.catalog().items()):
            if entry.cron is None:
                continue
            try:
                spec = CronJob.of(entry)
                zone = ZoneInfo(spec.tz)
                after = datetime.fromtimestamp(now, UTC)
                fire_times = next_fire_times(spec.expression, spec.tz, after, NEXT_RUNS)
                runs = [NextRun(at.astimezone(zone), at) for at in fire_times]
                ticks = self._store().ticks(name, since=now - TICKS_LOOKBACK_S, limit=TICKS_SHOWN)
            except (*AWS_ERRORS, ValueError) as exc:
                views.append(CronView(entry, error=describe_error(exc)))
                continue
            views.append(CronView(entry, runs, ticks))
        return views

    # --- cost -------------------------------------------------------------------------------------------------

    def costs(self) -> list[CostRow]:
        """Per registered queue and per job type: the month at the rate the loops' counters show now (the
        throughput window) and the handler time the job rows measured (an assumption, said so, for plain queues)."""
        snapshot = self.snapshot()
        memory_mb = self._memory_mb
        catalog = self.catalog()
        by_queue: dict[str, list[str]] = {}
        for name, entry in catalog.items():
            by_queue.setdefault(entry.queue_url, []).append(name)
        durations = {name: self._measured_ms(name) for name in catalog}
        rows: list[CostRow] = []
        job_rows: list[CostRow] = []
        for status in snapshot.statuses:
            rate = snapshot.rates_of(status.queue_url).processed_per_s or 0.0
            measured = [ms for name in by_queue.get(status.queue_url, []) if (ms := durations[name]) is not None]
            handler_ms = statistics.median(measured) if measured else ASSUMED_HANDLER_MS
            name = status.queue_url.rstrip("/").rsplit("/", 1)[-1]
            rows.append(
                self._estimate(
                    name, "queue", status, rate=rate, handler_ms=handler_ms, measured=bool(measured), memory=memory_mb
                )
            )
            for job in sorted(by_queue.get(status.queue_url, [])):
                ms = durations[job]
                sharing = len(by_queue[status.queue_url])
                job_rows.append(
                    self._estimate(
                        job,
                        "job",
                        status,
                        rate=rate / sharing,
                        handler_ms=ms or ASSUMED_HANDLER_MS,
                        measured=ms is not None,
                        memory=memory_mb,
                    )
                )
        return rows + job_rows

    @staticmethod
    def _estimate(
        name: str, kind: str, status: QueueStatus, *, rate: float, handler_ms: float, measured: bool, memory: int
    ) -> CostRow:
        config = status.config
        workload = Workload(
            rate_per_s=rate,
            handler_ms=max(handler_ms, 0.001),
            memory_mb=memory,
            min_loops=config.min_loops,
            max_loops=config.max_loops,
            batch_size=config.batch_size,
        )
        try:
            comparison: Comparison | None = compare(workload.validate())
            error = None
        except ConfigError as exc:
            comparison, error = None, str(exc)
        return CostRow(name, kind, rate, handler_ms, measured, memory, comparison, error)

    def _measured_ms(self, job: str) -> float | None:
        """The median run time of the job's latest successes (started_at to finished_at), in ms."""
        store = self.store
        if store is None:
            return None
        try:
            rows, _ = store.list(job, state=SUCCEEDED, limit=DURATION_SAMPLE)
        except AWS_ERRORS:
            return None
        runs = [
            (r.finished_at - r.started_at) * 1000
            for r in rows
            if r.started_at is not None and r.finished_at is not None and r.finished_at >= r.started_at
        ]
        return statistics.median(runs) if runs else None

    @cached_property
    def _memory_mb(self) -> int:
        """The process function's memory, where loops (and python:/jobs: handlers) run."""
        try:
            config = self.root.clients.lambda_.get_function_configuration(FunctionName=self.settings.process_function)
            return int(config.get("MemorySize", DEFAULT_MEMORY_MB))
        except (*AWS_ERRORS, ValueError):
            return DEFAULT_MEMORY_MB
