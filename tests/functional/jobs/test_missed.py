"""The missed-run sweep on moto with a ManualClock: each policy, DST in Europe/Paris, and the rule that a firing
already delivered or recorded is never run or recorded again."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs import job
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.missed import CRON_SCHEDULE_PREFIX, CronJob, sweep_missed
from sqsloops.jobs.store import JobStore
from tests.conftest import Clients
from tests.functional.jobs.client_kit import GROUP, ROLE_ARN


@job(cron="0 * * * *", missed="skip")
def hourly_skip() -> None: ...


@job(cron="0 * * * *", missed="run_once")
def hourly_once() -> None: ...


@job(cron="0 * * * *", missed="catch_up", catch_up_window="3h")
def hourly_catch_up() -> None: ...


@job(cron="30 2 * * *", tz="Europe/Paris", missed="catch_up", catch_up_window="3d")
def paris_nightly() -> None: ...


JOBS: tuple[JobFunction[..., Any], ...] = (hourly_skip, hourly_once, hourly_catch_up, paris_nightly)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def tid(fn: JobFunction[..., Any], text: str) -> str:
    return f"{fn.name}@{text}Z"


class World:
    def __init__(self, aws: Clients, jobs_table: str, start: float) -> None:
        self.aws = aws
        self.clock = ManualClock(start_s=start)
        self.store = JobStore(table_name=jobs_table, dynamodb=aws.dynamodb, clock=self.clock)
        self.urls = {fn.name: aws.sqs.create_queue(QueueName=fn.options.queue_name)["QueueUrl"] for fn in JOBS}
        aws.scheduler.create_schedule_group(Name=GROUP)
        self.client = JobClient(
            sqs=aws.sqs,
            scheduler=aws.scheduler,
            store=self.store,
            schedule_group=GROUP,
            scheduler_role_arn=ROLE_ARN,
            jobs=JOBS,
            queue_urls=self.urls,
            clock=self.clock,
        )

    def sweep(self, *jobs: CronJob | JobFunction[..., Any], **options: Any) -> list[Any]:
        return sweep_missed(jobs, store=self.store, client=self.client, clock=self.clock, **options)

    def queued_ids(self, fn: JobFunction[..., Any]) -> list[str]:
        ids: list[str] = []
        for _ in range(10):
            batch = self.aws.sqs.receive_message(
                QueueUrl=self.urls[fn.name], MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not batch:
                break
            ids += [json.loads(message["Body"])["id"] for message in batch]
        return sorted(ids)

    def ledger(self, fn: JobFunction[..., Any]) -> dict[str, str]:
        """Tick id -> the job it names, or "skipped: <reason>"."""
        return {
            tid(fn, datetime.fromtimestamp(t.scheduled_at, UTC).strftime("%Y-%m-%dT%H:%M:%S")): t.job_id
            or f"skipped: {t.skipped_reason}"
            for t in self.store.ticks(fn.name, since=0, limit=100)
        }


@pytest.fixture
def world(aws: Clients, jobs_table: str) -> World:
    # 10:00 ran and was recorded; then an outage; the sweep runs at 14:10 (the 14:00 firing is past the grace)
    w = World(aws, jobs_table, at("2026-03-02T10:00:05"))
    for fn in (hourly_skip, hourly_once, hourly_catch_up):
        w.store.record_tick(fn.name, at("2026-03-02T10:00:00"), job_id=tid(fn, "2026-03-02T10:00:00"))
        # the 12:00 firing was delivered: the runner's row exists under its tick id (no tick was recorded)
        w.client.enqueue(fn, id=tid(fn, "2026-03-02T12:00:00"))
    w.clock.advance(at("2026-03-02T14:10:00") - w.clock.now())
    return w


def test_skip_records_each_missed_firing_with_its_reason_and_runs_none(world: World) -> None:
    [result] = world.sweep(hourly_skip)

    assert result.recorded == [tid(hourly_skip, "2026-03-02T12:00:00")]
    assert result.enqueued == []
    assert result.skipped == [tid(hourly_skip, f"2026-03-02T{h}:00:00") for h in (11, 13, 14)]
    ledger = world.ledger(hourly_skip)
    assert ledger[tid(hourly_skip, "2026-03-02T12:00:00")] == tid(hourly_skip, "2026-03-02T12:00:00")
    assert ledger[tid(hourly_skip, "2026-03-02T13:00:00")].startswith("skipped: missed: ")
    assert "skip" in ledger[tid(hourly_skip, "2026-03-02T13:00:00")]
    assert world.queued_ids(hourly_skip) == [tid(hourly_skip, "2026-03-02T12:00:00")]  # only the delivered one


def test_run_once_enqueues_only_the_latest_missed_firing_under_its_tick_id(world: World) -> None:
    [result] = world.sweep(hourly_once)

    latest = tid(hourly_once, "2026-03-02T14:00:00")
    assert result.enqueued == [latest]
    assert result.skipped == [tid(hourly_once, f"2026-03-02T{h}:00:00") for h in (11, 13)]
    assert world.ledger(hourly_once)[latest] == latest
    assert world.queued_ids(hourly_once) == [tid(hourly_once, "2026-03-02T12:00:00"), latest]
    # a late real delivery of the 14:00 firing carries the same id: it is the same job, not a second one
    assert world.client.enqueue(hourly_once, id=latest).duplicate


def test_catch_up_enqueues_each_missed_firing_within_the_window(world: World) -> None:
    [result] = world.sweep(hourly_catch_up)

    # window 3 h back from 14:10: 11:00 is older, 13:00 and 14:00 run; 12:00 was delivered
    assert result.enqueued == [tid(hourly_catch_up, f"2026-03-02T{h}:00:00") for h in (13, 14)]
    assert result.skipped == [tid(hourly_catch_up, "2026-03-02T11:00:00")]
    assert "catch-up window" in world.ledger(hourly_catch_up)[tid(hourly_catch_up, "2026-03-02T11:00:00")]
    assert world.queued_ids(hourly_catch_up) == [tid(hourly_catch_up, f"2026-03-02T{h}:00:00") for h in (12, 13, 14)]


def test_a_firing_delivered_or_recorded_is_never_run_or_recorded_again(world: World) -> None:
    # the 13:00 firing was recorded by someone else (as a runner would), and the 14:00 one was delivered
    world.store.record_tick(hourly_catch_up.name, at("2026-03-02T13:00:00"), job_id="someone-else")
    world.client.enqueue(hourly_catch_up, id=tid(hourly_catch_up, "2026-03-02T14:00:00"))

    [first] = world.sweep(hourly_catch_up)
    [again] = world.sweep(hourly_catch_up)

    assert (first.enqueued, first.skipped) == ([], [])  # nothing before the newest tick is looked at again
    assert first.recorded == [tid(hourly_catch_up, "2026-03-02T14:00:00")]
    assert (again.recorded, again.enqueued, again.skipped) == ([], [], [])
    assert world.ledger(hourly_catch_up)[tid(hourly_catch_up, "2026-03-02T13:00:00")] == "someone-else"
    expected = [tid(hourly_catch_up, f"2026-03-02T{h}:00:00") for h in (12, 14)]
    assert world.queued_ids(hourly_catch_up) == expected


def test_a_second_sweep_changes_nothing(world: World) -> None:
    first = world.sweep(hourly_skip, hourly_once, hourly_catch_up)
    again = world.sweep(hourly_skip, hourly_once, hourly_catch_up)

    assert all(r.enqueued or r.skipped for r in first)
    assert [(r.recorded, r.enqueued, r.skipped) for r in again] == [([], [], [])] * 3
    assert len(world.queued_ids(hourly_once)) == 2


def test_a_firing_within_the_grace_is_not_missed_yet(world: World) -> None:
    [result] = world.sweep(hourly_once, grace_s=4 * 3600)

    assert (result.enqueued, result.skipped) == ([], [])  # every firing since 10:00 is within 4 h of 14:10


def test_dst_in_paris_a_missing_local_time_is_no_firing_and_a_repeated_one_fires_once(
    aws: Clients, jobs_table: str
) -> None:
    w = World(aws, jobs_table, at("2026-03-27T01:30:30"))
    # 02:30 CET on the 27th ran; spring forward on Sunday the 29th: 02:30 does not exist there
    w.store.record_tick(paris_nightly.name, at("2026-03-27T01:30:00"), job_id="ran")
    w.clock.advance(at("2026-03-30T06:00:00") - w.clock.now())
    [spring] = w.sweep(paris_nightly)
    assert spring.enqueued == [tid(paris_nightly, "2026-03-28T01:30:00"), tid(paris_nightly, "2026-03-30T00:30:00")]

    # fall back on Sunday 25 October: 02:30 happens twice and fires once (the first, CEST)
    w.store.record_tick(paris_nightly.name, at("2026-10-24T00:30:00"), job_id="ran")
    w.clock.advance(at("2026-10-26T06:00:00") - w.clock.now())
    [autumn] = w.sweep(paris_nightly)
    assert autumn.enqueued == [tid(paris_nightly, "2026-10-25T00:30:00"), tid(paris_nightly, "2026-10-26T01:30:00")]
    assert autumn.skipped == []


def test_a_disabled_schedule_is_left_alone_until_it_is_resumed(aws: Clients, jobs_table: str) -> None:
    # moto stamps the schedule's creation with the real clock: the manual one starts there
    start = (int(time.time()) // 3600 + 1) * 3600 + 5.0
    w = World(aws, jobs_table, start)
    target = {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "RoleArn": ROLE_ARN}
    request: Any = {
        "Name": CRON_SCHEDULE_PREFIX + hourly_once.name,
        "GroupName": GROUP,
        "ScheduleExpression": "cron(0 * * * ? *)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target,
    }
    aws.scheduler.create_schedule(**request, State="DISABLED")
    w.clock.advance(3 * 3600 + 600)
    options = {"scheduler": aws.scheduler, "schedule_group": GROUP}

    [paused, not_applied] = w.sweep(hourly_once, hourly_skip, **options)
    assert (paused.state, paused.enqueued, not_applied.state) == ("paused", [], "not_applied")

    aws.scheduler.update_schedule(**request, State="ENABLED")
    [resumed] = w.sweep(hourly_once, **options)
    assert resumed.state == "swept"
    assert len(resumed.enqueued) == 1  # the latest firing since creation runs; older ones are skipped
    assert resumed.skipped


def test_one_bad_job_never_stops_the_sweep(world: World) -> None:
    unknown = CronJob(
        name="not_a_job", expression="0 * * * *", tz="UTC", missed="run_once", catch_up_window_s=0, target="not_a_job"
    )
    [bad, good] = world.sweep(unknown, hourly_once)

    assert (bad.state, bool(bad.error)) == ("error", True)
    assert (good.state, good.enqueued) == ("swept", [tid(hourly_once, "2026-03-02T14:00:00")])
