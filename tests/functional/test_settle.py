"""Settling a dispatched batch against moto: what is deleted, how long a failure stays hidden, what reaches the DLQ.

Each test receives real messages, settles an Outcome, then reads the queues back. How long a message stays hidden
is read by moving time with freezegun (moto's SQS reads the wall clock) and receiving just before and just after
the delay; every receive is a short poll, never a long poll under a frozen clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from sqsloops.clock import ManualClock
from sqsloops.dispatch import Failure, Outcome
from sqsloops.registry import QueueConfig
from sqsloops.settle import NO_OUTCOME, Settler
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import HighestBackoff, LogRecords, capture_logs, inject_errors

ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "order"},
    "n": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    "tenant": {"DataType": "String.custom", "StringValue": "acme"},
}


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time() as factory:
        yield factory


@pytest.fixture
def logs() -> Iterator[LogRecords]:
    with capture_logs() as records:
        yield records


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("work", max_receive_count=5)


def settler(aws: Clients, queue_url: str) -> Settler:
    return Settler(sqs=aws.sqs, queue_url=queue_url, clock=ManualClock(), rng=HighestBackoff())


def config(queue_url: str, **options: Any) -> QueueConfig:
    return QueueConfig(queue_url=queue_url, handler="python:sqsloops.examples:noop", **options)


def send_and_receive(aws: Clients, queue_url: str, *bodies: str, **options: Any) -> list[Any]:
    """Send these bodies, then receive them all as the loop does (every attribute, hidden for 30 s)."""
    for body in bodies:
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=body, **options)
    messages = aws.sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=30,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    assert sorted(m["Body"] for m in messages) == sorted(bodies)
    return sorted(messages, key=lambda m: bodies.index(m["Body"]))


def receive(aws: Clients, queue_url: str) -> list[Any]:
    """Every message visible now (short polls), with its attributes; they are hidden again by this."""
    found: list[Any] = []
    while batch := aws.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        found += batch
    return found


def bodies(aws: Clients, queue_url: str) -> list[str]:
    return sorted(m["Body"] for m in receive(aws, queue_url))


def depth(aws: Clients, queue_url: str) -> int:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def hidden_for_s(aws: Clients, queue_url: str, frozen: FrozenDateTimeFactory, seconds: float) -> bool:
    """True when the queue's messages stay hidden until just before `seconds` from now, and reappear just after."""
    frozen.tick(seconds - 0.5)
    before = receive(aws, queue_url)
    frozen.tick(1.0)
    return before == [] and receive(aws, queue_url) != []


def test_successes_are_deleted_and_failures_hidden_for_the_queues_backoff(
    aws: Clients, queue: MadeQueue, frozen: FrozenDateTimeFactory, logs: LogRecords
) -> None:
    # Given a batch of two, one succeeded and one failed, on a queue whose first backoff is 60 s (jitter at its top)
    ok, failed = send_and_receive(aws, queue.url, "ok", "failed")
    outcome = Outcome(succeeded=(ok["MessageId"],), failed=(Failure(failed["MessageId"], "RuntimeError: no"),))

    # When the batch is settled
    settled = settler(aws, queue.url).settle(
        config(queue.url, backoff_base_s=60, backoff_max_s=600), [ok, failed], outcome
    )

    # Then the success is gone, the failure is still there, hidden for 60 s, and why it failed is logged
    assert (settled.processed, settled.failed) == (1, 1)
    assert depth(aws, queue.url) == 1
    assert hidden_for_s(aws, queue.url, frozen, 60)
    assert bodies(aws, queue.dlq_url) == []
    assert (failed["MessageId"], "RuntimeError: no") in zip(
        logs.with_field("message_id"), logs.with_field("reason"), strict=False
    )


def test_a_failures_own_retry_delay_wins_over_the_queues_backoff(
    aws: Clients, queue: MadeQueue, frozen: FrozenDateTimeFactory
) -> None:
    # Given a failure that asks to be retried in 40 s, on a queue whose backoff would hide it for 600 s
    (message,) = send_and_receive(aws, queue.url, "later")
    outcome = Outcome(failed=(Failure(message["MessageId"], "Retry", retry_in_s=40),))

    # When it is settled
    settler(aws, queue.url).settle(config(queue.url, backoff_base_s=600, backoff_max_s=600), [message], outcome)

    # Then it is hidden for exactly 40 s
    assert hidden_for_s(aws, queue.url, frozen, 40)


