"""Make moto's SQS cheap per message at depth, for moto 5.2.5 exactly.

moto 5.2.5 computes "now" with datetime arithmetic (`moto.core.utils.unix_time`) for every message it looks at,
twice per message and per call (`Message.visible`, `Message.delayed`); checks retention per received message
through `get_queue_attributes`, which builds every attribute of the queue and so counts all its messages three
times; builds those same attributes again for each message sent (to read ContentBasedDeduplication); and deletes
by scanning every message's receipt handles into fresh lists. At a depth of 1,000 that is quadratic work per call
(single-digit msgs/s received+deleted over HTTP). It also keeps every Message object ever created alive in
`Message.instances_tracked`, for moto's dashboard only.

The patch replaces exactly those pieces with equivalents that read `time.time()` once per call and touch each
message with plain attribute reads; what is left is one C-speed pass over the queue per call. Behaviour
(visibility timeouts, delays, retention, dead-letter moves, freezegun) is unchanged.

It is pinned: it refuses, loudly, to touch any other moto version or a changed shape of what it replaces.
"""

from __future__ import annotations

import datetime
import inspect
import threading
import time
from typing import Any

import moto
from moto.core import utils as moto_utils
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import ReceiptHandleIsInvalid

from sqsloops.errors import MotoChangedError

PINNED_MOTO_VERSION = "5.2.5"

_lock = threading.Lock()


class _Untracked(list[Any]):
    """A list that keeps nothing: moto's per-class instance tracking, switched off for SQS messages."""

    def append(self, item: Any) -> None:
        return None


# ---------------------------------------------------------------- the replacements


def unix_time(dt: datetime.datetime | None = None) -> float:
    """moto's unix_time without datetime arithmetic for "now" (time.time() follows freezegun too)."""
    if dt is None:
        return time.time()
    return float(moto_utils.unix_time(dt))


def unix_time_millis(dt: datetime.datetime | None = None) -> float:
    return unix_time(dt) * 1000.0


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """Same rule as moto's, reading one attribute instead of building (and counting) all of them."""
    retention_period_s = int(self.get_queue(queue_name).message_retention_period)
    retain_until_s = retention_period_s + message.sent_timestamp / 1000
    return bool(retain_until_s > unix_time())


def _messages(self: Any) -> list[Any]:
    """Visible and not delayed (Message.visible and not Message.delayed), with one "now" for the whole pass."""
    now_ms = unix_time_millis()
    return [m for m in self._messages if now_ms > m.visible_at and not now_ms < m.delayed_until]


def _approximate_number_of_messages(self: Any) -> int:
    now_ms = unix_time_millis()
    return sum(1 for m in self._messages if now_ms > m.visible_at and not now_ms < m.delayed_until)


def _approximate_number_of_messages_delayed(self: Any) -> int:
    now_ms = unix_time_millis()
    return sum(1 for m in self._messages if now_ms < m.delayed_until)


def _approximate_number_of_messages_not_visible(self: Any) -> int:
    now_ms = unix_time_millis()
    return sum(1 for m in self._messages if not now_ms > m.visible_at)


def _delete_message(self: Any, receipt_handle: str) -> None:
    """Same contract as moto's Queue.delete_message, in one pass without building lists per message."""
    if receipt_handle in self.deleted_messages:
        return  # already deleted: SQS accepts it again
    messages = self._messages
    index = next(
        (
            i
            for i, message in enumerate(messages)
            if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles
        ),
        None,
    )
    if index is None:
        raise ReceiptHandleIsInvalid()
    message = messages[index]
    self.pending_messages.discard(message)
    self.deleted_messages.update(message.all_receipt_handles)
    self._messages = messages[:index] + messages[index + 1 :]  # a new list, as moto does: readers keep theirs


# ---------------------------------------------------------------- pinning


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


def _problems() -> list[str]:
    version = getattr(moto, "__version__", "unknown")
    problems: list[str] = []
    if version != PINNED_MOTO_VERSION:
        problems.append(f"moto is {version}")
    return problems + _sqs_problems()


