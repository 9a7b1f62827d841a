"""A `lambda:` handler on the embedded AWS: batches are forwarded to another function in Lambda's own SQS event shape,
and its partial batch response decides which messages are deleted and which are retried into the dead-letter queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqsloops.registry import QueueConfig
from tests.e2e.conftest import STACK, MakeFunction, eventually, is_empty, send_bodies, wait_for_messages
from tests.e2e.handlers import read_log

pytestmark = pytest.mark.e2e

MAX_RECEIVE_COUNT = 3

# An ordinary SQS consumer: records each record it gets, fails those whose body asks for it.
CONSUMER = """
import json
import os

def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = json.loads(record["body"])
        entry = {
            "id": body["id"],
            "message_id": record["messageId"],
            "receive_count": int(record["attributes"]["ApproximateReceiveCount"]),
            "keys": sorted(record),
            "event_source": record["eventSource"],
            "event_source_arn": record["eventSourceARN"],
            "aws_region": record["awsRegion"],
        }
        fd = os.open(body["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, json.dumps(entry).encode() + b"\\n")
        os.close(fd)
        if body["fail"]:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
"""

LAMBDA_RECORD_KEYS = [
    "attributes",
    "awsRegion",
    "body",
    "eventSource",
    "eventSourceARN",
    "md5OfBody",
    "messageAttributes",
    "messageId",
    "receiptHandle",
]


def test_a_lambda_handler_gets_the_sqs_event_and_its_batch_item_failures_are_retried_into_the_dlq(
    embedded_aws: Any,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    make_function: MakeFunction,
    tmp_path: Path,
) -> None:
    sqs = embedded_aws.client("sqs")
    log = tmp_path / "consumer.jsonl"
    # Given a consumer function named within the stack's default handler scope (<stack>-handler-*)
    function_name = make_function(CONSUMER, timeout_s=60)
    assert function_name.startswith(f"{STACK}-handler-")
    # And a queue forwarding to it, whose dead-letter queue takes a message on its third failed receive
    queue_url, dlq_url = make_queue_with_dlq("forward", max_receive_count=MAX_RECEIVE_COUNT)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    register(
        queue_url,
        handler=f"lambda:{function_name}",
        min_loops=1,
        max_loops=1,
        visibility_timeout_s=30,
        backoff_base_s=0.5,
        backoff_max_s=1.0,
    )

    # When messages arrive, some of which the consumer reports as failed
    good = [f"good-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    bad = [f"bad-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    bodies = [{"id": i, "log": str(log), "fail": i in bad} for i in good + bad]
    send_bodies(sqs, queue_url, bodies)

    # Then the failed ones are retried until SQS moves them to the dead-letter queue
    dead = wait_for_messages(sqs, dlq_url, count=len(bad))
    assert sorted(json.loads(message["Body"])["id"] for message in dead) == sorted(bad)

    # And the others were deleted once handled: the queue is empty
    eventually(lambda: is_empty(sqs, queue_url), what="the queue drained")
    assert is_empty(sqs, dlq_url)
    entries = read_log(log)
    assert {e["id"] for e in entries} == set(good + bad)
    assert {e["receive_count"] for e in entries if e["id"] in good} == {1}
    # And each failed message was received again and again, up to maxReceiveCount
    for message_id in bad:
        counts = sorted({e["receive_count"] for e in entries if e["id"] == message_id})
        assert counts == list(range(1, MAX_RECEIVE_COUNT + 1))
    # And every batch came in the shape of Lambda's own SQS event
    for entry in entries:
        assert entry["keys"] == LAMBDA_RECORD_KEYS
        assert (entry["event_source"], entry["event_source_arn"], entry["aws_region"]) == (
            "aws:sqs",
            queue_arn,
            "us-east-1",
        )
