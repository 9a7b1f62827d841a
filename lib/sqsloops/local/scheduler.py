"""Fires EventBridge rules' and EventBridge Scheduler schedules' expressions: moto stores both, fires neither.

Supported: rules with rate()/cron() on the default bus (the only bus AWS allows schedules on), and schedules with
rate()/cron()/at(), each honouring its timezone, StartDate/EndDate and ActionAfterCompletion. Targets: Lambda
(invoked with InvocationType Event, as EventBridge does) and SQS; other targets are logged once and skipped.
rate() intervals are divided by time_scale, so a compressed demo sees its schedules sooner; cron() and at() name
wall-clock times and stay real. Every time comes from the injected Clock, so tests move time without sleeping.

A tick fires each schedule at most once however late it is (a stalled process catches up one firing, never a
burst), and a change of a rule or schedule restarts its cadence from the time the change is seen.
Rule targets honour Input, then a simple InputPath ($ or $.a.b); InputTransformer is not applied (the event is
sent as is, logged once).
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.local.ticker import Ticker
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

RULE, SCHEDULE = "rule", "schedule"
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
_YEARS = (1970, 2199)  # the year range AWS cron accepts
_TICK_MAX_S, _TICK_MIN_S = 1.0, 0.02


@dataclass(frozen=True)
class Fired:
    """One firing of a rule or schedule: the targets it reached and those it could not."""

    kind: str  # "rule" or "schedule"
    name: str
    arn: str
    scheduled_time: float  # epoch seconds the firing was due at
    delivered: tuple[str, ...]
    failed: tuple[str, ...]


class _Trigger(Protocol):
    def first(self, now: float) -> float | None: ...

    def next_after(self, moment: float) -> float | None: ...


@dataclass(frozen=True)
class _Rate:
    interval_s: float
    anchor: float

    def first(self, now: float) -> float | None:
        return self.anchor + self.interval_s

    def next_after(self, moment: float) -> float | None:
        steps = math.floor((moment - self.anchor) / self.interval_s) + 1
        return self.anchor + max(steps, 1) * self.interval_s


@dataclass(frozen=True)
class _Cron:
    expression: str  # croniter's five fields
    zone: ZoneInfo
    years: frozenset[int] | None  # None: every year

    def first(self, now: float) -> float | None:
        return self.next_after(now)

    def next_after(self, moment: float) -> float | None:
        base = datetime.fromtimestamp(moment, self.zone)
        for _ in range(1000):
            candidate: datetime = croniter(self.expression, base).get_next(datetime)
            if self.years is None or candidate.year in self.years:
                return candidate.timestamp()
            later = [year for year in self.years if year > candidate.year]
            if not later:
                return None
            base = datetime(min(later), 1, 1, tzinfo=self.zone) - timedelta(seconds=1)
        return None


@dataclass(frozen=True)
class _At:
    at: float

    def first(self, now: float) -> float | None:
        return self.at  # already past when first seen: fired once at once, as a late firing

    def next_after(self, moment: float) -> float | None:
        return None


def parse_expression(
    expression: str, *, timezone: str = "UTC", time_scale: float = 1.0, anchor: float = 0.0, allow_at: bool = True
) -> _Trigger:
    """The trigger of a schedule expression; ValueError if AWS would not accept it or croniter cannot run it."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc
    expression = expression.strip()
    if match := _RATE.match(expression):
        value, unit = int(match.group(1)), match.group(2)
        if value < 1 or (value == 1) == unit.endswith("s"):
            raise ValueError(f"{expression!r}: rate(1 unit) or rate(n units) with n > 1")
        return _Rate(interval_s=value * _UNIT_S[unit.rstrip("s")] / time_scale, anchor=anchor)
    if match := _CRON.match(expression):
        five, years = aws_cron_to_croniter(match.group(1))
        trigger = _Cron(expression=five, zone=zone, years=years)
        try:
            trigger.next_after(anchor)
        except Exception as exc:  # croniter raises several types for what it cannot parse
            raise ValueError(f"{expression!r}: {exc}") from exc
        return trigger
    if allow_at and (match := _AT.match(expression)):
        moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
        return _At(at=moment.timestamp())
    raise ValueError(f"{expression!r} is not a supported schedule expression")


