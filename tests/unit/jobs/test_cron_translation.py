"""Unix and Scheduler cron expressions, translated to Scheduler's cron(...) or refused with the reason."""

from __future__ import annotations

import pytest

from sqsloops.errors import ConfigError
from sqsloops.jobs.cron import CronExpression, check_timezone, to_schedule_expression


@pytest.mark.parametrize(
    ("unix", "scheduler"),
    [
        ("0 9 * * *", "cron(0 9 * * ? *)"),
        ("0 9 * * MON-FRI", "cron(0 9 ? * MON-FRI *)"),
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
        ("30 2 1 * *", "cron(30 2 1 * ? *)"),
        ("0 0 * * 0", "cron(0 0 ? * SUN *)"),
        ("0 0 * * 7", "cron(0 0 ? * SUN *)"),
        ("0 0 * * SUN,sat", "cron(0 0 ? * SUN,SAT *)"),
        ("0 0 * * 5-7", "cron(0 0 ? * SUN,FRI,SAT *)"),
        ("0 0 * * 0-7", "cron(0 0 * * ? *)"),
        ("0 9 * * */2", "cron(0 9 ? * SUN,TUE,THU,SAT *)"),
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("5/20 * * * *", "cron(5/20 * * * ? *)"),
        ("0 */6 * * *", "cron(0 0/6 * * ? *)"),
        ("0,30 8-18 * * *", "cron(0,30 8-18 * * ? *)"),
        ("0 8-10,14 * * *", "cron(0 8-10,14 * * ? *)"),
        ("0 0 1-10/3 * *", "cron(0 0 1,4,7,10 * ? *)"),
        ("0 0 1 JAN,jul *", "cron(0 0 1 1,7 ? *)"),
        ("0 0 1 */3 *", "cron(0 0 1 1/3 ? *)"),
        ("0 0 1 1-12 *", "cron(0 0 1 * ? *)"),
        ("0 12 */2 * *", "cron(0 12 1/2 * ? *)"),
        ("@hourly", "cron(0 * * * ? *)"),
        ("@daily", "cron(0 0 * * ? *)"),
        ("@midnight", "cron(0 0 * * ? *)"),
        ("@weekly", "cron(0 0 ? * SUN *)"),
        ("@monthly", "cron(0 0 1 * ? *)"),
        ("@yearly", "cron(0 0 1 1 ? *)"),
        ("@annually", "cron(0 0 1 1 ? *)"),
        ("  0   9  *  *  * ", "cron(0 9 * * ? *)"),
    ],
)
def test_unix_expressions_translate_to_scheduler(unix: str, scheduler: str) -> None:
    assert to_schedule_expression(unix) == scheduler


