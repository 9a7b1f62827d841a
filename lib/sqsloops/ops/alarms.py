"""A registration's CloudWatch alarms: staggered queue-depth thresholds whose transitions drive scaling.

Each alarm watches AWS/SQS ApproximateNumberOfMessagesVisible of one queue and stands for a loop count `level`:
it is in ALARM while the backlog calls for at least `level` loops, i.e. visible > (level - 1) * backlog_per_loop
(the exact point where QueueConfig.desired_loops reaches `level`). ALARM publishes to the scale-up topic, OK to the
scale-down topic; the functions then read the live depth, so an alarm is a wake-up call, never the count itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqsloops import defaults
from sqsloops.alarm_scaling import queue_hash
from sqsloops.errors import ConfigError
from sqsloops.log import logger
from sqsloops.queues import QueueRef
from sqsloops.registry import QueueConfig

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

NAMESPACE = "AWS/SQS"
METRIC = "ApproximateNumberOfMessagesVisible"
STATISTIC = "Maximum"  # the peak in the period: a short burst still wakes a loop up
COMPARISON = "GreaterThanThreshold"
TAG_QUEUE_URL = "sqsloops:queue_url"
_DELETE_BATCH = 100  # DeleteAlarms takes at most 100 names


@dataclass(frozen=True)
class AlarmStep:
    """One alarm: in ALARM while visible > threshold, i.e. while at least `level` loops are wanted."""

    level: int
    threshold: int


def alarm_steps(config: QueueConfig, *, max_steps: int = defaults.ALARM_STEPS) -> list[AlarmStep]:
    """The staggered thresholds of a registration: at most max_steps levels in (min_loops, max_loops].

    The lowest level is always min_loops + 1 (with min_loops == 0: any visible message starts the first loop) and
    the highest is max_loops (so alarms alone can reach full scale); the levels between are spread geometrically,
    because the first few loops matter most. A disabled queue, or one with min_loops == max_loops, needs none.
    """
    low, high = config.min_loops + 1, config.max_loops
    if not config.enabled or high < low or max_steps < 1:
        return []
    if high - low + 1 <= max_steps:
        levels = list(range(low, high + 1))
    elif max_steps == 1:
        levels = [low]
    else:
        ratio = high / low
        levels = sorted({round(low * ratio ** (i / (max_steps - 1))) for i in range(max_steps)})
    return [AlarmStep(level=n, threshold=(n - 1) * config.backlog_per_loop) for n in levels]


class Alarms:
    """Creates, updates and deletes the depth alarms of registered queues."""

    def __init__(
        self,
        *,
        cloudwatch: CloudWatchClient,
        stack_name: str,
        scale_up_topic_arn: str,
        scale_down_topic_arn: str,
        period_s: int = defaults.ALARM_PERIOD_S,
    ) -> None:
        self._cw = cloudwatch
        self._stack = stack_name
        self._up = scale_up_topic_arn
        self._down = scale_down_topic_arn
        self._period_s = int(period_s)

    def prefix(self, queue_url: str) -> str:
        """Every alarm of this queue, and only those, has a name that starts so and ends with its level."""
        ref = QueueRef.parse(queue_url)
        return f"{self._stack}-{ref.name}-{queue_hash(queue_url)}-depth-"

    def name(self, queue_url: str, level: int) -> str:
        return f"{self.prefix(queue_url)}{level}"

    def put(self, config: QueueConfig) -> list[str]:
        """Make the queue's alarms match its registration; returns their names, lowest level first.

        Alarms already as wanted are left alone: rewriting one would cost a PutMetricAlarm call, and moto (unlike
        AWS) resets a rewritten alarm's state. Alarms of levels no longer wanted are deleted.
        """
        if not self._up or not self._down:
            raise ConfigError(
                "the scale-up and scale-down topic ARNs are needed to put alarms (is the stack deployed?)"
            )
        existing = {alarm["AlarmName"]: alarm for alarm in self._describe(config.queue_url)}
        wanted: list[str] = []
        for step in alarm_steps(config):
            spec = self._spec(config.queue_url, step)
            name = spec["AlarmName"]
            wanted.append(name)
            if name in existing and alarm_matches(existing[name], spec):
                continue
            self._cw.put_metric_alarm(
                **spec,
                Tags=[
                    {"Key": TAG_QUEUE_URL, "Value": config.queue_url},
                    {"Key": "sqsloops:stack", "Value": self._stack},
                ],
            )
        obsolete = sorted(set(existing) - set(wanted))
        self._delete_names(obsolete)
        logger.info(
            "alarms put",
            extra={"queue_url": config.queue_url, "alarms": wanted, "deleted": obsolete},
        )
        return wanted

    def delete(self, queue_url: str) -> list[str]:
        """Delete every alarm of the queue; returns the names deleted."""
        names = self.names(queue_url)
        self._delete_names(names)
        if names:
            logger.info("alarms deleted", extra={"queue_url": queue_url, "alarms": names})
        return names

    def names(self, queue_url: str) -> list[str]:
        """The queue's alarm names, lowest level first."""
        return [alarm["AlarmName"] for alarm in self._describe(queue_url)]

    def _describe(self, queue_url: str) -> list[dict[str, Any]]:
        prefix = self.prefix(queue_url)
        paginator = self._cw.get_paginator("describe_alarms")
        alarms = [
            dict(alarm)
            for page in paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"])
            for alarm in page.get("MetricAlarms", [])
            if alarm["AlarmName"][len(prefix) :].isdigit()  # not another queue whose name extends this one's
        ]
        return sorted(alarms, key=lambda alarm: int(alarm["AlarmName"][len(prefix) :]))

    def _spec(self, queue_url: str, step: AlarmStep) -> dict[str, Any]:
        ref = QueueRef.parse(queue_url)
        return {
            "AlarmName": self.name(queue_url, step.level),
            "AlarmDescription": (
                f"sqsloops: {step.level} loop(s) wanted when more than {step.threshold} messages are visible "
                f"in {queue_url}"
            ),
            "ActionsEnabled": True,
            "AlarmActions": [self._up],
            "OKActions": [self._down],
            "Namespace": NAMESPACE,
            "MetricName": METRIC,
            "Dimensions": [{"Name": "QueueName", "Value": ref.name}],
            "Statistic": STATISTIC,
            "Period": self._period_s,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": float(step.threshold),
            "ComparisonOperator": COMPARISON,
            "TreatMissingData": "notBreaching",
        }

    def _delete_names(self, names: Iterable[str]) -> None:
        pending = list(names)
        for start in range(0, len(pending), _DELETE_BATCH):
            batch = pending[start : start + _DELETE_BATCH]
            try:
                self._cw.delete_alarms(AlarmNames=batch)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFound":
                    raise
                # AWS deletes nothing when one name is gone already (a concurrent delete): retry the rest once.
                remaining = {a["AlarmName"] for a in self._cw.describe_alarms(AlarmNames=batch).get("MetricAlarms", [])}
                if remaining:
                    self._cw.delete_alarms(AlarmNames=sorted(remaining))


_COMPARED = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
)


def alarm_matches(existing: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """True when an existing alarm (DescribeAlarms) already has every setting a PutMetricAlarm of `spec` would write:
    what put would leave unset must be unset too."""
    for key in _COMPARED:
        have, want = existing.get(key), spec.get(key)
        if key == "Threshold":
            have, want = float(have or 0), float(want or 0)
        if have != want:
            return False
    return not existing.get("InsufficientDataActions")
