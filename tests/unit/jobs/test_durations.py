"""Durations and rates as written in decorators and on command lines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sqsloops.errors import ConfigError
from sqsloops.jobs.durations import parse_duration_s, parse_rate_per_s


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("2d", 172_800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93_784.005),
        ("1.5s", 1.5),
        (" 10S ", 10.0),
        ("1h 30m", 5400.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (30, 30.0),
        (0.25, 0.25),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_written_durations_become_seconds(written: object, seconds: float) -> None:
    assert parse_duration_s(written) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["soon", "10x", "1h-30m", "30m1h", "1m1m", "h", "", "1.s", "ten seconds", None, []])
def test_unparsable_durations_are_refused_with_examples(written: object) -> None:
    with pytest.raises(ConfigError, match=r"is not a duration; write e\.g\. '500ms'"):
        parse_duration_s(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", [-1, -0.5, "-5s", "-1h30m", "-3", timedelta(seconds=-1)])
def test_negative_durations_are_refused(written: object) -> None:
    with pytest.raises(ConfigError, match="must not be negative"):
        parse_duration_s(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", [0, "0s", "0", timedelta(0), "0ms"])
def test_zero_is_refused_unless_allowed(written: object) -> None:
    with pytest.raises(ConfigError, match="must be more than zero"):
        parse_duration_s(written)  # type: ignore[arg-type]
    assert parse_duration_s(written, allow_zero=True) == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize("written", [float("inf"), float("nan"), "inf"])
def test_non_finite_durations_are_refused(written: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration_s(written)  # type: ignore[arg-type]


def test_a_bool_is_not_a_duration() -> None:
    # Given True, which Python counts as 1
    # Then it is refused as the typo it is
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration_s(True)


def test_the_subject_leads_the_message() -> None:
    with pytest.raises(ConfigError, match=r"^timeout: must be more than zero, got '0s'$"):
        parse_duration_s("0s", what="timeout")


@pytest.mark.parametrize(
    ("written", "per_s"),
    [
        ("10/s", 10.0),
        ("100/m", 100 / 60),
        ("5/h", 5 / 3600),
        ("2.5/s", 2.5),
        ("1/d", 1 / 86_400),
        ("100/10s", 10.0),
        ("30/1m30s", 30 / 90),
        ("5/500ms", 10.0),
        (" 10 / s ", 10.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_written_rates_become_per_second(written: object, per_s: float) -> None:
    assert parse_rate_per_s(written) == pytest.approx(per_s)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["10", "10/", "/s", "ten/s", "10/x", "10/0s", "10/-1s", "fast", True, None])
def test_unparsable_rates_are_refused_with_examples(written: object) -> None:
    with pytest.raises(ConfigError, match=r"is not a rate; write e\.g\. '10/s'"):
        parse_rate_per_s(written)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["0/s", 0, -1, "-5/s", float("inf")])
def test_zero_and_negative_rates_are_refused(written: object) -> None:
    with pytest.raises(ConfigError, match="must be a finite rate above zero"):
        parse_rate_per_s(written, what="rate")  # type: ignore[arg-type]
