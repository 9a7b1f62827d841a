"""Firing times in the job's zone, across daylight-saving changes, as EventBridge Scheduler fires them.

2026 changes: Europe/Paris springs forward on 29 March (02:00 CET -> 03:00 CEST) and falls back on 25 October
(03:00 CEST -> 02:00 CET); America/New_York springs forward on 8 March (02:00 EST -> 03:00 EDT) and falls back on
1 November (02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sqsloops.jobs.cron import MAX_FIRE_TIMES, fire_times_between, next_fire_times


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_daily_paris_job_moves_an_hour_in_utc_at_spring_forward() -> None:
    # Given a job at 09:00 Paris time, every day
    # When we list its firings around the March change
    fires = next_fire_times("0 9 * * *", "Europe/Paris", utc(2026, 3, 27, 12), 4)
    # Then it fires at 09:00 local each day: 08:00 UTC in winter, 07:00 UTC from the change on
    assert fires == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7), utc(2026, 3, 31, 7)]
    assert all(fire.astimezone(ZoneInfo("Europe/Paris")).hour == 9 for fire in fires)


def test_a_daily_paris_job_moves_back_at_fall_back() -> None:
    fires = next_fire_times("0 9 * * *", "Europe/Paris", utc(2026, 10, 24, 0), 3)
    assert fires == [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]


def test_a_time_that_does_not_exist_is_skipped_on_spring_forward_day() -> None:
    # Given a job at 02:30 Paris time: on 29 March the clock jumps from 02:00 to 03:00
    fires = next_fire_times("30 2 * * *", "Europe/Paris", utc(2026, 3, 27, 12), 3)
    # Then, as Scheduler does, there is no firing that day (croniter alone would fire at 03:00)
    assert fires == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]
    assert utc(2026, 3, 29, 1, 0) not in fires


def test_a_time_that_happens_twice_fires_once_at_fall_back_the_first_time() -> None:
    # Given a job at 02:30 Paris time: on 25 October 02:30 comes at 00:30 UTC (CEST) and again at 01:30 UTC (CET)
    fires = next_fire_times("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12), 3)
    # Then it fires once, at the first of them
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]


def test_after_the_first_of_two_equal_wall_times_the_second_is_not_a_firing() -> None:
    # Given we are between the two 02:30s of 25 October
    fires = next_fire_times("30 2 * * *", "Europe/Paris", utc(2026, 10, 25, 1, 0), 1)
    # Then the next firing is the next day's, not the repeated 02:30
    assert fires == [utc(2026, 10, 26, 1, 30)]


def test_an_hourly_job_fires_23_times_on_spring_forward_day_and_24_on_fall_back_day() -> None:
    paris = ZoneInfo("Europe/Paris")
    spring = fire_times_between(
        "0 * * * *", "Europe/Paris", datetime(2026, 3, 29, tzinfo=paris), datetime(2026, 3, 30, tzinfo=paris)
    )
    fall = fire_times_between(
        "0 * * * *", "Europe/Paris", datetime(2026, 10, 25, tzinfo=paris), datetime(2026, 10, 26, tzinfo=paris)
    )
    # The spring day has no 02:00; the fall day has 25 hours but its 02:00 fires once
    assert len(spring) == 23
    assert len(fall) == 24
    assert {fire.astimezone(paris).hour for fire in spring} == set(range(24)) - {2}
    assert utc(2026, 10, 25, 0) in fall  # 02:00 CEST
    assert utc(2026, 10, 25, 1) not in fall  # 02:00 CET, the repeat
    assert utc(2026, 10, 25, 2) in fall  # 03:00 CET


def test_new_york_spring_forward_skips_the_missing_hour() -> None:
    # Given 02:30 New York time; on 8 March the clock jumps from 02:00 EST to 03:00 EDT
    fires = next_fire_times("30 2 * * *", "America/New_York", utc(2026, 3, 7, 0), 3)
    assert fires == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]


def test_new_york_fall_back_fires_the_repeated_hour_once() -> None:
    # Given 01:30 New York time; on 1 November it comes at 05:30 UTC (EDT) and 06:30 UTC (EST)
    fires = next_fire_times("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), 3)
    assert fires == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30)]


def test_new_york_weekday_mornings_keep_their_local_time() -> None:
    fires = next_fire_times("0 9 * * MON-FRI", "America/New_York", utc(2026, 3, 5, 0), 4)
    # Thursday and Friday in EST (14:00 UTC), then Monday and Tuesday in EDT (13:00 UTC); no weekend
    assert fires == [utc(2026, 3, 5, 14), utc(2026, 3, 6, 14), utc(2026, 3, 9, 13), utc(2026, 3, 10, 13)]


def test_next_fire_times_are_strictly_after() -> None:
    assert next_fire_times("0 9 * * *", "UTC", utc(2026, 1, 1, 9), 1) == [utc(2026, 1, 2, 9)]


def test_fire_times_between_is_half_open() -> None:
    fires = fire_times_between("0 9 * * *", "UTC", utc(2026, 1, 1, 9), utc(2026, 1, 3, 9))
    assert fires == [utc(2026, 1, 1, 9), utc(2026, 1, 2, 9)]


def test_times_in_other_zones_are_compared_as_instants() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 18:00 in Tokyo on 1 January is 09:00 UTC: a firing at that instant is included as the start
    fires = fire_times_between("0 9 * * *", "UTC", datetime(2026, 1, 1, 18, tzinfo=tokyo), utc(2026, 1, 2, 0))
    assert fires == [utc(2026, 1, 1, 9)]


def test_scheduler_forms_fire_as_written() -> None:
    # The last Friday of each month at 10:15, the 15th's nearest weekday, and the second Tuesday
    assert next_fire_times("cron(15 10 ? * 6L *)", "UTC", utc(2026, 1, 1), 2) == [
        utc(2026, 1, 30, 10, 15),
        utc(2026, 2, 27, 10, 15),
    ]
    assert next_fire_times("cron(0 8 15W * ? *)", "UTC", utc(2026, 2, 1), 1) == [utc(2026, 2, 16, 8)]  # 15th: Sunday
    assert next_fire_times("cron(0 9 ? * 3#2 *)", "UTC", utc(2026, 1, 1), 1) == [utc(2026, 1, 13, 9)]
    assert next_fire_times("cron(0 0 L 2 ? *)", "UTC", utc(2027, 6, 1), 2) == [utc(2028, 2, 29), utc(2029, 2, 28)]


def test_the_year_field_restricts_and_ends_the_firings() -> None:
    fires = next_fire_times("cron(0 0 1 1 ? 2027,2030)", "UTC", utc(2026, 6, 1), 5)
    assert fires == [utc(2027, 1, 1), utc(2030, 1, 1)]


def test_years_beyond_croniter_s_range_still_fire() -> None:
    assert next_fire_times("cron(0 0 1 1 ? 2150)", "UTC", utc(2026, 1, 1), 2) == [utc(2150, 1, 1)]


def test_a_schedule_whose_years_are_past_never_fires_again() -> None:
    assert next_fire_times("cron(0 0 1 1 ? 2020)", "UTC", utc(2026, 1, 1), 3) == []


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        next_fire_times("0 9 * * *", "UTC", datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="time zone"):
        fire_times_between("0 9 * * *", "UTC", utc(2026, 1, 1), datetime(2026, 1, 2))


def test_listing_too_many_firings_is_refused() -> None:
    start = utc(2026, 1, 1)
    with pytest.raises(ValueError, match=f"more than {MAX_FIRE_TIMES}"):
        fire_times_between("* * * * *", "UTC", start, start + timedelta(minutes=MAX_FIRE_TIMES + 1))


@pytest.mark.parametrize("count", [-1, True, MAX_FIRE_TIMES + 1])
def test_a_bad_count_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        next_fire_times("0 9 * * *", "UTC", utc(2026, 1, 1), count)
