"""Scaling on alarm notifications: an ALARM wakes loops up to the backlog, an ALARM->OK lets surplus loops go.

An alarm is only a wake-up call: the count always comes from the queue's live depth and its registration,
so a late, duplicated or out-of-order notification converges to the same place as a timely one.

Scale-down counts in-flight messages as backlog (desired from visible + in_flight): a loop holding a big batch is
not stopped while the batch is in flight. Once the queue is idle, the restart reconcile takes the rest down to
min_loops, because no further OK arrives after the lowest alarm's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqsloops.errors import AlarmNotificationError, ConfigError
from sqsloops.fleet import Change, Fleet
from sqsloops.log import logger
from sqsloops.queues import QueueRef, queue_depth
from sqsloops.registry import QueueConfig, Registry

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
_STATES = frozenset({ALARM, OK, INSUFFICIENT_DATA})


@dataclass(frozen=True)
class AlarmNotification:
    """What a CloudWatch alarm notification says about one queue's depth alarm."""

    alarm_name: str
    new_state: str
    old_state: str
    queue_name: str
    account_id: str
    region: str | None  # a region code from AlarmArn; the message's own "Region" is a display name

    @classmethod
    def from_message(cls, message: str) -> AlarmNotification:
        """Parse the JSON an alarm publishes to SNS; AlarmNotificationError if it is not a queue alarm's."""
        try:
            body = json.loads(message)
        except (TypeError, ValueError) as exc:
            raise AlarmNotificationError(f"not JSON: {str(message)[:200]!r}") from exc
        if not isinstance(body, dict):
            raise AlarmNotificationError(f"not an alarm notification: {str(message)[:200]!r}")
        missing = [key for key in ("AlarmName", "NewStateValue", "OldStateValue", "AWSAccountId") if key not in body]
        if missing:
            raise AlarmNotificationError(f"not an alarm notification, missing {', '.join(missing)}")
        new_state, old_state = str(body["NewStateValue"]), str(body["OldStateValue"])
        if new_state not in _STATES or old_state not in _STATES:
            raise AlarmNotificationError(f"unknown alarm states {old_state!r} -> {new_state!r}")
        trigger = body.get("Trigger")
        dimensions = trigger.get("Dimensions") if isinstance(trigger, dict) else None
        queue_name = _dimension(dimensions or [], "QueueName")
        if not queue_name:
            raise AlarmNotificationError(f"alarm {body['AlarmName']!r} has no QueueName dimension")
        arn_parts = str(body.get("AlarmArn", "")).split(":")
        return cls(
            alarm_name=str(body["AlarmName"]),
            new_state=new_state,
            old_state=old_state,
            queue_name=queue_name,
            account_id=str(body["AWSAccountId"]),
            region=arn_parts[3] if len(arn_parts) > 3 and arn_parts[3] else None,
        )

    @classmethod
    def from_sns_event(cls, event: dict[str, Any]) -> list[AlarmNotification | AlarmNotificationError]:
        """One result per SNS record: a bad record never hides the good ones next to it."""
        records = event.get("Records") if isinstance(event, dict) else None
        if not isinstance(records, list) or not records:
            return [AlarmNotificationError("not an SNS event: no Records")]
        results: list[AlarmNotification | AlarmNotificationError] = []
        for record in records:
            sns = record.get("Sns") if isinstance(record, dict) else None
            try:
                if not isinstance(sns, dict) or "Message" not in sns:
                    raise AlarmNotificationError("an SNS record without Sns.Message")
                results.append(cls.from_message(sns["Message"]))
            except AlarmNotificationError as exc:
                results.append(exc)
        return results

    def matches(self, ref: QueueRef) -> bool:
        """True when the registered queue `ref` is the queue this alarm watches."""
        same_region = ref.region is None or self.region is None or ref.region == self.region
        return ref.name == self.queue_name and ref.account_id == self.account_id and same_region


def _dimension(dimensions: Iterable[Any], name: str) -> str:
    for dimension in dimensions:
        if isinstance(dimension, dict):
            # Notifications spell dimension keys in lower case; the API in title case. Accept both.
            key = dimension.get("name", dimension.get("Name"))
            if key == name:
                return str(dimension.get("value", dimension.get("Value", "")))
    return ""


@dataclass(frozen=True)
class ScaleResult:
    """What one notification led to: the change made, or why nothing was done."""

    alarm_name: str
    action: str  # "scaled" or "ignored"
    reason: str
    queue_url: str | None = None
    desired: int | None = None
    change: Change | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"alarm_name": self.alarm_name, "action": self.action, "reason": self.reason}
        if self.queue_url is not None:
            result["queue_url"] = self.queue_url
        if self.desired is not None:
            result["desired"] = self.desired
        if self.change is not None:
            result.update(before=self.change.before, after=self.change.after)
            result.update(started=self.change.started, stopped=self.change.stopped)
            result.update(start_failures=self.change.start_failures, lost_races=self.change.lost_races)
            result.update(deferred=self.change.deferred)
        return result


