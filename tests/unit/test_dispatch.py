"""Dispatch without AWS: Lambda-shaped records, partial batch responses, in-process handlers, handler kinds."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import pytest

from sqsloops import dispatch
from sqsloops.dispatch import (
    Dispatchers,
    Failure,
    HandlerKind,
    Outcome,
    PythonBatchDispatcher,
    PythonMessageDispatcher,
    UnresolvedDispatcher,
    core_kinds,
    outcome_from_reply,
    to_lambda_record,
)
from sqsloops.errors import ConfigError, HandlerError
from sqsloops.handlers import KNOWN_KINDS, parse_handler
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


class RecordingLambda:
    """A stand-in Lambda client: remembers each synchronous invoke and answers with a reply (no AWS in unit tests)."""

    def __init__(self, reply: dict[str, Any] | None = None) -> None:
        self.reply = reply
        self.invokes: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invokes.append(request)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.reply).encode())}


class EchoDispatcher:
    """What a plugged-in kind builds in these tests: fails the messages whose body is its target."""

    def __init__(self, target: str) -> None:
        self.target = target

    def dispatch(self, records: list[dict[str, Any]]) -> Outcome:
        failing = [r for r in records if r["body"] == self.target]
        return Outcome(
            succeeded=tuple(r["messageId"] for r in records if r not in failing),
            failed=tuple(Failure(r["messageId"], f"echo refused {self.target}") for r in failing),
        )


class EchoKind:
    """A handler kind defined outside sqsloops.dispatch, as the job runner's will be."""

    def __init__(self) -> None:
        self.built: list[tuple[str, str]] = []

    def validate(self, target: str) -> None:
        if not target.isidentifier():
            raise ConfigError(f"echo target must be an identifier, got {target!r}")

    def build(self, target: str, config: QueueConfig) -> EchoDispatcher:
        if target == "unavailable":
            raise HandlerError("echo cannot reach unavailable")
        self.built.append((target, config.queue_url))
        return EchoDispatcher(target)


def kinds(**extra: HandlerKind) -> dict[str, HandlerKind]:
    return {**core_kinds(RecordingLambda()), **extra}  # type: ignore[arg-type]


class TestDispatchers:
    def config(self, handler: str, mode: str = "message") -> QueueConfig:
        return QueueConfig(queue_url=QUEUE_URL, handler=handler, handler_mode=mode)  # type: ignore[arg-type]

    def test_a_python_handler_is_resolved_once_and_reused(self) -> None:
        dispatchers = Dispatchers(kinds=kinds())

        first = dispatchers.for_config(self.config("python:sqsloops.examples:noop"))
        second = dispatchers.for_config(self.config("python:sqsloops.examples:noop"))

        assert first is second
        assert isinstance(first, PythonMessageDispatcher)

    def test_batch_mode_calls_the_function_with_the_batch(self) -> None:
        dispatcher = Dispatchers(kinds=kinds()).for_config(
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
            ("python:not a module", "python handler must be 'package.module:function'"),
            ("lambda:bad name", "not a Lambda function name or ARN"),
            ("worker", "handler must be 'kind:target'"),
        ],
    )
    def test_an_unloadable_handler_fails_every_message_with_why(self, handler: str, reason: str) -> None:
        dispatcher = Dispatchers(kinds=kinds()).for_config(self.config(handler))

        outcome = dispatcher.dispatch(records("a", "b"))

        assert isinstance(dispatcher, UnresolvedDispatcher)
        assert outcome.succeeded == ()
        assert len(outcome.failed) == 2
        assert all(reason in f.reason for f in outcome.failed)

    def test_a_lambda_handler_forwards_the_batch_to_its_function_and_applies_its_reply(self) -> None:
        # Given a function that will report the second record as failed
        function = RecordingLambda({"batchItemFailures": [{"itemIdentifier": "b"}]})
        dispatcher = Dispatchers(kinds=core_kinds(function)).for_config(  # type: ignore[arg-type]
            self.config("lambda:orders-worker")
        )

        # When a batch is dispatched
        outcome = dispatcher.dispatch(records("a", "b"))

        # Then the function was invoked once, synchronously, with the batch as Lambda's SQS event
        assert [(i["FunctionName"], i["InvocationType"]) for i in function.invokes] == [
            ("orders-worker", "RequestResponse")
        ]
        assert json.loads(function.invokes[0]["Payload"]) == {"Records": records("a", "b")}
        # And its reply decided the outcome
        assert outcome.succeeded == ("a",)
        assert [f.message_id for f in outcome.failed] == ["b"]

    def test_a_kind_plugged_in_from_outside_dispatches(self) -> None:
        # Given Dispatchers with an extra kind, as the composition root adds one
        echo = EchoKind()
        dispatchers = Dispatchers(kinds=kinds(echo=echo))

        # When a registration names it
        outcome = dispatchers.for_config(self.config("echo:nope")).dispatch(
            [{"messageId": "a", "body": "fine"}, {"messageId": "b", "body": "nope"}]
        )

        # Then the kind built the dispatcher from the target and the registration, and it ran
        assert echo.built == [("nope", QUEUE_URL)]
        assert outcome.succeeded == ("a",)
        assert [(f.message_id, f.reason) for f in outcome.failed] == [("b", "echo refused nope")]

    @pytest.mark.parametrize(
        ("handler", "reason"),
        [
            ("echo:not-an-identifier", "echo target must be an identifier"),
            ("echo:unavailable", "echo cannot reach unavailable"),
        ],
        ids=["invalid-target", "cannot-build"],
    )
    def test_a_plugged_in_kind_refusing_its_target_fails_the_messages_with_why(self, handler: str, reason: str) -> None:
        dispatcher = Dispatchers(kinds=kinds(echo=EchoKind())).for_config(self.config(handler))

        outcome = dispatcher.dispatch(records("a"))

        assert isinstance(dispatcher, UnresolvedDispatcher)
        assert [f.message_id for f in outcome.failed] == ["a"]
        assert reason in outcome.failed[0].reason

    def test_a_kind_that_fails_to_build_in_an_unforeseen_way_is_built_again_next_time(self) -> None:
        # Given a kind whose first build raises something other than ConfigError or HandlerError
        class FlakyKind(EchoKind):
            def build(self, target: str, config: QueueConfig) -> EchoDispatcher:
                if not self.built:
                    self.built.append(("flaked", config.queue_url))
                    raise TimeoutError("catalog read timed out")
                return super().build(target, config)

        flaky = FlakyKind()
        dispatchers = Dispatchers(kinds=kinds(echo=flaky))

        # When a batch asks for it twice
        with pytest.raises(TimeoutError):
            dispatchers.for_config(self.config("echo:x"))  # the loop fails that batch, with why
        dispatcher = dispatchers.for_config(self.config("echo:x"))

        # Then the failure was not kept: the kind was asked again, and what it built dispatches
        assert flaky.built == [("flaked", QUEUE_URL), ("x", QUEUE_URL)]
        assert dispatcher.dispatch(records("a")).succeeded == ("a",)

    def test_a_kind_this_loop_was_not_given_fails_every_message_with_why(self) -> None:
        # Given a loop with the core kinds only, and a registration naming another kind
        dispatcher = Dispatchers(kinds=kinds()).for_config(self.config("jobs:app.jobs"))

        # When a batch is dispatched
        outcome = dispatcher.dispatch(records("a", "b"))

        # Then every message fails, saying which kind is missing and which ones the loop has
        assert outcome.succeeded == ()
        assert [f.message_id for f in outcome.failed] == ["a", "b"]
        assert all("no handler kind 'jobs'" in f.reason for f in outcome.failed)
        assert all("'lambda:', 'python:'" in f.reason for f in outcome.failed)


