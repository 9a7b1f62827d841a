"""The missed-run sweep from the job catalog, run by the restart function on moto: `jobs apply` writes each cron job's
schedule into the catalog, and the restart function (which imports no user code) sweeps from it every run. One bad
entry fails alone, and neither the missed-run sweep nor the restart sweep of loops stops the other."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from restart import lambda_function as restart_app
from sqsloops.clock import ManualClock
from sqsloops.jobs import job
from sqsloops.jobs.catalog import CatalogEntry, read_catalog, write_catalog
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.missed import DEFAULT_GRACE_S, CronJob
from sqsloops.jobs.root import JobsRoot
from sqsloops.registry import QueueConfig
from sqsloops.root import Root
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.fixtures.fakes import RecordingLauncher
from tests.functional.jobs.apply_kit import STACK, JobStack, job_stack

HOURS = 3


@job(cron="0 * * * *", missed="run_once")
def hourly_report() -> None:
    return None


@job(cron="30 2 * * *", tz="Europe/Paris", missed="catch_up", catch_up_window="3d")
def nightly_export() -> None:
    return None


@job
def plain() -> None:
    return None


JOBS: dict[str, JobFunction[..., Any]] = {fn.name: fn for fn in (hourly_report, nightly_export, plain)}


@dataclass
class World:
    stack: JobStack
    root: JobsRoot
    clock: ManualClock
    launcher: RecordingLauncher
    applied_s: float

    @property
    def aws(self) -> Clients:
        return self.stack.aws

    def run(self, root: Root | None = None) -> dict[str, Any]:
        return restart_app.handle({"source": "aws.events"}, None, lambda: root or self.root)

    def queued_ids(self, queue_name: str) -> list[str]:
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.stack.url(queue_name), MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        return sorted(json.loads(message["Body"])["id"] for message in messages)

    def missed_hours(self) -> int:
        """The hourly firings since the jobs were applied, up to the sweep's grace (3 or 4: it depends on the minute
        the test started at, as the schedule's creation time is moto's real clock)."""
        first = math.ceil(self.applied_s / 3600) * 3600
        return len(range(first, int(self.clock.now() - DEFAULT_GRACE_S) + 1, 3600))

    def latest_hour_tick(self) -> str:
        hour = int(self.clock.now() // 3600 * 3600)
        return f"hourly_report@{datetime.fromtimestamp(hour, UTC):%Y-%m-%dT%H:%M:%S}Z"

    def put_entry(self, entry: CatalogEntry) -> None:
        catalog = read_catalog(self.aws.dynamodb, table_name=self.stack.settings.jobs_table)
        write_catalog(
            self.aws.dynamodb,
            table_name=self.stack.settings.jobs_table,
            entries={**catalog.entries, entry.job: entry},
            expected_version=catalog.version,
        )


@pytest.fixture
def world(aws: Clients, settings: Settings) -> World:
    """The jobs applied now (moto stamps the schedules with the real clock); the restart runs HOURS and 10 min later."""
    clock = ManualClock(start_s=time.time())
    applied_s = clock.now()
    stack = job_stack(aws, settings, clock)
    stack.run(JOBS)
    launcher = RecordingLauncher()
    root = JobsRoot(stack.settings, clients=aws, clock=clock, launcher=launcher)
    clock.advance(HOURS * 3600 + 600)
    return World(stack, root, clock, launcher, applied_s)


def test_the_catalog_round_trips_each_cron_jobs_schedule(world: World) -> None:
    entries = read_catalog(world.aws.dynamodb, table_name=world.stack.settings.jobs_table).entries

    hourly, nightly = entries["hourly_report"], entries["nightly_export"]
    assert (hourly.cron, hourly.tz, hourly.missed) == ("0 * * * *", "UTC", "run_once")
    assert (nightly.cron, nightly.tz, nightly.missed, nightly.catch_up_window_s) == (
        "30 2 * * *",
        "Europe/Paris",
        "catch_up",
        3 * 86400,
    )
    assert CronJob.of(nightly) == replace(CronJob.of(nightly_export), target="nightly_export")
    assert (entries["plain"].cron, entries["plain"].tz, entries["plain"].missed) == (None, None, None)
    assert "cron" not in entries["plain"].to_dict()  # a job without a schedule writes nothing more
    assert world.stack.run(JOBS).changes == []  # and a second apply finds the catalog as it wants it


def test_the_restart_function_enqueues_the_latest_missed_firing_of_a_run_once_job(world: World) -> None:
    result = world.run()

    swept = {job["job"]: job for job in result["missed_runs"]["jobs"]}
    assert sorted(swept) == ["hourly_report", "nightly_export"]  # cron jobs only
    latest = world.latest_hour_tick()
    assert swept["hourly_report"]["enqueued"] == [latest]
    assert len(swept["hourly_report"]["skipped"]) == world.missed_hours() - 1  # the older ones, recorded skipped
    assert world.queued_ids(f"{STACK}-hourly_report") == [latest]
    store = world.root.job_store
    assert store is not None
    [tick, *_] = store.ticks("hourly_report", since=0)
    assert tick.job_id == latest
    # the next run finds every firing recorded: nothing more is sent
    again = {job["job"]: job for job in world.run()["missed_runs"]["jobs"]}
    assert (again["hourly_report"]["enqueued"], again["hourly_report"]["skipped"]) == ([], [])
    assert result["sweep"]["scanned"] == 0  # the loops' sweep ran too


def test_one_bad_catalog_entry_stops_neither_the_sweep_nor_the_loop_restarts(world: World) -> None:
    world.put_entry(
        CatalogEntry(
            job="broken",
            queue_url=world.stack.url(f"{STACK}-hourly_report"),
            queue_arn="arn:aws:sqs:us-east-1:123456789012:x",
            cron="0 * * * *",
            tz="Mars/Olympus_Mons",
            missed="run_once",
        )
    )
    work = world.aws.sqs.create_queue(QueueName=f"{STACK}-work")["QueueUrl"]
    world.root.registry.create(QueueConfig(queue_url=work, handler="lambda:worker", min_loops=1, max_loops=1))
    token = world.root.tokens.create(work, slot=0)
    assert token is not None
    world.clock.advance(world.stack.settings.stale_after_s + 1)

    result = world.run()

    swept = {job["job"]: job for job in result["missed_runs"]["jobs"]}
    assert swept["broken"]["state"] == "error"
    assert "Mars/Olympus_Mons" in swept["broken"]["error"]
    assert swept["hourly_report"]["enqueued"] == [world.latest_hour_tick()]
    assert result["sweep"]["started"] == 1
    assert [t.slot for t in world.launcher.started] == [token.slot]


def test_an_unreadable_catalog_is_reported_and_the_loops_are_still_restarted(world: World) -> None:
    world.aws.dynamodb.update_item(  # a catalog written by a newer sqsloops
        TableName=world.stack.settings.jobs_table,
        Key={"pk": {"S": "catalog#jobs"}},
        UpdateExpression="SET #f = :f",
        ExpressionAttributeNames={"#f": "format"},
        ExpressionAttributeValues={":f": {"N": "99"}},
    )
    work = world.aws.sqs.create_queue(QueueName=f"{STACK}-work")["QueueUrl"]
    world.root.registry.create(QueueConfig(queue_url=work, handler="lambda:worker", min_loops=1, max_loops=1))

    result = world.run()

    assert "format 99" in result["missed_runs"]["error"]
    assert result["queues"][work]["started"] == 1


def test_a_failed_loop_sweep_still_sweeps_missed_runs_and_then_raises(world: World) -> None:
    world.aws.dynamodb.delete_table(TableName=world.stack.settings.queues_table)  # registrations cannot be read

    with pytest.raises(Exception, match=r"ResourceNotFound|not found|non-existent"):
        world.run()

    assert world.queued_ids(f"{STACK}-hourly_report") == [world.latest_hour_tick()]


def test_a_stack_without_a_jobs_table_skips_the_missed_run_sweep(world: World) -> None:
    no_jobs = JobsRoot(replace(world.stack.settings, jobs_table=""), clients=world.aws, clock=world.clock)
    core = Root(world.stack.settings, clients=world.aws, clock=world.clock)

    assert "missed_runs" not in world.run(no_jobs)
    assert "missed_runs" not in world.run(core)
    assert world.queued_ids(f"{STACK}-hourly_report") == []
