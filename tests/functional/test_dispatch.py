"""Forwarding batches to a Lambda function (`lambda:`), and in-process batch handlers, against moto.

moto runs function code only in Docker, which is absent. Its documented Docker-less Lambda
(`{"lambda": {"use_docker": False}}`) accepts a real Invoke of a function created in moto and answers, in order,
replies queued through its moto API (`/moto-api/static/lambda-simple/response`); with none queued it echoes the
request payload (an object without batchItemFailures: success). So the request goes through botocore and moto
for real, and the function's reply is set per test. The one thing moto cannot produce, a function error, is
injected as a raw HTTP reply carrying X-Amz-Function-Error, which botocore parses as it would AWS's.
The forwarded event is observed with a before-call hook that only reads the request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import (
    LogRecords,
    LoopHarness,
    capture_logs,
    create_function,
    inject_errors,
    queue_lambda_replies,
    reply_over_http,
)

SAM_SQS_EVENT = Path(__file__).parent.parent / "fixtures" / "sam_sqs_receive_message.json"
WORKER = "orders-worker"


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    harness = LoopHarness.create(aws, settings, monkeypatch)
    create_function(aws, WORKER)
    return harness


@pytest.fixture
def logs() -> Iterator[LogRecords]:
    with capture_logs() as records:
        yield records


@pytest.fixture
def forwarded(loops: LoopHarness) -> list[dict[str, Any]]:
    """Every event the loop sends to the worker function, as sent (read from the request, never altered)."""
    events: list[dict[str, Any]] = []

    def observe(params: dict[str, Any], **_: Any) -> None:
        if params["url_path"].startswith(f"/2015-03-31/functions/{WORKER}/"):
            events.append(json.loads(params["body"]))

    loops.aws.lambda_.meta.events.register("before-call.lambda.Invoke", observe)
    return events


def run_once_to_the_dlq(loops: LoopHarness, make_queue: Callable[..., MadeQueue], *bodies: str) -> MadeQueue:
    """A queue whose messages go to the DLQ after one failed receive, registered to the worker, run once."""
    queue = make_queue("orders", max_receive_count=1)
    loops.register(queue.url, f"lambda:{WORKER}")
    loops.send(queue.url, *bodies)
    loops.run(loops.tokens.create(queue.url), budget_s=10)
    return queue


def test_a_forwarded_record_has_the_shape_of_lambdas_own_sqs_event(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue], forwarded: list[dict[str, Any]]
) -> None:
    # Given the event `sam local generate-event sqs receive-message` produces, and a queue forwarding to a function
    sam_record = json.loads(SAM_SQS_EVENT.read_text())["Records"][0]
    queue = make_queue("orders")
    loops.register(queue.url, f"lambda:{WORKER}")
    loops.send(queue.url, "plain")
    loops.send(queue.url, "with attributes", MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}})

    # When a loop forwards the batch
    result = loops.run(loops.tokens.create(queue.url), budget_s=5)

    # Then each record has exactly SAM's keys (plus md5OfMessageAttributes when there are attributes)
    records = {r["body"]: r for event in forwarded for r in event["Records"]}
    assert set(records) == {"plain", "with attributes"}
    assert set(records["plain"]) == set(sam_record)
    assert set(records["with attributes"]) == set(sam_record) | {"md5OfMessageAttributes"}
    for record in records.values():
        assert set(record["attributes"]) >= set(sam_record["attributes"])
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == queue.arn
        assert record["awsRegion"] == "us-east-1"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert records["with attributes"]["messageAttributes"] == {
        "kind": {"stringValue": "x", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }
    # And the function's reply (no batchItemFailures) acknowledged the batch
    assert result.processed == 2
    assert loops.depth(queue.url) == 0


def test_only_the_items_the_function_reports_fail(loops: LoopHarness, make_queue: Callable[..., MadeQueue]) -> None:
    # Given a function that will report the second of three messages as failed
    queue = make_queue("orders", max_receive_count=1)
    loops.register(queue.url, f"lambda:{WORKER}")
    _, second, _ = loops.send(queue.url, "a", "b", "c")
    queue_lambda_replies(json.dumps({"batchItemFailures": [{"itemIdentifier": second}]}))

    # When a loop forwards the batch
    result = loops.run(loops.tokens.create(queue.url), budget_s=10)

    # Then the others are deleted and only that one failed (and, at maxReceiveCount 1, is in the DLQ)
    assert (result.processed, result.failed) == (2, 1)
    assert loops.depth(queue.url) == 0
    assert loops.bodies(queue.dlq_url) == ["b"]


def test_a_function_error_fails_the_whole_batch_and_loses_nothing(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue], logs: LogRecords
) -> None:
    # Given a function that raises (Lambda answers 200 with X-Amz-Function-Error: Unhandled)
    error = json.dumps({"errorMessage": "db down", "errorType": "RuntimeError"}).encode()
    reply_over_http(
        loops.aws.lambda_,
        "lambda.Invoke",
        times=1,
        status=200,
        headers={"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
        body=error,
    )

    # When a loop forwards a batch of three
    queue = run_once_to_the_dlq(loops, make_queue, "a", "b", "c")

    # Then all three failed, with why, and all three are kept (in the DLQ, at maxReceiveCount 1)
    assert loops.bodies(queue.dlq_url) == ["a", "b", "c"]
    assert loops.depth(queue.url) == 0
    assert any("Unhandled" in reason and "db down" in reason for reason in logs.with_field("reason"))


@pytest.mark.parametrize(
    "reply",
    ["not json", json.dumps({"batchItemFailures": [{"itemIdentifier": "no-such-message"}]})],
    ids=["unparseable", "unknown-item"],
)
def test_an_invalid_reply_fails_the_whole_batch(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue], reply: str
) -> None:
    # Given a function replying with what Lambda treats as a failed batch
    queue_lambda_replies(reply)

    # When a loop forwards a batch of two
    queue = run_once_to_the_dlq(loops, make_queue, "a", "b")

    # Then both failed and both are kept
    assert loops.bodies(queue.dlq_url) == ["a", "b"]


def test_an_invoke_error_fails_the_whole_batch(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue], logs: LogRecords
) -> None:
    # Given Lambda refusing the invoke (throttled)
    inject_errors(loops.aws.lambda_, "lambda.Invoke", times=1, code="TooManyRequestsException", status=429)

    # When a loop forwards a batch of two
    queue = run_once_to_the_dlq(loops, make_queue, "a", "b")

    # Then both failed, with why, and both are kept
    assert loops.bodies(queue.dlq_url) == ["a", "b"]
    assert any("TooManyRequestsException" in reason for reason in logs.with_field("reason"))


def test_an_in_process_batch_handler_reports_its_failures(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a batch-mode python handler that reports bodies starting with "fail"
    queue = make_queue("orders", max_receive_count=1)
    loops.register(queue.url, "python:tests.fixtures.handlers:report_failures_by_body", handler_mode="batch")
    loops.send(queue.url, "ok 1", "fail 1", "ok 2")

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=10)

    # Then only the reported one failed
    assert (result.processed, result.failed) == (2, 1)
    assert loops.bodies(queue.dlq_url) == ["fail 1"]


def test_an_in_process_batch_handler_that_raises_fails_the_batch(
    loops: LoopHarness, make_queue: Callable[..., MadeQueue]
) -> None:
    queue = make_queue("orders", max_receive_count=1)
    loops.register(queue.url, "python:tests.fixtures.handlers:crash_batch", handler_mode="batch")
    loops.send(queue.url, "a", "b")

    loops.run(loops.tokens.create(queue.url), budget_s=10)

    assert loops.bodies(queue.dlq_url) == ["a", "b"]