def _sqs_problems() -> list[str]:
    problems: list[str] = []
    if getattr(sqs_models, "unix_time", None) not in (moto_utils.unix_time, unix_time):
        problems.append("moto.sqs.models.unix_time is not moto.core.utils.unix_time")
    if getattr(sqs_models, "unix_time_millis", None) not in (moto_utils.unix_time_millis, unix_time_millis):
        problems.append("moto.sqs.models.unix_time_millis is not moto.core.utils.unix_time_millis")
    backend = getattr(sqs_models, "SQSBackend", None)
    retention = getattr(backend, "is_message_valid_based_on_retention_period", None)
    if _parameters(retention) != ["self", "queue_name", "message"]:
        problems.append("SQSBackend.is_message_valid_based_on_retention_period changed or is gone")
    queue = getattr(sqs_models, "Queue", None)
    if "MessageRetentionPeriod" not in getattr(queue, "BASE_ATTRIBUTES", ()):
        problems.append("Queue.BASE_ATTRIBUTES has no MessageRetentionPeriod")
    for name in _PROPERTIES:
        if not isinstance(getattr(queue, name, None), property):
            problems.append(f"Queue.{name} is no longer a property")
    if _parameters(getattr(queue, "delete_message", None)) != ["self", "receipt_handle"]:
        problems.append("Queue.delete_message changed or is gone")
    message_class = getattr(sqs_models, "Message", None)
    if not isinstance(getattr(message_class, "instances_tracked", None), list):
        problems.append("Message.instances_tracked is gone")
    else:
        tracked = message_class.instances_tracked  # type: ignore[union-attr]
        message = message_class("probe", "probe")  # type: ignore[misc]
        if message in tracked:
            tracked.remove(message)
        for attribute in ("visible_at", "delayed_until", "receipt_handle", "_old_receipt_handles", "sent_timestamp"):
            if not hasattr(message, attribute):
                problems.append(f"Message has no {attribute}")
    return problems


def check_target() -> None:
    """Raise MotoChangedError unless moto is exactly the version and shape this patch replaces."""
    problems = _problems()
    if problems:
        raise MotoChangedError(
            f"sqsloops.local.sqs_speed patches moto {PINNED_MOTO_VERSION} only and found: {'; '.join(problems)}. "
            f"Pin moto=={PINNED_MOTO_VERSION} (pyproject.toml [local] extra) or port the patch to the new version."
        )


_PROPERTIES = {
    "messages": _messages,
    "approximate_number_of_messages": _approximate_number_of_messages,
    "approximate_number_of_messages_delayed": _approximate_number_of_messages_delayed,
    "approximate_number_of_messages_not_visible": _approximate_number_of_messages_not_visible,
}


def apply() -> None:
    """Apply the patch once per process (idempotent, thread-safe); MotoChangedError if moto is not the pinned one."""
    with _lock:
        if is_applied():
            return
        check_target()
        sqs_models.unix_time = unix_time  # type: ignore[attr-defined]
        sqs_models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]
        sqs_models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
            is_message_valid_based_on_retention_period
        )
        for name, getter in _PROPERTIES.items():
            setattr(sqs_models.Queue, name, property(getter))
        sqs_models.Queue.delete_message = _delete_message  # type: ignore[method-assign]
        sqs_models.Message.instances_tracked = _Untracked()  # type: ignore[attr-defined]


def is_applied() -> bool:
    """True when moto's SQS in this process runs the fast versions."""
    queue = sqs_models.Queue
    return (
        sqs_models.unix_time is unix_time  # type: ignore[attr-defined]
        and sqs_models.unix_time_millis is unix_time_millis  # type: ignore[attr-defined]
        and sqs_models.SQSBackend.is_message_valid_based_on_retention_period
        is is_message_valid_based_on_retention_period
        and all(getattr(queue.__dict__.get(name), "fget", None) is getter for name, getter in _PROPERTIES.items())
        and queue.delete_message is _delete_message
    )
