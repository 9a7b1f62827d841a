"""Fires EventBridge rules' and EventBridge Scheduler schedules' expressions: moto stores both, fires neither.

Supported: rules with rate()/cron() on the default bus (the only bus AWS allows schedules on), and schedules with
rate()/cron()/at(), each honouring its timezone, StartDate/EndDate and ActionAfterCompletion. Targets: Lambda
(invoked with InvocationType Event, as EventBridge does) and SQS; other targets are logged once and skipped.
Time compression: rate() intervals are divided by time_scale; a schedule's cron() and at() run on its own timeline,
which starts when the schedule was made and runs time_scale times faster, so a one-hour delay at x60 fires a minute
after it was made and a minutely cron fires every second, its <aws.scheduler.scheduled-time> one minute apart on
that timeline. cron() firing times come from sqsloops.jobs.cron (Scheduler's daylight-saving rules: a local time
that does not exist is skipped, one that happens twice fires once), the code the job layer previews ticks with.
A failed schedule delivery goes to the target's DeadLetterConfig queue at once (AWS first retries per its
RetryPolicy). Every time comes from the injected Clock, so tests move time without sleeping.

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.jobs.cron import CronExpression, check_timezone, next_fire_times
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
_TICK_MAX_S, _TICK_MIN_S = 1.0, 0.02
_CRON_PRECISION_S = 60.0  # Scheduler fires within the minute; a cron's firings are at least a minute apart
_DLQ_MESSAGE_MAX = 256


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

    def nominal(self, moment: float) -> float: ...


@dataclass(frozen=True)
class _Rate:
    interval_s: float
    anchor: float

    def first(self, now: float) -> float | None:
        return self.anchor + self.interval_s

    def next_after(self, moment: float) -> float | None:
        steps = math.floor((moment - self.anchor) / self.interval_s) + 1
        return self.anchor + max(steps, 1) * self.interval_s

    def nominal(self, moment: float) -> float:
        return moment  # a compressed rate() reports real times: nothing reads its timeline


@dataclass(frozen=True)
class _Cron:
    """A cron() expression's firings, computed by sqsloops.jobs.cron (Scheduler's DST rules, the very code the job
    layer previews ticks and finds missed runs with). Under time compression the schedule lives on its own
    timeline, which starts at `anchor` and runs `scale` times faster: its firings are that timeline's cron times,
    and `nominal` maps a real instant back to it (what <aws.scheduler.scheduled-time> says)."""

    expression: str  # Scheduler's cron(...)
    timezone: str
    anchor: float
    scale: float = 1.0
    not_before: float | None = None  # StartDate, on the schedule's timeline

    def first(self, now: float) -> float | None:
        return self.next_after(now)

    def nominal(self, moment: float) -> float:
        return round(self.anchor + (moment - self.anchor) * self.scale, 3)

    def next_after(self, moment: float) -> float | None:
        after = self.nominal(moment)
        if self.not_before is not None and after < self.not_before:
            after = self.not_before - 0.001  # StartDate itself may fire
        found = next_fire_times(self.expression, self.timezone, datetime.fromtimestamp(after, UTC), 1)
        if not found:
            return None
        return self.anchor + (found[0].timestamp() - self.anchor) / self.scale


@dataclass(frozen=True)
class _At:
    """One firing at `at` on the schedule's timeline, which under compression starts at `anchor` (when the
    schedule was made) and runs `scale` times faster: a one-hour delay at x60 fires a minute after it was made."""

    at: float
    anchor: float = 0.0
    scale: float = 1.0

    def first(self, now: float) -> float | None:
        if self.at <= self.anchor:
            return self.at  # already past when made or first seen: fired once at once, as a late firing
        return self.anchor + (self.at - self.anchor) / self.scale

    def next_after(self, moment: float) -> float | None:
        return None

    def nominal(self, moment: float) -> float:
        return self.at


def parse_expression(
    expression: str, *, timezone: str = "UTC", time_scale: float = 1.0, anchor: float = 0.0, allow_at: bool = True
) -> _Trigger:
    """The trigger of a schedule expression; ValueError if AWS would not accept it (or sqsloops cannot compute it).

    rate() intervals are divided by time_scale; cron() and at() run on the schedule's own timeline from `anchor`,
    time_scale times faster (see _Cron and _At)."""
    try:
        check_timezone(timezone)
    except ConfigError as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc
    expression = expression.strip()
    if match := _RATE.match(expression):
        value, unit = int(match.group(1)), match.group(2)
        if value < 1 or (value == 1) == unit.endswith("s"):
            raise ValueError(f"{expression!r}: rate(1 unit) or rate(n units) with n > 1")
        return _Rate(interval_s=value * _UNIT_S[unit.rstrip("s")] / time_scale, anchor=anchor)
    if _CRON.match(expression):
        try:
            CronExpression.parse(expression)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return _Cron(expression=expression, timezone=timezone, anchor=anchor, scale=time_scale)
    if allow_at and (match := _AT.match(expression)):
        moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone))
        return _At(at=moment.timestamp(), anchor=anchor, scale=time_scale)
    raise ValueError(f"{expression!r} is not a supported schedule expression")


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
        if any(isinstance(track.trigger, _Cron) for track in self._tracks.values()):
            rates.append(_CRON_PRECISION_S / self._time_scale)  # a compressed minute
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
            try:
                trigger = self._trigger(spec, now)
            except ValueError as exc:
                self._log_once(spec.key, f"invalid schedule expression, never fired: {exc}")
                return None
            first_from = max(now, spec.start) if spec.start is not None and isinstance(trigger, _Rate) else now
            track = self._tracks[spec.key] = _Track(signature, trigger, trigger.first(first_from))
        due = track.next_at
        if due is None or now < due:
            return None
        trigger = track.trigger
        track.next_at = trigger.next_after(max(now, due))  # missed firings are dropped, never a burst
        recurring = not isinstance(trigger, _At)  # Scheduler ignores StartDate and EndDate for at()
        scheduled = trigger.nominal(due)
        if recurring and spec.end is not None and scheduled > spec.end:
            track.next_at = None
            self._complete(spec)
            return None
        delivered, failed = self._fire(spec, scheduled)
        after = None if track.next_at is None else trigger.nominal(track.next_at)
        if not recurring or after is None or (spec.end is not None and after > spec.end):
            self._complete(spec)
        logger.info(
            "schedule fired",
            extra={"kind": spec.kind, "schedule": spec.name, "delivered": delivered, "failed": failed},
        )
        return Fired(spec.kind, spec.name, spec.arn, scheduled, tuple(delivered), tuple(failed))

    def _trigger(self, spec: _Spec, now: float) -> _Trigger:
        """The trigger of a rule or schedule as listed now. A schedule's cron() and at() timeline starts when it was
        made or last changed (LastModificationDate, unless that is ahead of the clock: a test's ManualClock),
        rate()'s at its StartDate or now, as before."""
        made = _epoch(spec.version) if spec.kind == SCHEDULE else None
        anchor = made if made is not None and made <= now else now
        if _RATE.match(spec.expression.strip()):
            anchor = max(now, spec.start) if spec.start is not None else now
        trigger = parse_expression(
            spec.expression,
            timezone=spec.timezone,
            time_scale=self._time_scale,
            anchor=anchor,
            allow_at=spec.kind == SCHEDULE,
        )
        if isinstance(trigger, _Cron) and spec.start is not None:
            trigger = replace(trigger, not_before=spec.start)
        return trigger

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
        execution_id = str(uuid.uuid4())
        if spec.kind == SCHEDULE and spec.target is not None:
            deliveries.append((spec.target, _schedule_payload(spec, due, execution_id)))
        delivered: list[str] = []
        failed: list[str] = []
        for target, payload in deliveries:
            arn = str(target["Arn"])
            try:
                self._deliver(spec, target, payload)
            except Exception as exc:
                logger.exception("schedule target not reached", extra={"schedule": spec.name, "target": arn})
                failed.append(arn)
                if spec.kind == SCHEDULE:
                    self._dead_letter(spec, target, payload, exc, execution_id)
            else:
                delivered.append(arn)
        return delivered, failed

    def _dead_letter(
        self, spec: _Spec, target: dict[str, Any], payload: str, error: Exception, execution_id: str
    ) -> None:
        """A schedule's undelivered input goes to its DeadLetterConfig queue, if it has one, with the details in
        message attributes. AWS retries (RetryPolicy) before that; locally a delivery fails at once."""
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            return
        code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
        details = {
            "ERROR_CODE": code or type(error).__name__,
            "ERROR_MESSAGE": str(error)[:_DLQ_MESSAGE_MAX],
            "EXECUTION_ID": execution_id,
            "SCHEDULE_ARN": spec.arn,
            "TARGET_ARN": str(target["Arn"]),
            "RETRY_ATTEMPTS": "0",
        }
        attributes: dict[str, Any] = {
            name: {"DataType": "String", "StringValue": value or "-"} for name, value in details.items()
        }
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url(str(dlq)), MessageBody=payload, MessageAttributes=attributes
            )
        except Exception:
            logger.exception("schedule dead-letter queue not reached", extra={"schedule": spec.name, "dlq": dlq})

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


def _schedule_payload(spec: _Spec, scheduled: float, execution_id: str | None = None) -> str:
    """A schedule target's Input with EventBridge Scheduler's context attributes filled in ("{}" without one).

    `scheduled` is the firing's time on the schedule's timeline (compressed locally), in whole seconds as Scheduler
    writes it; the execution id is one per firing, as on AWS."""
    text = str((spec.target or {}).get("Input") or "{}")
    context = {
        "<aws.scheduler.schedule-arn>": spec.arn,
        "<aws.scheduler.scheduled-time>": datetime.fromtimestamp(scheduled, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": execution_id or str(uuid.uuid4()),
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
