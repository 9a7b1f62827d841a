"""CloudWatch alarm evaluation for the embedded AWS: moto stores alarms but never evaluates them.

Each AWS/SQS queue-depth alarm gets one datapoint per Period (divided by time_scale) from GetQueueAttributes, the
only source of the depth there is locally. SQS publishes these metrics as one sample a minute, so every statistic
of a one-sample period is that sample (SampleCount: 1). The evaluator applies the comparison, M out of N and
TreatMissingData as CloudWatch does, writes the state back with SetAlarmState, and publishes CloudWatch's own
notification JSON (same keys, order, Subject and reason wording) to the SNS actions of the new state.

Skipped, logged once each: metric-math alarms, namespaces other than AWS/SQS, alarms without exactly a QueueName
dimension, and SQS metrics GetQueueAttributes cannot give honestly (ApproximateAgeOfOldestMessage needs the
oldest message's sent time, which only a receive would reveal; NumberOfMessagesSent & co. are counters).
"""

from __future__ import annotations

import json
import operator
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import botocore.loaders
from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.local.ticker import Ticker
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
INITIAL_REASON = "Unchecked: Initial alarm creation"  # what AWS (and moto) say before the first evaluation
NAMESPACE = "AWS/SQS"
METRIC_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
_COMPARE: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", operator.gt),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", operator.ge),
    "LessThanThreshold": ("less than", operator.lt),
    "LessThanOrEqualToThreshold": ("less than or equal to", operator.le),
}
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_SUBJECT_MAX = 100  # SNS rejects longer subjects
_REASON_MAX, _REASON_DATA_MAX = 1023, 4000  # SetAlarmState limits
_TICK_MAX_S, _TICK_MIN_S = 1.0, 0.02


@dataclass(frozen=True)
class Transition:
    """One alarm state change made by an evaluation; value is the newest datapoint (None: missing data)."""

    alarm_name: str
    old_state: str
    new_state: str
    value: float | None
    reason: str = ""


@dataclass(frozen=True)
class _Datapoint:
    timestamp: float
    value: float | None  # None: no data (the queue does not exist)


@dataclass
class _Tracked:
    """What the evaluator remembers of one alarm between evaluations."""

    metric: tuple[Any, ...]
    state: str = INSUFFICIENT_DATA
    evaluated: bool = False
    next_due: float = float("-inf")
    history: deque[_Datapoint] = field(default_factory=lambda: deque(maxlen=100))


@dataclass(frozen=True)
class _Verdict:
    state: str
    reason: str
    reason_data: dict[str, Any]


