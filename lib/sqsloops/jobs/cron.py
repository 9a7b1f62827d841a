"""Cron for EventBridge Scheduler: translating and validating expressions, firing times, tick ids, missed runs.

Expressions are accepted in two forms and always end up as Scheduler's `cron(min hour dom month dow year)`:
- Unix five fields (`0 9 * * MON-FRI`, names, lists, ranges, steps, 0 and 7 = Sunday, @hourly ... @yearly).
  Scheduler needs exactly one of day-of-month and day-of-week to be `?`, so a `*` there becomes `?`; a Unix
  expression restricting both (cron then runs when *either* matches) has no Scheduler form and is refused.
  Values are rewritten from their sets (`*/15` -> `0/15`, day-of-week steps -> lists, weekdays -> names), so the
  result uses only syntax the Scheduler documents.
- Scheduler's own `cron(...)`, validated against its grammar: Minutes 0-59 and Hours 0-23 `, - * /`;
  Day-of-month 1-31 `, - * ? / L W`; Month 1-12 or JAN-DEC `, - * /`; Day-of-week 1-7 or SUN-SAT `, - * ? L #`;
  Year 1970-2199 `, - * /`. `L`, `nW`, `nL` and `n#k` stand alone in their field. `LW` is valid on AWS but refused
  here: croniter cannot compute it, and a schedule whose firings cannot be previewed cannot have its missed runs
  found either.

Firing times follow Scheduler's documented daylight-saving rules, which differ from croniter's on aware datetimes:
a local time that does not exist (spring forward: 02:30 in Europe/Paris on the last Sunday of March) is skipped,
where croniter would fire at 03:00; a local time that happens twice (fall back) fires once, where croniter fires
twice. AWS does not say which of the two instants it uses; we take the first (the offset before the change), the
one a wall clock reaches first. So croniter walks local wall-clock time (naive datetimes, no DST in sight) and each
wall time is then placed in the zone by those rules.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqsloops.errors import ConfigError
from sqsloops.jobs.envelope import TICK_TIME_FORMAT, check_job_name, split_tick_id

MissedPolicy = Literal["skip", "run_once", "catch_up"]
MISSED_POLICIES: tuple[str, ...] = get_args(MissedPolicy)
DEFAULT_TZ = "UTC"
SCHEDULE_EXPRESSION_MAX_LEN = 256  # Scheduler's ScheduleExpression length limit
MIN_YEAR = 1970
MAX_YEAR = 2199
MAX_FIRE_TIMES = 100_000  # one listing's ceiling: a minutely job over ~70 days; more is a caller's mistake
DST_MARGIN = timedelta(hours=3)  # more than any zone's clock change (at most 2 h), so no firing is missed at a change
DAYS_IN_MONTH_MAX = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February's in a leap year

ALIASES: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_NAMES = {name: number for number, name in enumerate(_MONTHS, start=1)}
_UNIX_WEEKDAY_NAMES = {name: number for number, name in enumerate(_WEEKDAYS)}  # SUN = 0
_SCHEDULER_WEEKDAY_NAMES = {name: number for number, name in enumerate(_WEEKDAYS, start=1)}  # SUN = 1
_SCHEDULER_RE = re.compile(r"cron\((.*)\)", re.IGNORECASE | re.DOTALL)
_NEAREST_WEEKDAY_RE = re.compile(r"(\d{1,2})W")
_LAST_WEEKDAY_RE = re.compile(r"([1-7])L")
_NTH_WEEKDAY_RE = re.compile(rf"([1-7]|{'|'.join(_WEEKDAYS)})#([1-5])")
_MIN_RUN_FOR_RANGE = 3  # 1,2 reads better than 1-2; 1-3 better than 1,2,3
_MIN_TERMS_FOR_STEP = 3


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    steps: bool = True

    @property
    def full(self) -> frozenset[int]:
        return frozenset(range(self.low, self.high + 1))


_MINUTE = _Field("minutes", 0, 59)
_HOUR = _Field("hours", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_UNIX_DOW = _Field("day-of-week", 0, 7, _UNIX_WEEKDAY_NAMES)
_SCHEDULER_DOW = _Field("day-of-week", 1, 7, _SCHEDULER_WEEKDAY_NAMES, steps=False)
_CRONITER_DOW = _Field("day-of-week", 0, 6)
_YEAR = _Field("year", MIN_YEAR, MAX_YEAR)


class _CronSyntaxError(ValueError):
    """One field is wrong; `CronExpression.parse` adds the whole expression to the message."""


def _value(token: str, spec: _Field) -> int:
    upper = token.upper()
    if upper in spec.names:
        return spec.names[upper]
    if not token.isdigit():
        raise _CronSyntaxError(f"{spec.name}: {token!r} is not a number" + (" or a name" if spec.names else ""))
    number = int(token)
    if not spec.low <= number <= spec.high:
        raise _CronSyntaxError(f"{spec.name}: {number} is outside {spec.low}-{spec.high}")
    return number


def _values(text: str, spec: _Field) -> frozenset[int]:
    """The set a list of `*`, values, ranges and steps names (`a/n` runs from a to the field's end)."""
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not spec.steps:
                raise _CronSyntaxError(f"{spec.name}: '/' steps are not allowed here; list the values instead")
            if not step_text.isdigit() or int(step_text) < 1:
                raise _CronSyntaxError(f"{spec.name}: step {step_text!r} must be a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise _CronSyntaxError(f"{spec.name}: range {base!r} goes backwards; split it into two ranges")
        else:
            low = _value(base, spec)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    ordered = sorted(values)
    runs: list[tuple[int, int]] = []
    for _, group in itertools.groupby(enumerate(ordered), key=lambda pair: pair[1] - pair[0]):
        members = [value for _, value in group]
        runs.append((members[0], members[-1]))
    return runs


def _render_runs(values: Iterable[int], label: Callable[[int], str]) -> str:
    parts: list[str] = []
    for low, high in _runs(values):
        if high - low + 1 >= _MIN_RUN_FOR_RANGE:
            parts.append(f"{label(low)}-{label(high)}")
        else:
            parts.extend(label(value) for value in range(low, high + 1))
    return ",".join(parts)


def _render(values: frozenset[int], spec: _Field) -> str:
    """Scheduler text for a set: `*`, `start/step` for a progression to the field's end, else ranges and lists."""
    if values == spec.full:
        return "*"
    ordered = sorted(values)
    if len(ordered) >= _MIN_TERMS_FOR_STEP:
        step = ordered[1] - ordered[0]
        progression = all(later - earlier == step for earlier, later in itertools.pairwise(ordered))
        if step > 1 and progression and ordered[-1] + step > spec.high:
            return f"{ordered[0]}/{step}"
    return _render_runs(ordered, str)


def _croniter_list(values: frozenset[int], spec: _Field) -> str:
    return "*" if values == spec.full else ",".join(map(str, sorted(values)))


def _unix_to_scheduler(text: str) -> str:
    """Scheduler's `cron(...)` for a Unix five-field expression (rules in the module doc)."""
    fields = text.split()
    if len(fields) != 5:
        raise _CronSyntaxError("a Unix cron expression has 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, dom, month, dow = fields
    doms = _values(dom, _DOM)
    dows = frozenset(day % 7 for day in _values(dow, _UNIX_DOW))  # 7 is Sunday too
    dom_restricted, dow_restricted = doms != _DOM.full, len(dows) < len(_WEEKDAYS)
    if not dom.startswith("*") and not dow.startswith("*"):
        raise _CronSyntaxError(
            f"day-of-month {dom!r} and day-of-week {dow!r} are both set: Unix cron runs when either matches, which"
            " EventBridge Scheduler cannot express; make one of them '*' (or declare two jobs)"
        )
    if dom_restricted and dow_restricted:
        raise _CronSyntaxError(
            f"day-of-month {dom!r} and day-of-week {dow!r} both restrict the day, which EventBridge Scheduler cannot"
            " express (one of them must be '?'); make one of them '*'"
        )
    if dow_restricted:
        dom_text = "?"
        dow_text = _render_runs((day + 1 for day in dows), lambda number: _WEEKDAYS[number - 1])
    else:
        dom_text, dow_text = _render(doms, _DOM), "?"
    parts = (_render(_values(minute, _MINUTE), _MINUTE), _render(_values(hour, _HOUR), _HOUR))
    return f"cron({parts[0]} {parts[1]} {dom_text} {_render(_values(month, _MONTH), _MONTH)} {dow_text} *)"


def _scheduler_dom(text: str, months: frozenset[int]) -> str:
    """croniter's day-of-month for Scheduler's, refusing what never fires (31 in a 30-day month only)."""
    upper = text.upper()
    longest = max(DAYS_IN_MONTH_MAX[month - 1] for month in months)
    if upper == "L":
        return "L"
    if upper == "LW":
        raise _CronSyntaxError("day-of-month: 'LW' is valid on AWS but sqsloops cannot compute its firings; use 'L'")
    if match := _NEAREST_WEEKDAY_RE.fullmatch(upper):
        day = _value(match.group(1), _DOM)
        if day > longest:
            raise _CronSyntaxError(f"day-of-month: {text!r} never fires in the chosen months")
        return f"{day}W"
    if any(mark in upper for mark in "LW#?"):
        raise _CronSyntaxError(
            f"day-of-month: {text!r}: 'L' and 'nW' stand alone, '#' belongs to day-of-week, '?' only on its own"
        )
    days = _values(text, _DOM)
    if min(days) > longest:
        raise _CronSyntaxError(f"day-of-month {text!r} never fires in the chosen months")
    return _croniter_list(days, _DOM)


def _scheduler_dow(text: str) -> str:
    """croniter's day-of-week (0-6 from SUN) for Scheduler's (1-7 from SUN)."""
    upper = text.upper()
    if upper == "L":
        return "6"  # L alone is the last day of the week: Saturday
    if match := _LAST_WEEKDAY_RE.fullmatch(upper):
        return f"L{int(match.group(1)) - 1}"
    if match := _NTH_WEEKDAY_RE.fullmatch(upper):
        return f"{_value(match.group(1), _SCHEDULER_DOW) - 1}#{match.group(2)}"
    if any(mark in upper for mark in "L#W?"):
        raise _CronSyntaxError(
            f"day-of-week: {text!r}: 'L', 'nL' (last n-day) and 'n#k' (k-th n-day, k 1-5) stand alone in the field,"
            " 'W' belongs to day-of-month"
        )
    days = _values(text, _SCHEDULER_DOW)
    return _croniter_list(frozenset(day - 1 for day in days), _CRONITER_DOW)


@dataclass(frozen=True)
class CronExpression:
    """A validated cron expression: Scheduler's form, and what croniter needs to list its firings."""

    source: str
    schedule_expression: str  # "cron(...)", as CreateSchedule takes it
    croniter_expression: str  # five Unix fields over local wall-clock time
    years: frozenset[int] | None  # None: every year

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        """Unix five fields, an @alias, or Scheduler's cron(...); ConfigError saying what is wrong."""
        return _parse(expression)


@functools.lru_cache(maxsize=256)
def _parse(expression: str) -> CronExpression:
    if not isinstance(expression, str):
        raise ConfigError(f"cron: {expression!r} is not a cron expression string")
    text = " ".join(expression.split())
    try:
        if text.lower() in ALIASES:
            text = ALIASES[text.lower()]
        elif text.startswith("@"):
            raise _CronSyntaxError(f"unknown alias; use one of {', '.join(ALIASES)}")
        match = _SCHEDULER_RE.fullmatch(text)
        scheduler_text = f"cron({match.group(1).strip().upper()})" if match else _unix_to_scheduler(text)
        return _from_scheduler(expression, scheduler_text)
    except _CronSyntaxError as exc:
        raise ConfigError(f"cron {expression!r}: {exc}") from None


def _from_scheduler(source: str, scheduler_text: str) -> CronExpression:
    if len(scheduler_text) > SCHEDULE_EXPRESSION_MAX_LEN:
        raise _CronSyntaxError(f"longer than the {SCHEDULE_EXPRESSION_MAX_LEN} characters Scheduler accepts")
    fields = scheduler_text[len("cron(") : -1].split()
    if len(fields) != 6:
        raise _CronSyntaxError("cron(...) has 6 fields: minutes hours day-of-month month day-of-week year")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise _CronSyntaxError("exactly one of day-of-month and day-of-week must be '?'")
    months = _values(month, _MONTH)
    day_fields = ("*", _scheduler_dow(dow)) if dom == "?" else (_scheduler_dom(dom, months), "*")
    croniter_expression = " ".join(
        (
            _croniter_list(_values(minute, _MINUTE), _MINUTE),
            _croniter_list(_values(hour, _HOUR), _HOUR),
            day_fields[0],
            _croniter_list(months, _MONTH),
            day_fields[1],
        )
    )
    years = None if year == "*" else _values(year, _YEAR)
    return CronExpression(source, scheduler_text, croniter_expression, years)


def to_schedule_expression(expression: str) -> str:
    """Scheduler's `cron(...)` for a Unix, @alias or Scheduler expression; ConfigError when it has none."""
    return CronExpression.parse(expression).schedule_expression


def check_timezone(tz: str) -> ZoneInfo:
    """The zone an IANA name such as "Europe/Paris" names; ConfigError naming it when it is not one."""
    try:
        if not isinstance(tz, str) or not tz:
            raise ValueError(tz)
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"time zone {tz!r} is not a known IANA zone (e.g. 'UTC', 'Europe/Paris')") from None


def _aware_utc(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{what} must be a datetime with a time zone, got {moment!r}")
    return moment.astimezone(UTC)


def _wall_times(cron: CronExpression, after_wall: datetime) -> Iterator[datetime]:
    """Local wall-clock times of the expression after `after_wall` (naive), in order, within its years."""
    from croniter import CroniterBadDateError, croniter

    walker = croniter(cron.croniter_expression, after_wall)
    while True:
        try:
            wall: datetime = walker.get_next(datetime)
        except CroniterBadDateError:  # no match within croniter's search horizon: it never fires again
            return
        if wall.year > MAX_YEAR:
            return
        if cron.years is not None and wall.year not in cron.years:
            later = [year for year in cron.years if year > wall.year]
            if not later:
                return
            walker = croniter(cron.croniter_expression, datetime(min(later), 1, 1) - timedelta(minutes=1))
            continue
        yield wall


def _place(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall time under Scheduler's DST rules: None if it does not exist, the first if twice."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return instant if instant.astimezone(zone).replace(tzinfo=None) == wall else None


def _fire_times(expression: str, tz: str, since: datetime, *, inclusive: bool) -> Iterator[datetime]:
    cron, zone = CronExpression.parse(expression), check_timezone(tz)
    start_wall = since.astimezone(zone).replace(tzinfo=None) - DST_MARGIN
    for wall in _wall_times(cron, start_wall):
        instant = _place(wall, zone)
        if instant is not None and (instant > since or (inclusive and instant == since)):
            yield instant


def next_fire_times(expression: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` firings strictly after `after`, as aware UTC datetimes (DST rules in the module doc)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_FIRE_TIMES:
        raise ValueError(f"count must be a whole number from 0 to {MAX_FIRE_TIMES}, got {count!r}")
    return list(itertools.islice(_fire_times(expression, tz, _aware_utc(after, "after"), inclusive=False), count))


def fire_times_between(expression: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every firing in [start, end), as aware UTC datetimes; ValueError past MAX_FIRE_TIMES of them."""
    start_utc, end_utc = _aware_utc(start, "start"), _aware_utc(end, "end")
    found: list[datetime] = []
    for instant in _fire_times(expression, tz, start_utc, inclusive=True):
        if instant >= end_utc:
            break
        if len(found) == MAX_FIRE_TIMES:
            raise ValueError(f"more than {MAX_FIRE_TIMES} firings between {start_utc} and {end_utc}")
        found.append(instant)
    return found


def tick_job_id(name: str, scheduled: datetime) -> str:
    """The job id of the firing of cron job `name` scheduled at `scheduled`: `NAME@2026-03-29T07:00:00Z`, the same
    for every delivery of that firing, so a duplicate delivery runs once. Firings fall on whole minutes, so the id
    keeps whole seconds."""
    moment = _aware_utc(scheduled, "scheduled")
    if moment.microsecond:
        raise ValueError(f"a scheduled time has whole seconds, got {moment.isoformat()}")
    return f"{check_job_name(name)}@{moment.strftime(TICK_TIME_FORMAT)}"


def parse_tick_job_id(job_id: str) -> tuple[str, datetime]:
    """The job name and aware UTC scheduled time in a tick id; ValueError when `job_id` is not one."""
    parts = split_tick_id(job_id)
    if parts is None:
        raise ValueError(f"{job_id!r} is not a cron tick id (NAME@YYYY-MM-DDTHH:MM:SSZ)")
    return parts


def is_tick_job_id(job_id: str) -> bool:
    return split_tick_id(job_id) is not None


def check_missed_policy(policy: str) -> MissedPolicy:
    if policy not in MISSED_POLICIES:
        raise ConfigError(f"missed-run policy {policy!r} is not one of {', '.join(map(repr, MISSED_POLICIES))}")
    return cast(MissedPolicy, policy)


def plan_missed(
    policy: MissedPolicy, expected: Iterable[datetime], recorded: Iterable[datetime], now: datetime, window_s: float
) -> list[datetime]:
    """Which missed firings to run now, oldest first. A firing is missed when it was expected at or before `now`
    and no tick was recorded for it (pass `now` less the delivery slack, so a firing on its way is not missed).

    - skip: none; the tick records say they were missed.
    - run_once: only the latest missed one (a digest wants today's run, not one per day of downtime).
    - catch_up: every missed one no older than `window_s` before `now`.
    """
    check_missed_policy(policy)
    now_utc = _aware_utc(now, "now")
    seen = {_aware_utc(moment, "recorded") for moment in recorded}
    missed = sorted(
        {moment for moment in (_aware_utc(item, "expected") for item in expected) if moment <= now_utc} - seen
    )
    if policy == "skip" or not missed:
        return []
    if policy == "run_once":
        return missed[-1:]
    if window_s < 0:
        raise ValueError(f"window_s must not be negative, got {window_s!r}")
    oldest = now_utc - timedelta(seconds=window_s)
    return [moment for moment in missed if moment >= oldest]