@pytest.mark.parametrize(
    ("unix", "message"),
    [
        ("0 9 1 * MON", "Unix cron runs when either matches"),
        ("0 9 1-15 * 1-5", "Unix cron runs when either matches"),
        ("0 9 */2 * MON", "both restrict the day"),
        ("0 9 * *", "has 5 fields"),
        ("0 9 * * * *", "has 5 fields"),
        ("60 * * * *", "minutes: 60 is outside 0-59"),
        ("0 24 * * *", "hours: 24 is outside 0-23"),
        ("0 0 0 * *", "day-of-month: 0 is outside 1-31"),
        ("0 0 1 13 *", "month: 13 is outside 1-12"),
        ("0 0 * * 8", "day-of-week: 8 is outside 0-7"),
        ("0 0 * * FUN", "'FUN' is not a number or a name"),
        ("*/0 * * * *", "step '0' must be a whole number of at least 1"),
        ("0 0 * * 5-1", "goes backwards"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
        ("@reboot", "unknown alias"),
        ("0 0 L * *", "not a number"),
        ("0 0 ? * MON", "not a number"),
        ("", "has 5 fields"),
    ],
)
def test_unix_expressions_scheduler_cannot_express_are_refused(unix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_schedule_expression(unix)


@pytest.mark.parametrize(
    "scheduler",
    [
        "cron(0 9 * * ? *)",
        "cron(0 9 ? * MON-FRI *)",
        "cron(0/15 * * * ? *)",
        "cron(*/5 8-17 ? * 2-6 *)",
        "cron(15 10 L * ? *)",
        "cron(0 8 15W * ? *)",
        "cron(15 10 ? * 6L *)",
        "cron(0 9 ? * 3#2 *)",
        "cron(0 9 ? * FRI#3 *)",
        "cron(0 0 ? * L *)",
        "cron(0 0 1 JAN-MAR ? 2026-2030)",
        "cron(0 0 1 1 ? 2030/5)",
        "cron(0 0 1 1 ? 2199)",
        "cron(0 0 29 2 ? *)",
    ],
)
def test_scheduler_expressions_are_validated_and_kept(scheduler: str) -> None:
    assert to_schedule_expression(scheduler) == scheduler


def test_scheduler_expressions_are_normalised() -> None:
    assert to_schedule_expression("CRON( 0  9 ? * mon-fri * )") == "cron(0 9 ? * MON-FRI *)"


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("cron(0 9 * * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 1 * 2 *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 9 * * ?)", "has 6 fields"),
        ("cron(0 9 * * ? * *)", "has 6 fields"),
        ("cron(0 9 ? * 0 *)", "day-of-week: 0 is outside 1-7"),
        ("cron(0 9 ? * MON/2 *)", "'/' steps are not allowed here"),
        ("cron(0 9 ? * 8L *)", "stand alone"),
        ("cron(0 9 ? * 3#6 *)", "stand alone"),
        ("cron(0 9 ? * 1#1,2#2 *)", "stand alone"),
        ("cron(0 9 ? * 2W *)", "'W' belongs to day-of-month"),
        ("cron(0 9 3#2 * ? *)", "'#' belongs to day-of-week"),
        ("cron(0 9 1,L * ? *)", "stand alone"),
        ("cron(0 9 LW * ? *)", "cannot compute"),
        ("cron(0 9 32W * ? *)", "outside 1-31"),
        ("cron(0 9 31W 2 ? *)", "never fires"),
        ("cron(0 9 31 2,4 ? *)", "never fires"),
        ("cron(0 0 1 1 ? 1969)", "year: 1969 is outside 1970-2199"),
        ("cron(0 0 1 1 ? 2200)", "outside 1970-2199"),
        ("cron(0 0 1 1 ? 2030-2026)", "goes backwards"),
        ("cron(0 0 * * ? * )x", "has 5 fields"),
    ],
)
def test_scheduler_expressions_outside_its_grammar_are_refused(scheduler: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_schedule_expression(scheduler)


def test_the_message_quotes_the_whole_expression() -> None:
    with pytest.raises(ConfigError, match=r"^cron '0 9 1 \* MON': day-of-month '1' and day-of-week 'MON'"):
        to_schedule_expression("0 9 1 * MON")


def test_an_expression_longer_than_scheduler_accepts_is_refused() -> None:
    def listed(low: int, high: int) -> str:
        return ",".join(str(value) for value in range(low, high + 1))

    expression = f"cron({listed(0, 59)} {listed(0, 23)} {listed(1, 31)} * ? *)"
    assert len(expression) > 256
    with pytest.raises(ConfigError, match="longer than the 256 characters"):
        to_schedule_expression(expression)


def test_the_same_schedule_written_from_unix_is_short_enough() -> None:
    assert to_schedule_expression("* * 1-31 * *") == "cron(* * * * ? *)"


def test_a_parsed_expression_keeps_croniter_fields_and_years() -> None:
    parsed = CronExpression.parse("cron(15 10 ? * 6L 2026,2028)")
    assert parsed.croniter_expression == "15 10 * * L5"
    assert parsed.years == frozenset({2026, 2028})
    assert CronExpression.parse("0 9 * * MON").croniter_expression == "0 9 * * 1"


def test_a_known_time_zone_is_accepted() -> None:
    assert str(check_timezone("Europe/Paris")) == "Europe/Paris"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "Europe/"])
def test_an_unknown_time_zone_is_refused_by_name(zone: str) -> None:
    with pytest.raises(ConfigError, match=rf"time zone {zone!r} is not a known IANA zone"):
        check_timezone(zone)