class AlarmEvaluator:
    """Evaluates moto's AWS/SQS alarms every period and acts on state changes as CloudWatch would."""

    def __init__(
        self,
        *,
        cloudwatch: CloudWatchClient,
        sqs: SQSClient,
        sns: SNSClient,
        time_scale: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._cw = cloudwatch
        self._sqs = sqs
        self._sns = sns
        self._time_scale = float(time_scale)
        self._clock = clock
        self._region = cloudwatch.meta.region_name
        self._region_name = region_display_name(self._region)
        self._tracked: dict[str, _Tracked] = {}
        self._queue_urls: dict[str, str] = {}
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._ticker = Ticker(name="sqsloops-alarm-evaluator", work=self.evaluate_due, interval_s=self.tick_s)

    # -- driving ---------------------------------------------------------------------------------------------

    def evaluate_once(self) -> list[Transition]:
        """Evaluate every alarm now (one new datapoint each), whether or not its period is due."""
        return self._evaluate(due_only=False)

    def evaluate_due(self) -> list[Transition]:
        """Evaluate only the alarms whose period (Period / time_scale on the clock) has elapsed; new ones at once."""
        return self._evaluate(due_only=True)

    def start(self) -> None:
        """Evaluate due alarms on a daemon thread until stop()."""
        self._ticker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._ticker.stop(timeout_s)

    def tick_s(self) -> float:
        """How often the thread looks for due alarms: a quarter of the shortest scaled period, at most 1 s."""
        periods = [float(tracked.metric[4]) for tracked in self._tracked.values()]
        if not periods:
            return _TICK_MAX_S
        return max(_TICK_MIN_S, min(_TICK_MAX_S, min(periods) / self._time_scale / 4))

    # -- evaluation ------------------------------------------------------------------------------------------

    def _evaluate(self, *, due_only: bool) -> list[Transition]:
        with self._lock:
            alarms = self._describe()
            names = {alarm["AlarmName"] for alarm in alarms}
            for gone in set(self._tracked) - names:
                del self._tracked[gone]
            samples: dict[str, dict[str, float] | None] = {}  # one GetQueueAttributes per queue per round
            transitions: list[Transition] = []
            for alarm in alarms:
                try:
                    transition = self._evaluate_alarm(alarm, samples, due_only=due_only)
                except Exception:
                    logger.exception("alarm not evaluated", extra={"alarm_name": alarm.get("AlarmName")})
                    continue
                if transition is not None:
                    transitions.append(transition)
            return transitions

    def _describe(self) -> list[dict[str, Any]]:
        paginator = self._cw.get_paginator("describe_alarms")
        return [
            dict(alarm)
            for page in paginator.paginate(AlarmTypes=["MetricAlarm"])
            for alarm in page.get("MetricAlarms", [])
        ]

    def _evaluate_alarm(
        self, alarm: dict[str, Any], samples: dict[str, dict[str, float] | None], *, due_only: bool
    ) -> Transition | None:
        name = alarm["AlarmName"]
        queue_name = self._supported_queue(alarm)
        if queue_name is None:
            return None
        metric = (
            alarm["Namespace"],
            alarm["MetricName"],
            queue_name,
            alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
            int(alarm["Period"]),
        )
        tracked = self._tracked.get(name)
        pristine = alarm.get("StateReason") == INITIAL_REASON
        if tracked is None:
            tracked = self._tracked[name] = _Tracked(metric=metric)
        elif tracked.metric != metric:  # the alarm was rewritten to watch something else
            tracked.metric, tracked.history = metric, deque(maxlen=tracked.history.maxlen)

        now_mono = self._clock.monotonic()
        if due_only and now_mono < tracked.next_due:
            return None
        interval_s = metric[4] / self._time_scale
        # Keep the cadence; after a stall (or on the first evaluation) restart it from now, never a burst.
        tracked.next_due += interval_s
        if tracked.next_due <= now_mono:
            tracked.next_due = now_mono + interval_s

        if queue_name not in samples:
            samples[queue_name] = self._sample(queue_name)
        sample = samples[queue_name]
        value = None if sample is None else _statistic(alarm, sample[METRIC_ATTRIBUTES[alarm["MetricName"]]])
        now = self._clock.now()
        tracked.history.append(_Datapoint(timestamp=now, value=value))

        # A rewritten alarm keeps its state in AWS; moto resets it to its initial one, so restore ours. A new
        # alarm starts in INSUFFICIENT_DATA in AWS, which moto shows as OK with the initial reason.
        old = (tracked.state if tracked.evaluated else INSUFFICIENT_DATA) if pristine else str(alarm["StateValue"])
        verdict = _decide(alarm, tracked.history, old_state=old, now=now)
        tracked.state, tracked.evaluated = verdict.state, True
        if verdict.state == old and not pristine:
            return None
        self._cw.set_alarm_state(
            AlarmName=name,
            StateValue=verdict.state,  # type: ignore[arg-type]
            StateReason=verdict.reason[:_REASON_MAX],
            StateReasonData=_fit(verdict.reason_data),
        )
        if verdict.state == old:
            return None
        logger.info(
            "alarm state changed",
            extra={"alarm_name": name, "old_state": old, "new_state": verdict.state, "value": value},
        )
        if alarm.get("ActionsEnabled", True):
            self._notify(alarm, old_state=old, verdict=verdict, now=now)
        return Transition(alarm_name=name, old_state=old, new_state=verdict.state, value=value, reason=verdict.reason)

    def _supported_queue(self, alarm: dict[str, Any]) -> str | None:
        """The alarm's queue name when this evaluator can compute its metric, else None (logged once)."""
        name = alarm["AlarmName"]
        if alarm.get("Metrics"):
            self._log_once(name, "metric-math alarm not evaluated locally")
            return None
        if alarm.get("Namespace") != NAMESPACE:
            self._log_once(name, f"namespace {alarm.get('Namespace')!r} not evaluated locally")
            return None
        if alarm.get("MetricName") not in METRIC_ATTRIBUTES:
            self._log_once(name, f"metric {alarm.get('MetricName')!r} cannot be computed from GetQueueAttributes")
            return None
        dimensions = alarm.get("Dimensions") or []
        if len(dimensions) != 1 or dimensions[0].get("Name") != "QueueName":
            self._log_once(name, "AWS/SQS alarm without exactly a QueueName dimension not evaluated locally")
            return None
        if alarm.get("ComparisonOperator") not in _COMPARE:
            self._log_once(name, f"comparison {alarm.get('ComparisonOperator')!r} not evaluated locally")
            return None
        return str(dimensions[0]["Value"])

    def _sample(self, queue_name: str) -> dict[str, float] | None:
        """The queue's depth attributes, or None when the queue does not exist (missing data)."""
        for _attempt in range(2):
            url = self._queue_urls.get(queue_name)
            try:
                if url is None:
                    url = self._queue_urls[queue_name] = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
                attributes: dict[str, str] = self._sqs.get_queue_attributes(  # type: ignore[assignment]
                    QueueUrl=url,
                    AttributeNames=list(METRIC_ATTRIBUTES.values()),  # type: ignore[arg-type]
                )["Attributes"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _MISSING_QUEUE:
                    raise
                self._queue_urls.pop(queue_name, None)  # deleted, maybe re-created under another URL: look again
                continue
            return {key: float(attributes.get(key, 0)) for key in METRIC_ATTRIBUTES.values()}
        return None

    def _notify(self, alarm: dict[str, Any], *, old_state: str, verdict: _Verdict, now: float) -> None:
        actions = {ALARM: "AlarmActions", OK: "OKActions", INSUFFICIENT_DATA: "InsufficientDataActions"}
        targets = list(alarm.get(actions[verdict.state]) or [])
        if not targets:
            return
        message = notification_message(
            alarm,
            old_state=old_state,
            new_state=verdict.state,
            reason=verdict.reason,
            now=now,
            region_name=self._region_name,
        )
        subject = notification_subject(verdict.state, alarm["AlarmName"], self._region_name)
        for arn in targets:
            if arn.split(":")[2:3] != ["sns"]:
                self._log_once(alarm["AlarmName"], f"action {arn} is not an SNS topic; not run locally")
                continue
            try:
                self._sns.publish(TopicArn=arn, Subject=subject, Message=message)
            except ClientError:
                logger.exception(
                    "alarm notification not published", extra={"alarm_name": alarm["AlarmName"], "topic_arn": arn}
                )

    def _log_once(self, alarm_name: str, note: str) -> None:
        if (alarm_name, note) not in self._logged:
            self._logged.add((alarm_name, note))
            logger.info("alarm skipped by the local evaluator", extra={"alarm_name": alarm_name, "note": note})


# -- CloudWatch's evaluation and wording ----------------------------------------------------------------------


def _statistic(alarm: dict[str, Any], sample: float) -> float:
    """A one-sample period: every statistic is the sample, except SampleCount."""
    return 1.0 if alarm.get("Statistic") == "SampleCount" else sample


def _decide(alarm: dict[str, Any], history: deque[_Datapoint], *, old_state: str, now: float) -> _Verdict:
    """The state CloudWatch would set from the newest EvaluationPeriods datapoints (M out of N, missing data)."""
    periods = max(int(alarm.get("EvaluationPeriods") or 1), 1)
    needed = min(max(int(alarm.get("DatapointsToAlarm") or periods), 1), periods)
    treat = alarm.get("TreatMissingData") or "missing"
    threshold = float(alarm["Threshold"])
    words, breaches = _COMPARE[alarm["ComparisonOperator"]]
    window = list(history)[-periods:]
    present = [point for point in window if point.value is not None]
    missing = len(window) - len(present)
    data = _reason_data(alarm, window, now=now)

    if treat in ("missing", "ignore"):
        if not present:
            if treat == "ignore":
                return _Verdict(old_state, str(alarm.get("StateReason") or ""), data)
            return _Verdict(
                INSUFFICIENT_DATA, f"Insufficient Data: {_count(missing, 'datapoint')} {_was(missing)} unknown.", data
            )
        # Missing datapoints are left out: CloudWatch looks further back for the N datapoints it evaluates.
        window = [point for point in history if point.value is not None][-periods:]
        present, missing = window, 0
        data = _reason_data(alarm, window, now=now)
    if not present:
        as_breaching = treat == "breaching"
        label = "[Breaching]" if as_breaching else "[NonBreaching]"
        reason = (
            f"Threshold Crossed: no datapoints were received for {_count(missing, 'period')} and "
            f"{_count(missing, 'missing datapoint')} {_was(missing)} treated as {label}."
        )
        return _Verdict(ALARM if as_breaching and missing >= needed else OK, reason, data)

    breaching = [point for point in present if point.value is not None and breaches(point.value, threshold)]
    treated = missing if treat == "breaching" else 0
    alarming = len(breaching) + treated >= needed
    listed = breaching if alarming else [point for point in present if point not in breaching]
    values = ", ".join(f"{point.value!r} ({_reason_time(point.timestamp)})" for point in reversed(listed))
    reason = (
        f"Threshold Crossed: {len(listed)} out of the last {len(window)} datapoints [{values}] {_was(len(listed))} "
        f"{'' if alarming else 'not '}{words} the threshold ({threshold!r})"
    )
    if missing:
        label = "[Breaching]" if treat == "breaching" else "[NonBreaching]"
        reason += f" and {_count(missing, 'missing datapoint')} {_was(missing)} treated as {label}"
    transition = "OK -> ALARM" if alarming else "ALARM -> OK"
    reason += f" (minimum {_count(needed, 'datapoint')} for {transition} transition)."
    return _Verdict(ALARM if alarming else OK, reason, data)


def _reason_data(alarm: dict[str, Any], window: list[_Datapoint], *, now: float) -> dict[str, Any]:
    """StateReasonData as CloudWatch writes it."""
    data: dict[str, Any] = {"version": "1.0", "queryDate": format_timestamp(now)}
    if window:
        data["startDate"] = format_timestamp(window[0].timestamp)
    if alarm.get("Unit"):
        data["unit"] = alarm["Unit"]
    if alarm.get("Statistic"):
        data["statistic"] = alarm["Statistic"]
    data["period"] = int(alarm["Period"])
    data["recentDatapoints"] = [point.value for point in window if point.value is not None]
    data["threshold"] = float(alarm["Threshold"])
    data["evaluatedDatapoints"] = [
        {"timestamp": format_timestamp(point.timestamp)}
        if point.value is None
        else {"timestamp": format_timestamp(point.timestamp), "sampleCount": 1.0, "value": point.value}
        for point in reversed(window)
    ]
    return data


def notification_message(
    alarm: dict[str, Any], *, old_state: str, new_state: str, reason: str, now: float, region_name: str
) -> str:
    """The JSON CloudWatch publishes to an alarm's SNS actions, keys in CloudWatch's order."""
    arn = str(alarm["AlarmArn"])
    trigger: dict[str, Any] = {"MetricName": alarm.get("MetricName"), "Namespace": alarm.get("Namespace")}
    if alarm.get("ExtendedStatistic"):
        trigger.update(StatisticType="ExtendedStatistic", ExtendedStatistic=alarm["ExtendedStatistic"])
    else:
        trigger.update(StatisticType="Statistic", Statistic=str(alarm.get("Statistic") or "").upper())
    periods = int(alarm.get("EvaluationPeriods") or 1)
    trigger.update(
        Unit=alarm.get("Unit"),
        Dimensions=[{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions") or []],
        Period=int(alarm["Period"]),
        EvaluationPeriods=periods,
        DatapointsToAlarm=int(alarm.get("DatapointsToAlarm") or periods),
        ComparisonOperator=alarm.get("ComparisonOperator"),
        Threshold=float(alarm["Threshold"]),
        TreatMissingData=alarm.get("TreatMissingData") or "",
        EvaluateLowSampleCountPercentile=alarm.get("EvaluateLowSampleCountPercentile") or "",
    )
    updated = alarm.get("AlarmConfigurationUpdatedTimestamp")
    body = {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": arn.split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": format_timestamp(updated.timestamp() if updated else now),
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": format_timestamp(now),
        "Region": region_name,
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.get("OKActions") or []),
        "AlarmActions": list(alarm.get("AlarmActions") or []),
        "InsufficientDataActions": list(alarm.get("InsufficientDataActions") or []),
        "Trigger": trigger,
    }
    return _json(body)


def notification_subject(state: str, alarm_name: str, region_name: str) -> str:
    """`ALARM: "name" in US East (N. Virginia)`, cut to what SNS accepts."""
    return f'{state}: "{alarm_name}" in {region_name}'[:_SUBJECT_MAX]


def region_display_name(region: str) -> str:
    """The region's long name as alarm notifications spell it ("US East (N. Virginia)", "EU (Ireland)").

    botocore's endpoint data has the current names; CloudWatch notifications still say "EU (...)" where the
    console now says "Europe (...)".
    """
    try:
        endpoints = botocore.loaders.create_loader().load_data("endpoints")
    except Exception:  # a botocore without endpoint data: the code is better than nothing
        return region
    for partition in endpoints.get("partitions", []):
        description = partition.get("regions", {}).get(region, {}).get("description")
        if description:
            return str(description).replace("Europe (", "EU (", 1)
    return region


def format_timestamp(epoch_s: float) -> str:
    """2025-03-07T08:30:31.593+0000, CloudWatch's timestamp format."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _reason_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%d/%m/%y %H:%M:%S")


def _fit(reason_data: dict[str, Any]) -> str:
    """StateReasonData within SetAlarmState's limit: the per-datapoint detail goes first, then the values."""
    text = _json(reason_data)
    for key in ("evaluatedDatapoints", "recentDatapoints"):
        if len(text) <= _REASON_DATA_MAX:
            break
        text = _json({k: v for k, v in json.loads(text).items() if k != key})
    return text


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"
