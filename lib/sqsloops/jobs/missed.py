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

The restart function sweeps every minute from the job catalog (`sweep_catalog`): it imports no user code, so a cron
job is known there by its catalog entry (expression, zone, policy, window: `jobs apply` writes them), enqueued by
name. Tests and the eager mode may sweep declared functions; both become a `CronJob`, and one path sweeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.jobs.catalog import CatalogEntry, read_catalog
from sqsloops.jobs.cron import (
    CronExpression,
    MissedPolicy,
    check_missed_policy,
    check_timezone,
    fire_times_between,
    plan_missed,
    tick_job_id,
)
from sqsloops.jobs.definition import DEFAULT_CATCH_UP_WINDOW_S, JobFunction
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
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
    def of(cls, item: CronJob | JobFunction[..., Any] | CatalogEntry) -> CronJob:
        """A declared job (enqueued as itself) or a catalog entry (enqueued by name, its fields checked here: a
        catalog written by another sqsloops version may hold what this one cannot sweep); ConfigError if not cron."""
        if isinstance(item, CronJob):
            return item
        if isinstance(item, CatalogEntry):
            if item.cron is None:
                raise ConfigError(f"catalog entry {item.job!r} has no cron schedule")
            CronExpression.parse(item.cron)
            check_timezone(item.tz or "")
            missed = check_missed_policy(item.missed or "")
            window_s = item.catch_up_window_s
            return cls(
                name=item.job,
                expression=item.cron,
                tz=cast(str, item.tz),
                missed=missed,
                catch_up_window_s=float(DEFAULT_CATCH_UP_WINDOW_S if window_s is None else window_s),
                target=item.job,
            )
        options = item.options
        if options.cron is None:
            raise ConfigError(f"job {item.name!r} has no cron schedule")
        return cls(
            name=item.name,
            expression=options.cron.source,
            tz=options.tz,
            missed=options.missed,
            catch_up_window_s=options.catch_up_window_s,
            target=item,
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
    jobs: Iterable[CronJob | JobFunction[..., Any] | CatalogEntry],
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
        result = JobSweep(item.job if isinstance(item, CatalogEntry) else item.name)
        try:
            sweeper.sweep(CronJob.of(item), result)
        except Exception as exc:  # one bad job (a throttled table, a bad declaration or entry) never stops the others
            result.state, result.error = "error", f"{type(exc).__name__}: {exc}"
            logger.warning("missed-run sweep failed for a job", extra={"job": result.job, "error": result.error})
        results.append(result)
    return results


@dataclass
class CatalogSweep:
    """One sweep of the catalog's cron jobs (what the restart function returns under "missed_runs")."""

    jobs: list[JobSweep] = field(default_factory=list)
    error: str | None = None  # the catalog could not be read, or the sweep could not start: no job was swept

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": [job.as_dict() for job in self.jobs],
            "enqueued": sum(len(job.enqueued) for job in self.jobs),
            "skipped": sum(len(job.skipped) for job in self.jobs),
            "errors": sum(job.state == "error" for job in self.jobs),
            **({"error": self.error} if self.error else {}),
        }


def sweep_catalog(
    *,
    dynamodb: DynamoDBClient,
    table_name: str,
    store: JobStore,
    client: Callable[[], Enqueuer],
    clock: Clock = SYSTEM_CLOCK,
    scheduler: EventBridgeSchedulerClient | None = None,
    schedule_group: str = "",
    grace_s: float = DEFAULT_GRACE_S,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> CatalogSweep:
    """Sweep every cron job of the catalog (read once, strongly consistent). `client` is called only when there is
    a cron job to sweep (a stack without one needs no enqueuer). Never raises: a failure is logged and reported."""
    summary = CatalogSweep()
    try:
        catalog = read_catalog(dynamodb, table_name=table_name)
        entries = [catalog.entries[name] for name in sorted(catalog.entries) if catalog.entries[name].cron]
        if entries:
            summary.jobs = sweep_missed(
                entries,
                store=store,
                client=client(),
                clock=clock,
                scheduler=scheduler,
                schedule_group=schedule_group,
                grace_s=grace_s,
                lookback_s=lookback_s,
            )
    except Exception as exc:  # the catalog unreadable, the client not buildable: reported, the caller goes on
        summary.error = f"{type(exc).__name__}: {exc}"
        logger.exception("missed-run sweep of the catalog failed", extra={"error": summary.error})
    logger.info("missed-run sweep done", extra=summary.as_dict())
    return summary


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