class AlarmScaling:
    """Acts on depth-alarm notifications for registered queues."""

    def __init__(self, *, registry: Registry, sqs: SQSClient, fleet: Fleet) -> None:
        self._registry = registry
        self._sqs = sqs
        self._fleet = fleet

    def find(self, notification: AlarmNotification) -> QueueConfig | None:
        """The registration of the alarm's queue, matched on (account, name, region) against the registry.

        Matching the registry rather than calling GetQueueUrl: the registered URL is the key every token is
        stored under, and it may be spelled differently from what GetQueueUrl answers (legacy or local hosts).
        """
        for config in self._registry.all():
            try:
                ref = QueueRef.parse(config.queue_url)
            except ConfigError:  # a malformed stored URL must not hide the others
                logger.warning("registered queue URL does not parse", extra={"queue_url": config.queue_url})
                continue
            if notification.matches(ref):
                return config
        return None

    def scale_up(self, notification: AlarmNotification) -> ScaleResult:
        """On ALARM: add loops up to the backlog's desired count (never beyond max_loops, never down).

        Several alarms crossing in one period run this at once: they race for the same slots, so never overshoot.
        """
        if notification.new_state != ALARM:
            return self._ignore(notification, f"{notification.new_state} is not an ALARM transition")
        config = self.find(notification)
        if config is None:
            return self._ignore(notification, "queue is not registered")
        if not config.enabled:
            return self._done(notification, config, 0, self._converge(config, 0, up=False))
        depth = queue_depth(self._sqs, config.queue_url)
        desired = config.desired_loops(depth.visible)
        return self._done(notification, config, desired, self._converge(config, desired, up=True))

    def scale_down(self, notification: AlarmNotification) -> ScaleResult:
        """On ALARM->OK only: stop loops the backlog (visible + in flight) no longer needs, never below min_loops."""
        if (notification.old_state, notification.new_state) != (ALARM, OK):
            return self._ignore(
                notification, f"{notification.old_state}->{notification.new_state} is not an ALARM->OK transition"
            )
        config = self.find(notification)
        if config is None:
            return self._ignore(notification, "queue is not registered")
        if not config.enabled:
            return self._done(notification, config, 0, self._converge(config, 0, up=False))
        depth = queue_depth(self._sqs, config.queue_url)
        desired = config.desired_loops(depth.visible + depth.in_flight)
        return self._done(notification, config, desired, self._converge(config, desired, up=False))

    def on_event(self, event: dict[str, Any], *, up: bool) -> list[ScaleResult]:
        """Handle every record of an SNS event; unparseable records are logged and skipped, never raised."""
        results: list[ScaleResult] = []
        for parsed in AlarmNotification.from_sns_event(event):
            if isinstance(parsed, AlarmNotificationError):
                logger.warning("not an alarm notification; ignored", extra={"error": str(parsed)})
                results.append(ScaleResult(alarm_name="", action="ignored", reason=str(parsed)))
                continue
            results.append(self.scale_up(parsed) if up else self.scale_down(parsed))
        return results

    def _converge(self, config: QueueConfig, desired: int, *, up: bool) -> Change:
        """Converge in one direction only; a loop stopped is retired for the registration's visibility timeout."""
        return self._fleet.converge(
            config.queue_url,
            desired,
            allow_up=up,
            allow_down=not up,
            visibility_timeout_s=config.visibility_timeout_s,
        )

    def _ignore(self, notification: AlarmNotification, reason: str) -> ScaleResult:
        logger.info(
            "alarm notification ignored",
            extra={"alarm_name": notification.alarm_name, "queue_name": notification.queue_name, "reason": reason},
        )
        return ScaleResult(alarm_name=notification.alarm_name, action="ignored", reason=reason)

    def _done(self, notification: AlarmNotification, config: QueueConfig, desired: int, change: Change) -> ScaleResult:
        reason = "queue is disabled" if not config.enabled else f"{notification.old_state}->{notification.new_state}"
        logger.info(
            "alarm notification handled",
            extra={
                "alarm_name": notification.alarm_name,
                "queue_url": config.queue_url,
                "reason": reason,
                "desired": desired,
                "before": change.before,
                "after": change.after,
            },
        )
        return ScaleResult(
            alarm_name=notification.alarm_name,
            action="scaled",
            reason=reason,
            queue_url=config.queue_url,
            desired=desired,
            change=change,
        )
