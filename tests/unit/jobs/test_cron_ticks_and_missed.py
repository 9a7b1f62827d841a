"""Tick ids (one per firing, so a duplicate delivery runs once) and the missed-run policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sqsloops.errors import ConfigError
from sqsloops.jobs.cron import is_tick_job_id, parse_tick_job_id, plan_missed, tick_job_id


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_tick_id_is_the_name_and_the_utc_scheduled_time() -> None:
    assert tick_job_id("morning_digest", utc(2026, 3, 29, 7)) == "morning_digest@2026-03-29T07:00:00Z"


def test_a_tick_id_is_the_same_whatever_zone_the_time_is_given_in() -> None:
    paris_nine = datetime(2026, 3, 29, 9, tzinfo=ZoneInfo("Europe/Paris"))
    assert tick_job_id("digest", paris_nine) == "digest@2026-03-29T07:00:00Z"


def test_a_tick_id_round_trips() -> None:
    tick = tick_job_id("nightly-report", utc(2026, 10, 25, 1, 30))
    assert parse_tick_job_id(tick) == ("nightly-report", utc(2026, 10, 25, 1, 30))
    assert is_tick_job_id(tick)


@pytest.mark.parametrize(
    "job_id",
    [
        "digest@2026-03-29T07:00:00",  # no Z
        "digest@2026-03-29 07:00:00Z",
        "digest@2026-13-29T07:00:00Z",  # no 13th month
        "@2026-03-29T07:00:00Z",
        "dig.est@2026-03-29T07:00:00Z",
        "0a1b2c3d",
        "",
    ],
)
def test_anything_else_is_not_a_tick_id(job_id: str) -> None:
    assert not is_tick_job_id(job_id)
    with pytest.raises(ValueError, match="is not a cron tick id"):
        parse_tick_job_id(job_id)


def test_a_tick_id_needs_a_valid_name_and_an_aware_whole_second_time() -> None:
    with pytest.raises(ConfigError, match="not a valid job name"):
        tick_job_id("bad name", utc(2026, 1, 1))
    with pytest.raises(ValueError, match="time zone"):
        tick_job_id("digest", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="whole seconds"):
        tick_job_id("digest", utc(2026, 1, 1) + timedelta(microseconds=5))


# Missed runs: a job expected every hour from 00:00 to 05:00, with ticks recorded at 00:00 and 01:00 only.
EXPECTED = [utc(2026, 5, 1, hour) for hour in range(6)]
RECORDED = {utc(2026, 5, 1, 0), utc(2026, 5, 1, 1)}
NOW = utc(2026, 5, 1, 4, 30)
HOUR_S = 3600.0


def test_skip_runs_nothing() -> None:
    assert plan_missed("skip", EXPECTED, RECORDED, NOW, 10 * HOUR_S) == []


def test_run_once_runs_only_the_latest_missed() -> None:
    # Missed: 02:00, 03:00, 04:00 (05:00 is still to come)
    assert plan_missed("run_once", EXPECTED, RECORDED, NOW, 10 * HOUR_S) == [utc(2026, 5, 1, 4)]


def test_run_once_ignores_the_window() -> None:
    assert plan_missed("run_once", EXPECTED, RECORDED, NOW, 0) == [utc(2026, 5, 1, 4)]


def test_catch_up_runs_every_missed_one_oldest_first() -> None:
    assert plan_missed("catch_up", EXPECTED, RECORDED, NOW, 10 * HOUR_S) == [
        utc(2026, 5, 1, 2),
        utc(2026, 5, 1, 3),
        utc(2026, 5, 1, 4),
    ]


def test_catch_up_leaves_out_what_is_older_than_the_window() -> None:
    # A 2 h window back from 04:30 reaches 02:30: 02:00 is too old
    assert plan_missed("catch_up", EXPECTED, RECORDED, NOW, 2 * HOUR_S) == [utc(2026, 5, 1, 3), utc(2026, 5, 1, 4)]


def test_a_firing_at_now_exactly_counts_as_missed() -> None:
    assert plan_missed("run_once", EXPECTED, RECORDED, utc(2026, 5, 1, 3), HOUR_S) == [utc(2026, 5, 1, 3)]


def test_nothing_missed_plans_nothing() -> None:
    assert plan_missed("catch_up", EXPECTED[:2], RECORDED, NOW, HOUR_S) == []
    assert plan_missed("run_once", [], set(), NOW, HOUR_S) == []


def test_recorded_ticks_match_across_zones() -> None:
    # A tick recorded with a Paris time is the same instant as the expected UTC one
    paris = ZoneInfo("Europe/Paris")
    recorded = {moment.astimezone(paris) for moment in EXPECTED[:5]}
    assert plan_missed("catch_up", EXPECTED, recorded, NOW, 10 * HOUR_S) == []


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="missed-run policy 'sometimes'"):
        plan_missed("sometimes", EXPECTED, RECORDED, NOW, HOUR_S)  # type: ignore[arg-type]
