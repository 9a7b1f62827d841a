"""The missed-run sweep: EventBridge Scheduler has no notion of a missed run, so the tick ledger finds the gaps.

One rule says whether a cron firing happened: **its tick is in the ledger (`JobStore.ticks`), or the Jobs table
holds a row under its tick id `NAME@<scheduled time>`**. The runner records no tick itself: a Scheduler delivery
becomes a job row (queued, or created by `mark_running`) under that id, and the sweep copies it into the ledger
(`record_tick(job_id=...)`, a conditional put, so a tick written by anyone is never written twice).

Per cron job, each sweep looks at the firings after the newest recorded tick (or, with none, within `lookback_s`
and after the schedule's creation), up to `now - grace_s` (a firing still on its way is not missed), and applies
the job's policy to those that did not happen:

- skip: each is recorded as skipped, with the reason.
- run_once: the latest one is enqueued with id `NAME@<time>`; the older ones are recorded as skipped.
- catch_up: each one within the catch-up window is enqueued under its own tick id; older ones are recorded skipped.

Enqueuing under the tick id is what makes a late real delivery (Scheduler retries a failed delivery for an hour,
ops/jobs_apply.py CRON_RETRY_POLICY) harmless: the runner finds the row and runs that firing once. Downtime shows
up the same way whatever its cause: a disabled schedule (the sweep leaves a paused job alone and applies the
policy after it is resumed), or ticks that failed delivery and went to the schedules' DLQ (no row, no tick).

One bad job never stops the sweep: its error is reported in its `JobSweep` and the next job is swept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.jobs.cron import MissedPolicy, fire_times_between, plan_missed, tick_job_id
from sqsloops.jobs.definition import JobFunction
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient

    from sqsloops.jobs.store import JobStore

DEFAULT_GRACE_S = 300.0  # a firing younger than this may still be on its way (or in the queue's backlog)
DEFAULT_LOOKBACK_S = 24 * 3600.0  # how far back a job with no recorded tick is looked at
CRON_SCHEDULE_PREFIX = "cron-"  # the cron schedules `jobs apply` creates (ops/jobs_apply.py, not importable here)

SweepState = Literal["swept", "paused", "not_applied", "error"]


class Enqueuer(Protocol):
    """What the sweep sends a firing with: `JobClient.enqueue`."""

    def enqueue(self, job: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, id: str) -> Any:
        """A handle; a job already under `id` is a duplicate, and nothing is sent."""


@dataclass(frozen=True, kw_only=True)
class CronJob:
    """A cron job as the sweep needs it. `target` is what is enqueued: the job function, or its name (catalog)."""

    name: str
    expression: str
    tz: str
    missed: MissedPolicy
    catch_up_window_s: float
    target: JobFunction[..., Any] | str

    @classmethod
    def of(cls, fn: JobFunction[..., Any]) -> CronJob:
        options = fn.options
        if options.cron is None:
            raise ValueError(f"job {fn.name!r} has no cron schedule")
        return cls(
            name=fn.name,
            expression=options.cron.source,
            tz=options.tz,
            missed=options.missed,
            catch_up_window_s=options.catch_up_window_s,
            target=fn,
        )


def cron_jobs(functions: Iterable[JobFunction[..., Any]]) -> list[CronJob]:
    """The cron jobs among `functions` (the others have nothing to miss)."""
    return [CronJob.of(fn) for fn in functions if fn.options.cron is not None]


@dataclass
class JobSweep:
    """What one sweep did for one job: tick ids copied into the ledger, enqueued, or recorded as skipped."""

    job: str
    state: SweepState = "swept"
    recorded: list[str] = field(default_factory=list)  # delivered firings whose tick the sweep recorded
    enqueued: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "state": self.state,
            "recorded": self.recorded,
            "enqueued": self.enqueued,
            "skipped": self.skipped,
            **({"error": self.error} if self.error else {}),
        }


def sweep_missed(
    jobs: Iterable[CronJob | JobFunction[..., Any]],
    *,
    store: JobStore,
    client: Enqueuer,
    clock: Clock = SYSTEM_CLOCK,
    scheduler: EventBridgeSchedulerClient | None = None,
    schedule_group: str = "",
    grace_s: float = DEFAULT_GRACE_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> list[JobSweep]:
    """Apply each cron job's missed-run policy (module doc). With `scheduler`, a job whose schedule is disabled is
    left alone (`paused`), one with no schedule is `not_applied`, and no firing before the schedule's creation is
    missed."""
    if grace_s < 0 or lookback_s <= 0:
        raise ValueError(f"grace_s must not be negative and lookback_s must be positive, got {grace_s}, {lookback_s}")
    sweeper = _Sweeper(store, client, clock, scheduler, schedule_group, grace_s, lookback_s)
    results: list[JobSweep] = []
    for item in jobs:
        result = JobSweep(item.name)
        try:
            sweeper.sweep(item if isinstance(item, CronJob) else CronJob.of(item), result)
        except Exception as exc:  # one bad job (a throttled table, a bad declaration) never stops the others
            result.state, result.error = "error", f"{type(exc).__name__}: {exc}"
            logger.warning("missed-run sweep failed for a job", extra={"job": item.name, "error": result.error})
        results.append(result)
    return results


@dataclass(frozen=True)
class _Sweeper:
    store: JobStore
    client: Enqueuer
    clock: Clock
    scheduler: EventBridgeSchedulerClient | None
    schedule_group: str
    grace_s: float
    lookback_s: float

    def sweep(self, spec: CronJob, result: JobSweep) -> None:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        start = self.start(spec, now, result)
        cutoff = now - timedelta(seconds=self.grace_s)
        if start is None or cutoff <= start:
            return
        missed: list[datetime] = []
        for moment in fire_times_between(spec.expression, spec.tz, start, cutoff):
            tick_id = tick_job_id(spec.name, moment)
            if self.store.get(tick_id) is not None:  # delivered (or enqueued by an earlier sweep): into the ledger
                if self.store.record_tick(spec.name, moment.timestamp(), job_id=tick_id):
                    result.recorded.append(tick_id)
            else:
                missed.append(moment)
        chosen = set(plan_missed(spec.missed, missed, (), now, spec.catch_up_window_s))  # the window counts from now
        for moment in missed:
            tick_id = tick_job_id(spec.name, moment)
            if moment in chosen:
                self.client.enqueue(spec.target, (), {}, id=tick_id)  # a job under this id already: nothing sent
                self.store.record_tick(spec.name, moment.timestamp(), job_id=tick_id)
                result.enqueued.append(tick_id)
            elif self.store.record_tick(spec.name, moment.timestamp(), skipped_reason=_reason(spec)):
                result.skipped.append(tick_id)

    def start(self, spec: CronJob, now: datetime, result: JobSweep) -> datetime | None:
        """The first moment a firing of `spec` may have been missed; None when the job is not to be swept."""
        window_s = spec.catch_up_window_s if spec.missed == "catch_up" else 0.0
        start = now - timedelta(seconds=max(self.lookback_s, window_s))
        if self.scheduler is not None:
            try:
                schedule = self.scheduler.get_schedule(
                    Name=CRON_SCHEDULE_PREFIX + spec.name, GroupName=self.schedule_group
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                result.state = "not_applied"
                return None
            if schedule.get("State") == "DISABLED":
                result.state = "paused"
                return None
            created = schedule.get("CreationDate")
            if isinstance(created, datetime):
                start = max(start, created.astimezone(UTC))
        newest = self.store.ticks(spec.name, since=start.timestamp(), limit=1)
        if newest:
            start = max(start, datetime.fromtimestamp(newest[0].scheduled_at, UTC) + timedelta(seconds=1))
        return start


def _reason(spec: CronJob) -> str:
    if spec.missed == "skip":
        return "missed: not delivered, and the missed-run policy is skip"
    if spec.missed == "run_once":
        return "missed: not delivered; run_once ran only the latest missed firing"
    return f"missed: not delivered, and older than the catch-up window ({spec.catch_up_window_s:g} s)"
