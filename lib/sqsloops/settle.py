"""Settling a dispatched batch: delete what succeeded, hide what failed for a while, move what is dead to the DLQ.

- Successes: DeleteMessageBatch.
- Failures: ChangeMessageVisibilityBatch, for the failure's own `retry_in_s` when it has one (the job layer's retry
  policy), else for the queue's backoff; after the queue's maxReceiveCount SQS moves the message to its DLQ.
- Dead failures: SendMessage of the same body and message attributes to the DLQ the queue's RedrivePolicy names,
  then DeleteMessage; send first, so a message is never in neither queue. A queue without a DLQ retries them instead.

Nothing is lost and nothing is raised: a settlement call that fails is logged with each message's id and why, and a
message that was not deleted, hidden or moved comes back when its visibility timeout ends.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqsloops import defaults
from sqsloops.backoff import visibility_backoff_s
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Failure, Outcome
from sqsloops.errors import describe
from sqsloops.log import logger
from sqsloops.queues import QueueRef, queue_url_of, redrive_policy
from sqsloops.transient import call_aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageRequestTypeDef,
    )

    from sqsloops.registry import QueueConfig

NO_OUTCOME = "the handler reported no outcome for it"


@dataclass(frozen=True)
class Settled:
    """What settling a batch did: `processed` messages deleted, `failed` ones retried later or moved to the DLQ."""

    processed: int
    failed: int


@dataclass(frozen=True)
class _DeadLetterQueue:
    url: str | None
    why_none: str = ""


class Settler:
    """Settles the batches received from one queue; looks its DLQ up once, when a message first dies."""

    def __init__(
        self, *, sqs: SQSClient, queue_url: str, clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._fifo = QueueRef.parse(queue_url).name.endswith(".fifo")
        self._clock = clock
        self._rng = rng
        self._dead_letter_queue: _DeadLetterQueue | None = None  # None: not looked up yet

    def settle(self, config: QueueConfig, messages: Sequence[MessageTypeDef], outcome: Outcome) -> Settled:
        """Settle every message of the batch; one the outcome does not name counts as failed."""
        failures = {failure.message_id: failure for failure in outcome.failed}
        succeeded = set(outcome.succeeded) - failures.keys()
        done: list[MessageTypeDef] = []
        failed: list[tuple[MessageTypeDef, Failure]] = []
        for message in messages:
            message_id = message.get("MessageId", "")
            if message_id in succeeded:
                done.append(message)
            else:
                failed.append((message, failures.get(message_id) or Failure(message_id, NO_OUTCOME)))
        self._delete(done, consequence="it will be delivered again")
        retry = [(message, failure) for message, failure in failed if not failure.dead]
        retry += self._move_to_dead_letter_queue([(message, failure) for message, failure in failed if failure.dead])
        self._retry_later(config, retry)
        return Settled(processed=len(done), failed=len(failed))

    # -- successes ---------------------------------------------------------------------------------------------

    def _delete(self, messages: Sequence[MessageTypeDef], *, consequence: str) -> None:
        if not messages:
            return
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m.get("ReceiptHandle", "")} for i, m in enumerate(messages)
        ]
        self._batch_call(
            "DeleteMessageBatch",
            lambda: self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries),
            messages,
            consequence=consequence,
        )

    # -- failures ----------------------------------------------------------------------------------------------

    def _retry_later(self, config: QueueConfig, failed: Sequence[tuple[MessageTypeDef, Failure]]) -> None:
        if not failed:
            return
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = []
        for i, (message, failure) in enumerate(failed):
            receive_count = _receive_count(message)
            if failure.retry_in_s is not None:
                delay_s = min(defaults.MAX_VISIBILITY_TIMEOUT_S, round(failure.retry_in_s))
            else:
                delay_s = visibility_backoff_s(
                    receive_count, base_s=config.backoff_base_s, max_s=config.backoff_max_s, rng=self._rng
                )
            logger.warning(
                "message failed; it will be retried after a backoff (or go to the dead-letter queue)",
                extra={
                    "message_id": failure.message_id,
                    "reason": failure.reason,
                    "receive_count": receive_count,
                    "retry_in_s": delay_s,
                },
            )
            entries.append(
                {"Id": str(i), "ReceiptHandle": message.get("ReceiptHandle", ""), "VisibilityTimeout": delay_s}
            )
        self._batch_call(
            "ChangeMessageVisibilityBatch",
            lambda: self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries),
            [message for message, _ in failed],
            consequence="it reappears after its visibility timeout",
        )

    # -- dead failures -----------------------------------------------------------------------------------------

    def _move_to_dead_letter_queue(
        self, dead: Sequence[tuple[MessageTypeDef, Failure]]
    ) -> list[tuple[MessageTypeDef, Failure]]:
        """Copy each message to the DLQ, then delete it here; return those that could not be copied (to retry)."""
        if not dead:
            return []
        dlq = self._lookup_dead_letter_queue()
        if dlq.url is None:
            for _, failure in dead:
                logger.warning(
                    "message is dead but cannot be moved to a dead-letter queue; it will be retried instead",
                    extra={"message_id": failure.message_id, "reason": failure.reason, "error": dlq.why_none},
                )
            return list(dead)
        dlq_url = dlq.url
        moved: list[MessageTypeDef] = []
        unmoved: list[tuple[MessageTypeDef, Failure]] = []
        for message, failure in dead:
            request = self._dead_letter_copy(dlq_url, message)
            try:
                call_aws(functools.partial(self._sqs.send_message, **request))
            except Exception as exc:
                logger.warning(
                    "cannot send a dead message to the dead-letter queue; it will be retried instead",
                    extra={"message_id": failure.message_id, "reason": failure.reason, "error": describe(exc)},
                )
                unmoved.append((message, failure))
                continue
            logger.warning(
                "message is dead; moved to the dead-letter queue",
                extra={"message_id": failure.message_id, "reason": failure.reason, "dead_letter_queue": dlq_url},
            )
            moved.append(message)
        self._delete(moved, consequence="it is in the dead-letter queue already, and will also be delivered again")
        return unmoved

    def _lookup_dead_letter_queue(self) -> _DeadLetterQueue:
        """The queue's DLQ from its RedrivePolicy, cached; a lookup that fails is not cached (tried again later)."""
        if self._dead_letter_queue is not None:
            return self._dead_letter_queue
        try:
            policy = call_aws(lambda: redrive_policy(self._sqs, self._queue_url))
            if policy is None:
                found = _DeadLetterQueue(None, "the queue has no dead-letter queue (no RedrivePolicy)")
            else:
                arn = policy.dead_letter_arn
                found = _DeadLetterQueue(call_aws(lambda: queue_url_of(self._sqs, arn)))
        except Exception as exc:
            return _DeadLetterQueue(None, f"cannot look up the dead-letter queue: {describe(exc)}")
        self._dead_letter_queue = found
        return found

    def _dead_letter_copy(self, dlq_url: str, message: MessageTypeDef) -> SendMessageRequestTypeDef:
        """A SendMessage of the same body and message attributes (and trace header) to the DLQ."""
        request: SendMessageRequestTypeDef = {"QueueUrl": dlq_url, "MessageBody": message.get("Body", "")}
        attributes = {name: _sendable_attribute(value) for name, value in message.get("MessageAttributes", {}).items()}
        if attributes:
            request["MessageAttributes"] = attributes
        system = message.get("Attributes", {})
        if "AWSTraceHeader" in system:
            request["MessageSystemAttributes"] = {
                "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
            }
        if self._fifo:  # a FIFO queue's DLQ is FIFO: keep the group, and dedupe a repeated move of the same message
            request["MessageGroupId"] = system.get("MessageGroupId", "dead")
            request["MessageDeduplicationId"] = message.get("MessageId", "")
        return request

    # -- calls -------------------------------------------------------------------------------------------------

    def _batch_call(
        self, action: str, call: Callable[[], Any], messages: Sequence[MessageTypeDef], *, consequence: str
    ) -> None:
        """Run a batch call, retrying transient errors; log each message it failed for, never raise."""
        try:
            response = call_aws(call)
        except Exception as exc:
            for message in messages:
                _log_settlement_failure(action, message, describe(exc), consequence)
            return
        for entry in response.get("Failed", []):
            error = f"{entry.get('Code')}: {entry.get('Message', '')}".rstrip(": ")
            _log_settlement_failure(action, messages[int(entry["Id"])], error, consequence)


def _log_settlement_failure(action: str, message: MessageTypeDef, error: str, consequence: str) -> None:
    logger.warning(
        f"{action} failed for a message; {consequence}",
        extra={"message_id": message.get("MessageId"), "action": action, "error": error},
    )


def _sendable_attribute(value: MessageAttributeValueOutputTypeDef) -> MessageAttributeValueTypeDef:
    """A received message attribute as SendMessage takes it (the list fields are reserved: never sent)."""
    sendable: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
    if "StringValue" in value:
        sendable["StringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        sendable["BinaryValue"] = value["BinaryValue"]
    return sendable


def _receive_count(message: MessageTypeDef) -> int:
    try:
        return max(1, int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
    except ValueError:
        return 1
