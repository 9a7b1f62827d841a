"""Dispatch without AWS: Lambda-shaped records, Lambda's partial batch response rules, in-process handlers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sqsloops import dispatch
from sqsloops.dispatch import (
    Dispatchers,
    LambdaDispatcher,
    PythonBatchDispatcher,
    PythonMessageDispatcher,
    UnresolvedDispatcher,
    outcome_from_reply,
    to_lambda_record,
)
from sqsloops.registry import QueueConfig

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:work"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def records(*ids: str) -> list[dict[str, Any]]:
    return [{"messageId": i, "body": f"body of {i}"} for i in ids]


def sqs_message(**extra: Any) -> dict[str, Any]:
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
        "Body": '{"n": 1}',
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "SenderId": "A", "MessageGroupId": "g"},
        **extra,
    }


class TestRecords:
    def test_a_message_becomes_a_lambda_sqs_record(self) -> None:
        # Given a message as ReceiveMessage returns it
        message = sqs_message()

        # When it is turned into a record
        record = to_lambda_record(message, queue_arn=QUEUE_ARN, region="us-east-1")

        # Then it reads like Lambda's own SQS event, every SQS attribute kept
        assert record == {
            "messageId": "m-1",
            "receiptHandle": "rh-1",
            "body": '{"n": 1}',
            "attributes": {
                "ApproximateReceiveCount": "2",
                "SentTimestamp": "1",
                "SenderId": "A",
                "MessageGroupId": "g",
            },
            "messageAttributes": {},
            "md5OfBody": "d41d8cd98f00b204e9800998ecf8427e",
            "eventSource": "aws:sqs",
            "eventSourceARN": QUEUE_ARN,
            "awsRegion": "us-east-1",
        }

    def test_message_attributes_take_lambdas_lower_camel_form_with_binary_in_base64(self) -> None:
        # Given a message with a string, a number and a binary attribute
        message = sqs_message(
            MD5OfMessageAttributes="abc",
            MessageAttributes={
                "kind": {"StringValue": "order", "DataType": "String"},
                "n": {"StringValue": "3", "DataType": "Number"},
                "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
            },
        )

        # When it is turned into a record
        record = to_lambda_record(message, queue_arn=QUEUE_ARN, region="us-east-1")

        # Then the attributes are as Lambda delivers them, and their digest is passed on
        assert record["md5OfMessageAttributes"] == "abc"
        assert record["messageAttributes"] == {
            "kind": {"stringValue": "order", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "n": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
            "blob": {
                "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        }
        json.dumps(record)  # and the record is JSON, ready to forward


class TestPartialBatchResponse:
    @pytest.mark.parametrize(
        "reply",
        [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"statusCode": 200}, "done", 42],
        ids=["null", "empty", "empty-list", "null-list", "other-object", "string", "number"],
    )
    def test_a_reply_without_failures_means_the_whole_batch_succeeded(self, reply: Any) -> None:
        outcome = outcome_from_reply(records("a", "b"), reply)

        assert outcome.succeeded == ("a", "b")
        assert outcome.failed == ()

    def test_only_the_reported_items_fail(self) -> None:
        outcome = outcome_from_reply(records("a", "b", "c"), {"batchItemFailures": [{"itemIdentifier": "b"}]})

        assert outcome.succeeded == ("a", "c")
        assert [f.message_id for f in outcome.failed] == ["b"]

    @pytest.mark.parametrize(
        "failures",
        [
            [{"itemIdentifier": "nope"}],
            [{"itemIdentifier": ""}],
            [{"itemIdentifier": None}],
            [{"id": "a"}],
            ["a"],
            {"itemIdentifier": "a"},
        ],
        ids=["unknown-id", "empty-id", "null-id", "bad-key", "not-an-object", "not-a-list"],
    )
    def test_an_invalid_failure_report_fails_the_whole_batch(self, failures: Any) -> None:
        outcome = outcome_from_reply(records("a", "b"), {"batchItemFailures": failures})

        assert outcome.succeeded == ()
        assert sorted(f.message_id for f in outcome.failed) == ["a", "b"]
        assert all("batchItemFailures" in f.reason for f in outcome.failed)


class TestInProcessHandlers:
    def test_per_message_a_raising_handler_fails_only_its_message(self) -> None:
        def handler(record: dict[str, Any]) -> None:
            if record["messageId"] == "b":
                raise KeyError("missing")

        outcome = PythonMessageDispatcher(handler).dispatch(records("a", "b", "c"))

        assert outcome.succeeded == ("a", "c")
        assert [(f.message_id, f.reason) for f in outcome.failed] == [("b", "KeyError: 'missing'")]

    def test_per_batch_the_reply_says_which_failed(self) -> None:
        outcome = PythonBatchDispatcher(lambda rs: {"batchItemFailures": [{"itemIdentifier": "a"}]}).dispatch(
            records("a", "b")
        )

        assert outcome.succeeded == ("b",)
        assert [f.message_id for f in outcome.failed] == ["a"]

    def test_per_batch_an_exception_fails_the_whole_batch(self) -> None:
        def handler(rs: list[dict[str, Any]]) -> None:
            raise RuntimeError("down")

        outcome = PythonBatchDispatcher(handler).dispatch(records("a", "b"))

        assert outcome.succeeded == ()
        assert {f.reason for f in outcome.failed} == {"RuntimeError: down"}


class TestDispatchers:
    def config(self, handler: str, mode: str = "message") -> QueueConfig:
        return QueueConfig(queue_url=QUEUE_URL, handler=handler, handler_mode=mode)  # type: ignore[arg-type]

    def test_a_python_handler_is_resolved_once_and_reused(self) -> None:
        dispatchers = Dispatchers(lambda_client=None)  # type: ignore[arg-type]

        first = dispatchers.for_config(self.config("python:sqsloops.examples:noop"))
        second = dispatchers.for_config(self.config("python:sqsloops.examples:noop"))

        assert first is second
        assert isinstance(first, PythonMessageDispatcher)

    def test_batch_mode_calls_the_function_with_the_batch(self) -> None:
        dispatcher = Dispatchers(lambda_client=None).for_config(  # type: ignore[arg-type]
            self.config("python:tests.fixtures.handlers:report_failures_by_body", "batch")
        )

        outcome = dispatcher.dispatch([{"messageId": "a", "body": "ok"}, {"messageId": "b", "body": "fail"}])

        assert outcome.succeeded == ("a",)
        assert [f.message_id for f in outcome.failed] == ["b"]

    @pytest.mark.parametrize(
        ("handler", "reason"),
        [
            ("python:no_such_package.jobs:run", "cannot import 'no_such_package.jobs'"),
            ("python:sqsloops.examples:no_such_function", "has no callable 'no_such_function'"),
        ],
    )
    def test_an_unloadable_handler_fails_every_message_with_why(self, handler: str, reason: str) -> None:
        dispatcher = Dispatchers(lambda_client=None).for_config(self.config(handler))  # type: ignore[arg-type]

        outcome = dispatcher.dispatch(records("a", "b"))

        assert isinstance(dispatcher, UnresolvedDispatcher)
        assert outcome.succeeded == ()
        assert len(outcome.failed) == 2
        assert all(reason in f.reason for f in outcome.failed)

    def test_a_lambda_handler_forwards(self) -> None:
        dispatcher = Dispatchers(lambda_client=None).for_config(self.config("lambda:orders-worker"))  # type: ignore[arg-type]

        assert isinstance(dispatcher, LambdaDispatcher)


def test_a_batch_over_lambdas_payload_limit_is_forwarded_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a payload limit that two of these records exceed
    monkeypatch.setattr(dispatch, "MAX_INVOKE_PAYLOAD_BYTES", 150)
    batch = [{"messageId": str(i), "body": "x" * 40} for i in range(3)]

    # When the batch is split
    chunks = list(dispatch._chunks_within_payload_limit(batch))

    # Then every record is sent exactly once, in order, each part within the limit
    assert [r["messageId"] for chunk in chunks for r in chunk] == ["0", "1", "2"]
    assert len(chunks) > 1
    assert all(len(json.dumps({"Records": chunk})) <= 150 for chunk in chunks)