def test_a_retry_delay_of_zero_makes_the_message_visible_at_once(aws: Clients, queue: MadeQueue) -> None:
    (message,) = send_and_receive(aws, queue.url, "now")

    settler(aws, queue.url).settle(
        config(queue.url, backoff_base_s=600, backoff_max_s=600),
        [message],
        Outcome(failed=(Failure(message["MessageId"], "Retry", retry_in_s=0),)),
    )

    assert bodies(aws, queue.url) == ["now"]


def test_a_message_the_outcome_does_not_name_is_retried(
    aws: Clients, queue: MadeQueue, frozen: FrozenDateTimeFactory, logs: LogRecords
) -> None:
    # Given a handler that reported nothing about a message
    (message,) = send_and_receive(aws, queue.url, "forgotten")

    # When the batch is settled
    settled = settler(aws, queue.url).settle(
        config(queue.url, backoff_base_s=20, backoff_max_s=20), [message], Outcome()
    )

    # Then it counts as failed and is retried after the backoff, never deleted
    assert settled.failed == 1
    assert hidden_for_s(aws, queue.url, frozen, 20)
    assert NO_OUTCOME in logs.with_field("reason")


def test_a_dead_failure_lands_in_the_dlq_with_its_body_and_attributes_and_leaves_the_queue(
    aws: Clients, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a received message with attributes of every data type, that its handler declares dead on first receive
    (message,) = send_and_receive(aws, queue.url, '{"job": "charge"}', MessageAttributes=ATTRIBUTES)
    outcome = Outcome(failed=(Failure(message["MessageId"], "ValueError: not retryable", dead=True),))

    # When it is settled
    settled = settler(aws, queue.url).settle(config(queue.url), [message], outcome)

    # Then it is gone from the queue and in the DLQ now (not after maxReceiveCount), body and attributes intact
    assert settled.failed == 1
    assert depth(aws, queue.url) == 0
    (dead,) = receive(aws, queue.dlq_url)
    assert dead["Body"] == '{"job": "charge"}'
    assert dead["MessageAttributes"] == message["MessageAttributes"]
    assert {
        name: value.get("StringValue", value.get("BinaryValue")) for name, value in dead["MessageAttributes"].items()
    } == {
        "kind": "order",
        "n": "3",
        "blob": b"\x00\x01\xff",
        "tenant": "acme",
    }
    assert dead["MD5OfMessageAttributes"] == message["MD5OfMessageAttributes"]
    # And the move is logged with the message id and why it died
    assert any(
        line["message_id"] == message["MessageId"] and line["reason"] == "ValueError: not retryable"
        for line in logs.lines
        if line["message"] == "message is dead; moved to the dead-letter queue"
    )


def test_a_dead_failure_on_a_queue_without_a_dlq_is_retried_and_says_why(
    aws: Clients, frozen: FrozenDateTimeFactory, logs: LogRecords
) -> None:
    # Given a queue with no RedrivePolicy, and a message declared dead that asks for a retry in 30 s
    url = aws.sqs.create_queue(QueueName="no-dlq")["QueueUrl"]
    (message,) = send_and_receive(aws, url, "dead")
    outcome = Outcome(failed=(Failure(message["MessageId"], "dead on arrival", retry_in_s=30, dead=True),))

    # When it is settled
    settler(aws, url).settle(config(url), [message], outcome)

    # Then it is kept in its queue and retried as any failure would be, and the log says why it was not moved
    assert hidden_for_s(aws, url, frozen, 30)
    assert any(
        line.get("message_id") == message["MessageId"] and "no dead-letter queue" in line.get("error", "")
        for line in logs.lines
    )


def test_a_dead_message_that_cannot_be_sent_to_the_dlq_is_retried_not_lost(
    aws: Clients, queue: MadeQueue, frozen: FrozenDateTimeFactory, logs: LogRecords
) -> None:
    # Given SQS refusing the copy to the DLQ
    (message,) = send_and_receive(aws, queue.url, "dead")
    inject_errors(aws.sqs, "sqs.SendMessage", times=1, code="KmsAccessDenied", status=400)
    outcome = Outcome(failed=(Failure(message["MessageId"], "dead", dead=True),))

    # When it is settled (with the queue's backoff of 20 s)
    settler(aws, queue.url).settle(config(queue.url, backoff_base_s=20, backoff_max_s=20), [message], outcome)

    # Then it was not deleted: it waits in its queue for a retry, the DLQ has nothing, and the log says why
    assert bodies(aws, queue.dlq_url) == []
    assert hidden_for_s(aws, queue.url, frozen, 20)
    assert any(
        line.get("message_id") == message["MessageId"] and "KmsAccessDenied" in line.get("error", "")
        for line in logs.lines
    )


def test_a_dead_message_of_a_fifo_queue_keeps_its_group_in_the_fifo_dlq(aws: Clients) -> None:
    # Given a FIFO queue with a FIFO DLQ, and a message of group "customer-7"
    dlq_url = aws.sqs.create_queue(QueueName="orders-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = aws.sqs.create_queue(
        QueueName="orders.fifo",
        Attributes={
            "FifoQueue": "true",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    (message,) = send_and_receive(aws, url, "charge", MessageGroupId="customer-7", MessageDeduplicationId="d-1")

    # When it is settled as dead
    settler(aws, url).settle(config(url), [message], Outcome(failed=(Failure(message["MessageId"], "x", dead=True),)))

    # Then it is in the DLQ, in the same group
    (dead,) = receive(aws, dlq_url)
    assert (dead["Body"], dead["Attributes"]["MessageGroupId"]) == ("charge", "customer-7")
    assert depth(aws, url) == 0


def test_one_batch_deletes_retries_and_moves_each_message_as_its_outcome_says(
    aws: Clients, queue: MadeQueue, frozen: FrozenDateTimeFactory
) -> None:
    # Given a batch of three: one succeeded, one failed (retry in 15 s), one dead
    ok, retry, dead = send_and_receive(aws, queue.url, "ok", "retry", "dead")
    outcome = Outcome(
        succeeded=(ok["MessageId"],),
        failed=(Failure(retry["MessageId"], "later", retry_in_s=15), Failure(dead["MessageId"], "dead", dead=True)),
    )

    # When it is settled
    settled = settler(aws, queue.url).settle(config(queue.url), [ok, retry, dead], outcome)

    # Then only the retried one is left in the queue, hidden for 15 s, and the dead one is in the DLQ
    assert (settled.processed, settled.failed) == (1, 2)
    assert bodies(aws, queue.dlq_url) == ["dead"]
    assert depth(aws, queue.url) == 1
    assert hidden_for_s(aws, queue.url, frozen, 15)
    assert bodies(aws, queue.url) == []  # the one received by hidden_for_s is hidden again: nothing else is left


@pytest.mark.parametrize(
    ("operation", "outcome_of"),
    [
        ("sqs.DeleteMessageBatch", lambda m: Outcome(succeeded=(m["MessageId"],))),
        ("sqs.ChangeMessageVisibilityBatch", lambda m: Outcome(failed=(Failure(m["MessageId"], "no"),))),
    ],
    ids=["delete", "hide"],
)
def test_a_failed_settlement_call_is_logged_per_message_and_loses_nothing(
    aws: Clients,
    queue: MadeQueue,
    frozen: FrozenDateTimeFactory,
    logs: LogRecords,
    operation: str,
    outcome_of: Callable[[Any], Outcome],
) -> None:
    # Given SQS refusing the settlement call (not a transient error: it is not retried)
    first, second = send_and_receive(aws, queue.url, "a", "b")
    inject_errors(aws.sqs, operation, times=1, code="AccessDenied", status=403)
    outcome = outcome_of(first) + outcome_of(second)

    # When the batch is settled
    settler(aws, queue.url).settle(config(queue.url, backoff_base_s=0, backoff_max_s=0), [first, second], outcome)

    # Then each message's failure is logged with its id and the error
    failures = [line for line in logs.lines if line.get("action") == operation.removeprefix("sqs.")]
    assert sorted(line["message_id"] for line in failures) == sorted([first["MessageId"], second["MessageId"]])
    assert all("AccessDenied" in line["error"] for line in failures)
    # And both messages come back after the visibility timeout they were received with
    assert hidden_for_s(aws, queue.url, frozen, 30)
    assert depth(aws, queue.url) == 2


def test_an_entry_the_batch_call_fails_is_logged_with_its_message_id(
    aws: Clients, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a success whose receipt handle SQS will not accept, beside a good one
    good, stale = send_and_receive(aws, queue.url, "good", "stale")
    stale = {**stale, "ReceiptHandle": "not-a-receipt-handle"}

    # When both are settled as successes
    settler(aws, queue.url).settle(
        config(queue.url), [good, stale], Outcome(succeeded=(good["MessageId"], stale["MessageId"]))
    )

    # Then the good one is deleted, the other is kept (it comes back), and its failure is logged by id
    assert depth(aws, queue.url) == 1
    (line,) = [line for line in logs.lines if line.get("action") == "DeleteMessageBatch"]
    assert line["message_id"] == stale["MessageId"]
    assert "ReceiptHandleIsInvalid" in line["error"]
