"""Durations and rates as people write them ("1h30m", "10/s"), turned into seconds and per-second floats.

Options are written by hand in decorators and on command lines, so the grammar is forgiving about form (a number of
seconds, a `timedelta`, a string with units) and strict about meaning: negative, non-finite, unparsable or (where
the caller says so) zero values raise a `ConfigError` that quotes what was written and shows what would be accepted.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from sqsloops.errors import ConfigError

DurationLike = str | int | float | timedelta
RateLike = str | int | float

MS_PER_S = 1000.0
S_PER_MINUTE = 60.0
S_PER_HOUR = 3600.0
S_PER_DAY = 86_400.0

# Each unit once, largest first: "1h30m" reads one way only ("30m1h" and "1m1m" are refused as likely typos).
_UNIT_S: dict[str, float] = {"d": S_PER_DAY, "h": S_PER_HOUR, "m": S_PER_MINUTE, "s": 1.0, "ms": 1.0 / MS_PER_S}
_UNIT_ORDER = tuple(_UNIT_S)
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DURATION_HINT = "write e.g. '500ms', '10s', '1m', '1h30m', '2d' or a number of seconds"
_RATE_HINT = "write e.g. '10/s', '100/m', '5/h', '2.5/s', '100/10s' or a number per second"


def _subject(what: str | None) -> str:
    return f"{what}: " if what else ""


def _number_s(value: float, original: object, what: str | None, *, allow_zero: bool) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"{_subject(what)}{original!r} is not a finite duration; {_DURATION_HINT}")
    if value < 0:
        raise ConfigError(f"{_subject(what)}must not be negative, got {original!r}")
    if value == 0 and not allow_zero:
        raise ConfigError(f"{_subject(what)}must be more than zero, got {original!r}")
    return float(value)


def _parse_units(text: str) -> float | None:
    """Seconds for a sequence of number+unit parts ("1h30m"), or None when the text is not one."""
    position = 0
    total_s = 0.0
    last_unit_index = -1
    while position < len(text):
        match = _PART_RE.match(text, position)
        if match is None:
            return None
        unit_index = _UNIT_ORDER.index(match.group(2))
        if unit_index <= last_unit_index:
            return None
        last_unit_index = unit_index
        total_s += float(match.group(1)) * _UNIT_S[match.group(2)]
        position = match.end()
    return total_s if position else None


def parse_duration_s(value: DurationLike, *, what: str | None = None, allow_zero: bool = False) -> float:
    """Seconds in `value`: a number of seconds, a `timedelta`, or a string such as "500ms", "10s", "1h30m", "2d".

    `what` names the value in error messages ("timeout: must be more than zero, got '0s'"); zero is refused unless
    `allow_zero` (a delay may be zero, a timeout may not).
    """
    if isinstance(value, bool):  # bool is an int: True seconds is a typo, not a duration
        raise ConfigError(f"{_subject(what)}{value!r} is not a duration; {_DURATION_HINT}")
    if isinstance(value, timedelta):
        return _number_s(value.total_seconds(), value, what, allow_zero=allow_zero)
    if isinstance(value, int | float):
        return _number_s(float(value), value, what, allow_zero=allow_zero)
    if not isinstance(value, str):
        raise ConfigError(f"{_subject(what)}{value!r} is not a duration; {_DURATION_HINT}")
    text = value.strip().lower().replace(" ", "")
    if _NUMBER_RE.fullmatch(text):
        return _number_s(float(text), value, what, allow_zero=allow_zero)
    if text.startswith("-") and _parse_units(text[1:]) is not None:
        raise ConfigError(f"{_subject(what)}must not be negative, got {value!r}")
    seconds = _parse_units(text)
    if seconds is None:
        raise ConfigError(f"{_subject(what)}{value!r} is not a duration; {_DURATION_HINT}")
    return _number_s(seconds, value, what, allow_zero=allow_zero)


def parse_rate_per_s(value: RateLike, *, what: str | None = None) -> float:
    """Events per second in `value`: a number per second, or "COUNT/PERIOD" where PERIOD is a unit ("s", "m", "h",
    "d") or a duration ("10s"). A rate of zero would never let anything through, so it is refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{_subject(what)}{value!r} is not a rate; {_RATE_HINT}")
    if isinstance(value, int | float):
        count, period_s = float(value), 1.0
    else:
        count_text, slash, period_text = value.strip().lower().replace(" ", "").partition("/")
        if not slash or not _NUMBER_RE.fullmatch(count_text) or not period_text:
            raise ConfigError(f"{_subject(what)}{value!r} is not a rate; {_RATE_HINT}")
        count = float(count_text)
        try:
            period_s = parse_duration_s(f"1{period_text}" if period_text in _UNIT_S else period_text)
        except ConfigError:
            raise ConfigError(f"{_subject(what)}{value!r} is not a rate; {_RATE_HINT}") from None
    if not math.isfinite(count) or count <= 0:
        raise ConfigError(f"{_subject(what)}must be a finite rate above zero, got {value!r}")
    return count / period_s
