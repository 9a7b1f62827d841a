"""Cron ticks against moto: each firing recorded once, listed newest first by a Query."""

from __future__ import annotations

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs import schema
from sqsloops.jobs.store import DEFAULT_TICK_TTL_S, JobStore, Tick
from tests.conftest import Clients
from tests.functional.jobs.conftest import raw_item

CRON = "morning_digest"
NINE = 1_699_952_400.0  # 2023-11-14T09:00:00Z, before the clock starts


def test_a_firing_is_recorded_once(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    # Given a firing recorded with the job it enqueued
    first = store.record_tick(CRON, NINE, job_id=f"{CRON}@2023-11-14T09:00:00Z")

    # When Scheduler delivers the same firing again
    clock.advance(3)
    second = store.record_tick(CRON, NINE, job_id=f"{CRON}@2023-11-14T09:00:00Z")

    # Then only the first counts, and the record is the first's
    assert (first, second) == (True, False)
    [tick] = store.ticks(CRON, since=NINE)
    assert tick == Tick(
        job=CRON,
        scheduled_at=NINE,
        recorded_at=clock.now() - 3,
        job_id=f"{CRON}@2023-11-14T09:00:00Z",
        skipped_reason=None,
        expires_at=int(clock.now() - 3 + DEFAULT_TICK_TTL_S),
    )
    assert raw_item(aws, schema.tick_pk(CRON, NINE)) is not None


def test_ticks_are_listed_newest_first_since_a_time(store: JobStore) -> None:
    # Given a week of daily firings, one skipped, and another job's
    days = [NINE + d * 86400 for d in range(7)]
    for n, at in enumerate(days):
        if n == 3:
            assert store.record_tick(CRON, at, skipped_reason="missed: skip policy")
        else:
            assert store.record_tick(CRON, at, job_id=f"{CRON}-{n}")
    store.record_tick("other_cron", days[-1], job_id="x")

    # When the ticks since day 2 are listed, all of them, then the newest three
    since_day_2 = store.ticks(CRON, since=days[2], limit=50)
    newest = store.ticks(CRON, since=0, limit=3)

    # Then they are newest first, the skipped one says why, and no other job's show
    assert [t.scheduled_at for t in since_day_2] == days[:1:-1]
    assert [t.skipped for t in since_day_2] == [False, False, False, True, False]
    assert since_day_2[3].skipped_reason == "missed: skip policy"
    assert since_day_2[3].job_id is None
    assert [t.scheduled_at for t in newest] == days[:-4:-1]
    assert {t.job for t in since_day_2} == {CRON}


def test_ticks_are_not_job_rows_and_job_rows_are_not_ticks(store: JobStore, clock: ManualClock) -> None:
    store.record_tick(CRON, NINE, job_id="j1")
    store.create("j1", CRON, enqueued_at=clock.now())
    assert [r.id for r in store.list(CRON)[0]] == ["j1"]
    assert [t.job_id for t in store.ticks(CRON, since=0)] == ["j1"]


def test_a_tick_says_what_happened(store: JobStore) -> None:
    with pytest.raises(ConfigError):
        store.record_tick(CRON, NINE)