class TestHandlerStrings:
    @pytest.mark.parametrize(
        ("handler", "kind", "target"),
        [
            ("lambda:orders-worker", "lambda", "orders-worker"),
            ("python:pkg.mod:run", "python", "pkg.mod:run"),
            ("jobs:app.jobs", "jobs", "app.jobs"),
            ("http:https://example.com/hook", "http", "https://example.com/hook"),
            ("my-kind_2:anything at all", "my-kind_2", "anything at all"),
        ],
    )
    def test_any_kind_and_target_parse(self, handler: str, kind: str, target: str) -> None:
        spec = parse_handler(handler)

        assert (spec.kind, spec.target, str(spec)) == (kind, target, handler)

    @pytest.mark.parametrize("handler", ["", "worker", "lambda:", ":target", "Lambda:worker", "1kind:x", "a b:c"])
    def test_a_string_that_is_not_kind_colon_target_is_refused(self, handler: str) -> None:
        with pytest.raises(ConfigError, match="handler must be 'kind:target'"):
            parse_handler(handler)

    def test_registration_refuses_a_kind_that_is_not_known_and_says_which_are(self) -> None:
        with pytest.raises(ConfigError, match=r"unknown handler kind 'smtp'.*'jobs:', 'lambda:', 'python:'"):
            QueueConfig(queue_url=QUEUE_URL, handler="smtp:mail").validate()

    @pytest.mark.parametrize(
        ("handler", "message"),
        [
            ("lambda:bad name", "not a Lambda function name or ARN"),
            ("python:module_without_function", "python handler must be"),
            ("jobs:app/jobs.py", "jobs handler must be 'jobs:package.module'"),
        ],
    )
    def test_registration_checks_a_known_kinds_target(self, handler: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            QueueConfig(queue_url=QUEUE_URL, handler=handler).validate()

    @pytest.mark.parametrize(
        "handler",
        ["lambda:orders-worker", "python:pkg.mod:run", "jobs:app.jobs", "http:https://app.example.com/jobs/{job}"],
    )
    def test_registration_accepts_every_known_kind(self, handler: str) -> None:
        assert {*KNOWN_KINDS} == {"lambda", "python", "jobs", "http"}

        QueueConfig(queue_url=QUEUE_URL, handler=handler).validate()

    def test_registration_accepts_a_kind_it_is_told_about(self) -> None:
        with pytest.raises(ConfigError, match="unknown handler kind 'echo'"):
            QueueConfig(queue_url=QUEUE_URL, handler="echo:x").validate()

        QueueConfig(queue_url=QUEUE_URL, handler="echo:x").validate(handler_kinds={*KNOWN_KINDS, "echo"})


class TestFailure:
    @pytest.mark.parametrize("retry_in_s", [-1.0, math.inf, math.nan])
    def test_a_retry_delay_is_a_finite_number_of_seconds(self, retry_in_s: float) -> None:
        with pytest.raises(ValueError, match="retry_in_s"):
            Failure("a", "why", retry_in_s=retry_in_s)

    def test_by_default_a_failure_takes_the_queues_backoff_and_is_not_dead(self) -> None:
        failure = Failure("a", "why")

        assert (failure.retry_in_s, failure.dead) == (None, False)


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