def aws_cron_to_croniter(body: str) -> tuple[str, frozenset[int] | None]:
    """AWS's six cron fields (day-of-week 1-7 = SUN-SAT, ? and year) as croniter's five, plus the allowed years."""
    fields = body.split()
    if len(fields) != 6:
        raise ValueError(f"cron({body}) needs 6 fields: minutes hours day-of-month month day-of-week year")
    minute, hour, dom, month, dow, year = fields
    if "?" not in (dom, dow) or dom == dow:
        raise ValueError(f"cron({body}): exactly one of day-of-month and day-of-week must be ?")
    if "LW" in dom.upper():
        raise ValueError(f"cron({body}): LW (last weekday of the month) is not supported locally")
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else ",".join(_aws_dow_item(item) for item in dow.split(","))
    croniter_expression = " ".join((minute, hour, dom, month, dow))
    if not croniter.is_valid(croniter_expression):
        raise ValueError(f"cron({body}) is not a valid cron expression")
    return croniter_expression, _years(year)


def _aws_dow_item(item: str) -> str:
    def day(token: str) -> str:
        if not token.isdigit():
            return token  # a name (MON) or *
        number = int(token)
        if not 1 <= number <= 7:
            raise ValueError(f"day-of-week {token} is not in 1-7")
        return str(number - 1)

    upper = item.upper()
    if upper == "L":
        return "6"  # L alone: the last day of the week, Saturday
    if "#" in item:
        weekday, nth = item.split("#", 1)
        return f"{day(weekday)}#{nth}"
    if upper.endswith("L"):
        return f"L{day(item[:-1])}"
    if "/" in item:
        base, step = item.split("/", 1)
        return f"{_aws_dow_item(base)}/{step}"
    if "-" in item:
        low, high = item.split("-", 1)
        return f"{day(low)}-{day(high)}"
    return day(item)


def _years(field: str) -> frozenset[int] | None:
    if field in ("*", "?"):
        return None
    years: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = _YEARS
        elif "-" in span:
            low, high = (int(part) for part in span.split("-", 1))
        else:
            low = int(span)
            high = _YEARS[1] if step_text else low
        if not (_YEARS[0] <= low <= high <= _YEARS[1]) or step < 1:
            raise ValueError(f"year field {field!r} is not within {_YEARS[0]}-{_YEARS[1]}")
        years.update(range(low, high + 1, step))
    return frozenset(years)


@dataclass(frozen=True)
class _Spec:
    """A rule or schedule as listed this tick."""

    kind: str
    name: str
    arn: str
    expression: str
    timezone: str = "UTC"
    start: float | None = None
    end: float | None = None
    group: str = "default"
    target: dict[str, Any] | None = None  # a schedule's target; a rule's are listed when it fires
    after_completion: str = "NONE"
    version: Any = None  # what changes when the rule or schedule is edited

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.arn}"


@dataclass
class _Track:
    signature: tuple[Any, ...]
    trigger: _Trigger
    next_at: float | None


