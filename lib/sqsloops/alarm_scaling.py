"""Scaling on alarm notifications: an ALARM wakes loops up to the backlog, an ALARM->OK lets surplus loops go.

An alarm is only a wake-up call: the count always comes from the queue's live depth and its registration,
so a late, duplicated or out-of-order notification converges to the same place as a timely one.

How many loops is decided in sqsloops.scaling (`on_alarm`, `on_ok`). Scale-down counts in-flight messages as backlog:
a loop holding a big batch is not stopped while the batch is in flight. Once the queue is idle, the restart reconcile
takes the rest down to min_loops, because no further OK arrives after the lowest alarm's.

The queue's registration is read by its key (one GetItem, never a Scan of every registration): a depth alarm's name
(`{stack}-{queue name}-{queue_hash(url)}-depth-{level}`, see sqsloops.ops.alarms) and description carry the URL it
was registered under, the dimensions and AlarmArn the queue's name, account and region.

One bad record never hides the others: a record that is not a queue alarm, or whose scaling fails, is logged and
reported (bad_record / action "error"), and the rest of the SNS event is still acted on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqsloops import scaling
from sqsloops.errors import AlarmNotificationError, ConfigError, NotRegisteredError
from sqsloops.fleet import Change, Fleet
from sqsloops.log import logger
from sqsloops.queues import Depth, QueueRef, queue_depth
from sqsloops.registry import QueueConfig, Registry
from sqsloops.scaling import Target

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
_STATES = frozenset({ALARM, OK, INSUFFICIENT_DATA})
_NAME_SUFFIX = re.compile(r"-([0-9a-f]{8})-depth-\d+$")  # the queue hash and the level that end a depth alarm's name
_DESCRIBED_URL = re.compile(r" in (\S+)$")  # the registered URL that ends a depth alarm's description
_ERROR_TEXT_MAX_CHARS = 500


def queue_hash(queue_url: str) -> str:
    """8 hex characters that tell apart queues of the same name (other accounts or regions), in every alarm name."""
    return hashlib.sha256(queue_url.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class AlarmNotification:
    """What a CloudWatch alarm notification says about one queue's depth alarm."""

    alarm_name: str
    new_state: str
    old_state: str
    queue_name: str
    account_id: str
    region: str | None  # a region code from AlarmArn; the message's own "Region" is a display name
    description: str = ""  # AlarmDescription: ours ends with the URL the queue was registered under

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
        queue_name = _dimension(dimensions, "QueueName")
        if not queue_name:
            raise AlarmNotificationError(f"alarm {str(body['AlarmName'])[:200]!r} has no QueueName dimension")
        arn_parts = str(body.get("AlarmArn", "")).split(":")
        description = body.get("AlarmDescription")
        return cls(
            alarm_name=str(body["AlarmName"])[:300],
            new_state=new_state,
            old_state=old_state,
            queue_name=queue_name,
            account_id=str(body["AWSAccountId"]),
            region=arn_parts[3] if len(arn_parts) > 3 and arn_parts[3] else None,
            description=description[:2048] if isinstance(description, str) else "",
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
            except Exception as exc:  # a shape nobody foresaw: this record is bad, the next ones still count
                results.append(AlarmNotificationError(f"unreadable record: {type(exc).__name__}: {str(exc)[:200]}"))
        return results

    def queue_urls(self, *, endpoint_url: str | None = None) -> list[str]:
        """The URLs the watched queue may be registered under, most likely first: each is a registration's key.

        The URL in our alarms' description, then the spelling this SQS endpoint gives, then AWS's own; those whose
        queue_hash is the one in the alarm's name come first (it was computed from the registered URL).
        """
        account, name = self.account_id, self.queue_name
        spellings: list[str] = []
        described = _DESCRIBED_URL.search(self.description)
        if described:
            spellings.append(described.group(1))
        if endpoint_url:
            spellings.append(f"{endpoint_url.rstrip('/')}/{account}/{name}")
        if self.region:
            domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
            spellings += [
                f"https://sqs.{self.region}.{domain}/{account}/{name}",
                f"https://{self.region}.queue.amazonaws.com/{account}/{name}",
            ]
            if self.region == "us-east-1":
                spellings.append(f"https://queue.amazonaws.com/{account}/{name}")
        urls: list[str] = []
        for url in spellings:
            try:
                ref = QueueRef.parse(url)
            except ConfigError:
                continue
            if url not in urls and self.matches(ref):
                urls.append(url)
        named = _NAME_SUFFIX.search(self.alarm_name)
        hashed = named.group(1) if named else None
        return sorted(urls, key=lambda url: queue_hash(url) != hashed)

    def matches(self, ref: QueueRef) -> bool:
        """True when the registered queue `ref` is the queue this alarm watches."""
        same_region = ref.region is None or self.region is None or ref.region == self.region
        return ref.name == self.queue_name and ref.account_id == self.account_id and same_region


def _dimension(dimensions: Any, name: str) -> str:
    """The value of one dimension of Trigger.Dimensions (a list of objects); AlarmNotificationError if not a list."""
    if dimensions is None:
        return ""
    if not isinstance(dimensions, list):
        raise AlarmNotificationError(f"Trigger.Dimensions must be a list, got {type(dimensions).__name__}")
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
    bad_record: bool = False  # the SNS record is not a queue alarm's notification

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"alarm_name": self.alarm_name, "action": self.action, "reason": self.reason}
        if self.bad_record:
            result["bad_record"] = True
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
        """The registration of the alarm's queue, read by its key: a GetItem per likely spelling of its URL (one,
        for our own alarms), never a Scan. UnreadableRegistrationError if its item cannot be parsed."""
        for url in notification.queue_urls(endpoint_url=self._sqs.meta.endpoint_url):
            try:
                return self._registry.get(url)
            except NotRegisteredError:
                continue
        return None

    def scale_up(self, notification: AlarmNotification) -> ScaleResult:
        """On ALARM: add loops up to the backlog's desired count (never beyond max_loops, never down).

        Several alarms crossing in one period run this at once: they race for the lowest free slots below
        max_loops, so never overshoot max_loops (sqsloops.fleet).
        """
        if notification.new_state != ALARM:
            return self._ignore(notification, f"{notification.new_state} is not an ALARM transition")
        config = self.find(notification)
        if config is None:
            return self._ignore(notification, "queue is not registered")
        return self._scale(notification, config, scaling.on_alarm)

    def scale_down(self, notification: AlarmNotification) -> ScaleResult:
        """On ALARM->OK only: stop loops the backlog (visible + in flight) no longer needs, never below min_loops."""
        if (notification.old_state, notification.new_state) != (ALARM, OK):
            return self._ignore(
                notification, f"{notification.old_state}->{notification.new_state} is not an ALARM->OK transition"
            )
        config = self.find(notification)
        if config is None:
            return self._ignore(notification, "queue is not registered")
        return self._scale(notification, config, scaling.on_ok)

    def on_event(self, event: dict[str, Any], *, up: bool) -> list[ScaleResult]:
        """Handle every record of an SNS event, each in its own guard: never raises.

        A record that is not a queue alarm's is logged and reported as a bad record; one whose scaling fails
        (throttling, an unreadable registration) is logged and reported with action "error". The others are acted
        on all the same; the restart reconcile, every minute, moves the failed queues later.
        """
        results: list[ScaleResult] = []
        for parsed in AlarmNotification.from_sns_event(event):
            if isinstance(parsed, AlarmNotificationError):
                logger.warning("not an alarm notification; ignored", extra={"error": str(parsed)})
                results.append(ScaleResult(alarm_name="", action="ignored", reason=str(parsed), bad_record=True))
                continue
            try:
                results.append(self.scale_up(parsed) if up else self.scale_down(parsed))
            except Exception as exc:  # this queue fails; the other records of the event still count
                error = f"{type(exc).__name__}: {exc}"[:_ERROR_TEXT_MAX_CHARS]
                logger.exception(
                    "scaling failed for an alarm notification",
                    extra={"alarm_name": parsed.alarm_name, "queue_name": parsed.queue_name, "error": error},
                )
                results.append(ScaleResult(alarm_name=parsed.alarm_name, action="error", reason=error))
        return results

    def _scale(
        self, notification: AlarmNotification, config: QueueConfig, decide: Callable[[QueueConfig, Depth], Target]
    ) -> ScaleResult:
        """Move toward what `decide` makes of the live depth (an inactive queue: to zero, without reading it)."""
        if scaling.active(config):
            target = decide(config, queue_depth(self._sqs, config.queue_url))
        else:
            target = scaling.stop_all()
        # A loop stopped is retired for the registration's visibility timeout (sqsloops.fleet).
        change = self._fleet.move(
            config.queue_url, target, max_loops=config.max_loops, visibility_timeout_s=config.visibility_timeout_s
        )
        return self._done(notification, config, target.desired, change)

    def _ignore(self, notification: AlarmNotification, reason: str) -> ScaleResult:
        logger.info(
            "alarm notification ignored",
            extra={"alarm_name": notification.alarm_name, "queue_name": notification.queue_name, "reason": reason},
        )
        return ScaleResult(alarm_name=notification.alarm_name, action="ignored", reason=reason)

    def _done(self, notification: AlarmNotification, config: QueueConfig, desired: int, change: Change) -> ScaleResult:
        if not config.enabled:
            reason = "queue is disabled"
        elif config.broken is not None:
            reason = "registration is broken"
        else:
            reason = f"{notification.old_state}->{notification.new_state}"
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