class Scheduler:
    """Fires due rules and schedules at their targets, on tick() or on a daemon thread."""

    def __init__(
        self,
        *,
        events: Any,
        scheduler: EventBridgeSchedulerClient,
        lambda_client: LambdaClient,
        sqs: SQSClient,
        time_scale: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._events = events  # an EventBridge client (its stubs are not installed, hence Any)
        self._scheduler = scheduler
        self._lambda = lambda_client
        self._sqs = sqs
        self._time_scale = float(time_scale)
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        self._schedules: dict[tuple[str, str], tuple[Any, Any]] = {}  # (group, name) -> (modified, full)
        self._queue_urls: dict[str, str] = {}
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._ticker = Ticker(name="sqsloops-scheduler", work=self.tick, interval_s=self.tick_s)

    # -- driving ---------------------------------------------------------------------------------------------

    def tick(self) -> list[Fired]:
        """Fire every rule and schedule due since the last tick, each at most once; returns what fired."""
        with self._lock:
            now = self._clock.now()
            fired: list[Fired] = []
            seen: set[str] = set()
            for kind, lister in ((RULE, self._rules), (SCHEDULE, self._schedule_specs)):
                try:
                    specs = list(lister())
                except Exception:
                    logger.exception("could not list schedules; keeping their cadence", extra={"kind": kind})
                    seen.update(key for key in self._tracks if key.startswith(f"{kind}:"))
                    continue
                for spec in specs:
                    seen.add(spec.key)
                    try:
                        result = self._consider(spec, now)
                    except Exception:
                        logger.exception("schedule not fired", extra={"kind": spec.kind, "schedule": spec.name})
                        continue
                    if result is not None:
                        fired.append(result)
            for key in set(self._tracks) - seen:  # deleted or disabled: a later one starts afresh
                del self._tracks[key]
            return fired

    def start(self) -> None:
        """Tick on a daemon thread until stop()."""
        self._ticker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._ticker.stop(timeout_s)

    def tick_s(self) -> float:
        """A quarter of the shortest scaled rate() interval, at most 1 s (cron and at() have minute precision)."""
        rates = [track.trigger.interval_s for track in self._tracks.values() if isinstance(track.trigger, _Rate)]
        return max(_TICK_MIN_S, min([_TICK_MAX_S, *(rate / 4 for rate in rates)]))

    # -- listing ---------------------------------------------------------------------------------------------

    def _rules(self) -> Iterator[_Spec]:
        for page in self._events.get_paginator("list_rules").paginate():
            for rule in page.get("Rules", []):
                expression = rule.get("ScheduleExpression")
                if not expression or rule.get("State") != "ENABLED":
                    continue
                yield _Spec(kind=RULE, name=rule["Name"], arn=rule["Arn"], expression=expression)

    def _schedule_specs(self) -> Iterator[_Spec]:
        listed: set[tuple[str, str]] = set()
        for page in self._scheduler.get_paginator("list_schedules").paginate():
            for summary in page.get("Schedules", []):
                if summary.get("State") != "ENABLED":
                    continue
                group, name = summary.get("GroupName") or "default", summary["Name"]
                listed.add((group, name))
                modified = summary.get("LastModificationDate")
                cached = self._schedules.get((group, name))
                if cached is None or cached[0] != modified:
                    full: Any = self._scheduler.get_schedule(Name=name, GroupName=group)
                    cached = self._schedules[(group, name)] = (modified, full)
                schedule = cached[1]
                yield _Spec(
                    kind=SCHEDULE,
                    name=name,
                    arn=schedule["Arn"],
                    expression=schedule["ScheduleExpression"],
                    timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
                    start=_epoch(schedule.get("StartDate")),
                    end=_epoch(schedule.get("EndDate")),
                    group=group,
                    target=dict(schedule["Target"]),
                    after_completion=schedule.get("ActionAfterCompletion") or "NONE",
                    version=modified,
                )
        for gone in set(self._schedules) - listed:
            del self._schedules[gone]

    # -- firing ----------------------------------------------------------------------------------------------

    def _consider(self, spec: _Spec, now: float) -> Fired | None:
        signature = (spec.expression, spec.timezone, spec.start, spec.end, spec.version)
        track = self._tracks.get(spec.key)
        if track is None or track.signature != signature:
            anchor = max(now, spec.start) if spec.start is not None else now
            try:
                trigger = parse_expression(
                    spec.expression,
                    timezone=spec.timezone,
                    time_scale=self._time_scale,
                    anchor=anchor,
                    allow_at=spec.kind == SCHEDULE,
                )
            except ValueError as exc:
                self._log_once(spec.key, f"invalid schedule expression, never fired: {exc}")
                return None
            track = self._tracks[spec.key] = _Track(signature, trigger, trigger.first(anchor))
        due = track.next_at
        if due is None or now < due:
            return None
        track.next_at = track.trigger.next_after(max(now, due))  # missed firings are dropped, never a burst
        recurring = not isinstance(track.trigger, _At)
        if recurring and spec.end is not None and due > spec.end:
            track.next_at = None
            self._complete(spec)
            return None
        delivered, failed = self._fire(spec, due)
        if not recurring or track.next_at is None or (spec.end is not None and track.next_at > spec.end):
            self._complete(spec)
        logger.info(
            "schedule fired",
            extra={"kind": spec.kind, "schedule": spec.name, "delivered": delivered, "failed": failed},
        )
        return Fired(spec.kind, spec.name, spec.arn, due, tuple(delivered), tuple(failed))

    def _complete(self, spec: _Spec) -> None:
        """A schedule with nothing left to fire: deleted when its ActionAfterCompletion says so."""
        if spec.kind == SCHEDULE and spec.after_completion == "DELETE":
            self._scheduler.delete_schedule(Name=spec.name, GroupName=spec.group)
            self._schedules.pop((spec.group, spec.name), None)
            logger.info("completed schedule deleted", extra={"schedule": spec.name})

    def _fire(self, spec: _Spec, due: float) -> tuple[list[str], list[str]]:
        deliveries: list[tuple[dict[str, Any], str]] = []
        if spec.kind == RULE:
            event = scheduled_event(spec.arn, due)
            for page in self._events.get_paginator("list_targets_by_rule").paginate(Rule=spec.name):
                deliveries.extend((target, self._rule_payload(spec, target, event)) for target in page["Targets"])
        elif spec.target is not None:
            deliveries.append((spec.target, _schedule_payload(spec, due)))
        delivered: list[str] = []
        failed: list[str] = []
        for target, payload in deliveries:
            arn = str(target["Arn"])
            try:
                self._deliver(spec, target, payload)
            except Exception:
                logger.exception("schedule target not reached", extra={"schedule": spec.name, "target": arn})
                failed.append(arn)
            else:
                delivered.append(arn)
        return delivered, failed

    def _rule_payload(self, spec: _Spec, target: dict[str, Any], event: dict[str, Any]) -> str:
        if target.get("Input") is not None:
            return str(target["Input"])
        if target.get("InputPath"):
            try:
                return json.dumps(_json_path(event, str(target["InputPath"])))
            except (KeyError, ValueError):
                self._log_once(spec.key, f"InputPath {target['InputPath']!r} not supported locally; event sent")
        if target.get("InputTransformer"):
            self._log_once(spec.key, "InputTransformer not applied locally; event sent")
        return json.dumps(event)

    def _deliver(self, spec: _Spec, target: dict[str, Any], payload: str) -> None:
        arn = str(target["Arn"])
        parts = arn.split(":")
        service = parts[2] if len(parts) > 5 else ""
        if service == "lambda":
            self._lambda.invoke(FunctionName=arn, InvocationType="Event", Payload=payload.encode())
        elif service == "sqs":
            extra: dict[str, Any] = {}
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            if group:
                extra["MessageGroupId"] = group
            self._sqs.send_message(QueueUrl=self._queue_url(arn), MessageBody=payload, **extra)
        else:
            self._log_once(spec.key, f"target {arn} is neither Lambda nor SQS; not reached locally")
            raise ValueError(f"unsupported target {arn}")

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            _, _, _, _, account, name = arn.split(":", 5)
            self._queue_urls[arn] = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._queue_urls[arn]

    def _log_once(self, key: str, note: str) -> None:
        if (key, note) not in self._logged:
            self._logged.add((key, note))
            logger.warning("schedule skipped by the local scheduler", extra={"schedule": key, "note": note})


def scheduled_event(rule_arn: str, due: float) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's targets."""
    parts = rule_arn.split(":")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": parts[4],
        "time": datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": parts[3],
        "resources": [rule_arn],
        "detail": {},
    }


def _schedule_payload(spec: _Spec, due: float) -> str:
    """A schedule target's Input with EventBridge Scheduler's context attributes filled in ("{}" without one)."""
    text = str((spec.target or {}).get("Input") or "{}")
    context = {
        "<aws.scheduler.schedule-arn>": spec.arn,
        "<aws.scheduler.scheduled-time>": datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": str(uuid.uuid4()),
        "<aws.scheduler.attempt-number>": "1",
    }
    for placeholder, value in context.items():
        text = text.replace(placeholder, value)
    return text


def _json_path(event: dict[str, Any], path: str) -> Any:
    """$ or $.a.b: the InputPath forms a scheduled event has anything to select with."""
    if path == "$":
        return event
    if not path.startswith("$."):
        raise ValueError(path)
    value: Any = event
    for key in path[2:].split("."):
        value = value[key]
    return value


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)
