"""The Lambda executor on a running EmbeddedAws: deployed code runs in warm workers, as Lambda would run it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import moto
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sqsloops.errors import MotoChangedError
from sqsloops.local import executor
from sqsloops.local.server import EmbeddedAws
from tests.e2e.conftest import TIME_SCALE, MakeFunction, wait_for_messages

pytestmark = pytest.mark.e2e

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120)

ECHO = """
import os

def handler(event, context):
    if event.get("fail"):
        raise ValueError("boom: " + event["fail"])
    if event.get("crash"):
        os._exit(3)
    if event.get("hang"):
        import time
        time.sleep(600)
    return {
        "event": event,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "greeting": os.environ.get("GREETING"),
    }
"""

# Tells the test it started (to `events_url`), then waits for a message on `release_url`: lets a test hold an
# invocation open for as long as it needs, and see an asynchronous one start, with no timing assumptions.
BLOCKING = """
import json
import time

import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    sns = event["Records"][0]["Sns"] if "Records" in event else None
    config = json.loads(sns["Message"]) if sns else event
    started = {"step": "started", "topic_arn": sns and sns["TopicArn"], "subject": sns and sns["Subject"]}
    sqs.send_message(QueueUrl=config["events_url"], MessageBody=json.dumps(started))
    released = False
    give_up_at = time.time() + 20
    while not released and time.time() < give_up_at:
        messages = sqs.receive_message(QueueUrl=config["release_url"], WaitTimeSeconds=1).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=config["release_url"], ReceiptHandle=message["ReceiptHandle"])
        released = bool(messages)
    finished = {"step": "released" if released else "gave up"}
    sqs.send_message(QueueUrl=config["events_url"], MessageBody=json.dumps(finished))
    return {"released": released}
"""

REMAINING = """
import time

def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.3)
    return [first, context.get_remaining_time_in_millis()]
"""


def invoke(lambda_: Any, name: str, payload: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = lambda_.invoke(FunctionName=name, Payload=json.dumps(payload), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def steps(sqs: Any, queue_url: str, count: int) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in wait_for_messages(sqs, queue_url, count=count)]


@pytest.fixture
def lambda_(embedded_aws: EmbeddedAws) -> Any:
    return embedded_aws.client("lambda", config=NO_RETRIES)


@pytest.fixture
def sqs(embedded_aws: EmbeddedAws) -> Any:
    return embedded_aws.client("sqs")


@pytest.fixture
def echo_function(make_function: MakeFunction) -> str:
    return make_function(ECHO, timeout_s=30, environment={"GREETING": "hello"})


# ---------------------------------------------------------------- the deployed stack's own code


def test_a_deployed_stack_function_runs_its_code_from_the_template(embedded_aws: EmbeddedAws, lambda_: Any) -> None:
    # When the process function is invoked with an event it cannot use
    response, payload = invoke(lambda_, embedded_aws.settings.process_function, {"not": "a loop"})
    # Then its own adapter answered (it never raises for a malformed event)
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert payload["reason"] == "malformed_event"


def test_the_stack_is_deployed_with_durations_compressed_by_the_time_scale(embedded_aws: EmbeddedAws) -> None:
    # template defaults: StaleAfterSeconds 120, HeartbeatSeconds 10
    assert embedded_aws.settings.stale_after_s == 120 / TIME_SCALE
    assert embedded_aws.settings.heartbeat_s == 10 / TIME_SCALE


def test_the_lambda_patch_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "6.0.0")
    with pytest.raises(MotoChangedError, match=r"moto 5\.2\.5 only.*moto is 6\.0\.0"):
        executor.check_target()


# ---------------------------------------------------------------- RequestResponse


def test_request_response_returns_the_handlers_payload_and_context(
    embedded_aws: EmbeddedAws, lambda_: Any, echo_function: str
) -> None:
    response, payload = invoke(lambda_, echo_function, {"hello": "world"})
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert payload["event"] == {"hello": "world"}
    assert payload["function_name"] == echo_function
    assert payload["invoked_function_arn"].endswith(f":function:{echo_function}")
    assert payload["memory_limit_in_mb"] == "128"
    assert payload["aws_request_id"]
    assert payload["greeting"] == "hello"
    assert payload["endpoint"] == embedded_aws.endpoint


def test_a_warm_worker_is_reused(lambda_: Any, echo_function: str) -> None:
    _, first = invoke(lambda_, echo_function, {})
    _, second = invoke(lambda_, echo_function, {})
    assert first["pid"] == second["pid"]


def test_a_handler_exception_returns_lambdas_error_json(lambda_: Any, echo_function: str) -> None:
    response, payload = invoke(lambda_, echo_function, {"fail": "on purpose"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "boom: on purpose"
    assert any("raise ValueError" in frame for frame in payload["stackTrace"])
    # And the execution environment survives it
    _, after = invoke(lambda_, echo_function, {})
    assert after["event"] == {}


def test_a_crashed_worker_is_replaced(lambda_: Any, echo_function: str) -> None:
    _, before = invoke(lambda_, echo_function, {})
    response, payload = invoke(lambda_, echo_function, {"crash": True})
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in payload["errorMessage"]
    _, after = invoke(lambda_, echo_function, {})
    assert after["pid"] != before["pid"]


def test_a_timed_out_invocation_kills_and_replaces_its_worker(lambda_: Any, make_function: MakeFunction) -> None:
    # Given a function deployed with a 15 s Timeout, i.e. 1.5 s at the e2e time scale
    name = make_function(ECHO, timeout_s=15)
    _, before = invoke(lambda_, name, {})
    # When an invocation overruns it
    response, payload = invoke(lambda_, name, {"hang": True})
    # Then Lambda's timeout error comes back
    assert response["FunctionError"] == "Unhandled"
    assert f"Task timed out after {15 / TIME_SCALE:.2f} seconds" in payload["errorMessage"]
    # And the hung worker is gone, a fresh one serves the next invocation
    with pytest.raises(ProcessLookupError):
        os.kill(before["pid"], 0)
    _, after = invoke(lambda_, name, {"again": 1})
    assert after["event"] == {"again": 1}
    assert after["pid"] != before["pid"]


def test_remaining_time_starts_at_the_scaled_timeout_and_decreases(lambda_: Any, make_function: MakeFunction) -> None:
    name = make_function(REMAINING, timeout_s=60)
    _, (first, second) = invoke(lambda_, name, {})
    scaled_timeout_ms = 60 / TIME_SCALE * 1000
    assert 0 < second < first <= scaled_timeout_ms
    assert first - second >= 250  # the handler slept 0.3 s between the two readings


def test_a_payload_that_is_not_json_is_rejected(lambda_: Any, echo_function: str) -> None:
    with pytest.raises(ClientError, match="InvalidRequestContentException"):
        lambda_.invoke(FunctionName=echo_function, Payload=b"{not json")


# ---------------------------------------------------------------- Event, concurrency, SNS


def test_an_event_invoke_returns_202_at_once_and_runs(
    lambda_: Any, sqs: Any, make_function: MakeFunction, make_queue_url: Callable[[str], str]
) -> None:
    name = make_function(BLOCKING, timeout_s=300)
    events_url, release_url = make_queue_url("events"), make_queue_url("release")
    # When invoked asynchronously with a handler that blocks until released
    response = lambda_.invoke(
        FunctionName=name,
        InvocationType="Event",
        Payload=json.dumps({"events_url": events_url, "release_url": release_url}),
    )
    # Then the call returned 202 while the handler is still waiting
    assert response["StatusCode"] == 202
    assert [s["step"] for s in steps(sqs, events_url, 1)] == ["started"]
    sqs.send_message(QueueUrl=release_url, MessageBody="go")
    assert [s["step"] for s in steps(sqs, events_url, 1)] == ["released"]


def test_reserved_concurrency_throttles_a_sync_invoke_over_the_limit(
    lambda_: Any, sqs: Any, make_function: MakeFunction, make_queue_url: Callable[[str], str]
) -> None:
    # Given a function with reserved concurrency 1 whose only execution is busy
    name = make_function(BLOCKING, timeout_s=300, reserved_concurrency=1)
    events_url, release_url = make_queue_url("events"), make_queue_url("release")
    payload = {"events_url": events_url, "release_url": release_url}
    results: list[Any] = []
    busy = threading.Thread(target=lambda: results.append(invoke(lambda_, name, payload)[1]))
    busy.start()
    try:
        assert [s["step"] for s in steps(sqs, events_url, 1)] == ["started"]
        # When a second synchronous invoke arrives
        with pytest.raises(ClientError) as raised:
            lambda_.invoke(FunctionName=name, Payload=json.dumps(payload))
        # Then it is throttled as Lambda throttles
        error = raised.value.response
        assert error["Error"]["Code"] == "TooManyRequestsException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded"
    finally:
        sqs.send_message(QueueUrl=release_url, MessageBody="go")
        busy.join(timeout=120)
    assert results == [{"released": True}]


def test_an_sns_publish_reaches_a_subscribed_function_asynchronously(
    embedded_aws: EmbeddedAws, sqs: Any, make_function: MakeFunction, make_queue_url: Callable[[str], str]
) -> None:
    # Given a function subscribed to a topic
    sns = embedded_aws.client("sns")
    name = make_function(BLOCKING, timeout_s=300)
    function_arn = embedded_aws.client("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    topic_arn = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="lambda", Endpoint=function_arn)
    events_url, release_url = make_queue_url("events"), make_queue_url("release")
    # When a message is published (the handler will block until released)
    sns.publish(
        TopicArn=topic_arn, Subject="hi", Message=json.dumps({"events_url": events_url, "release_url": release_url})
    )
    # Then publish returned before the handler finished, and the handler saw SNS's event
    started = steps(sqs, events_url, 1)
    assert started == [{"step": "started", "topic_arn": topic_arn, "subject": "hi"}]
    sqs.send_message(QueueUrl=release_url, MessageBody="go")
    assert [s["step"] for s in steps(sqs, events_url, 1)] == ["released"]


def test_a_function_imports_sqsloops_from_its_layer_not_from_the_repository(
    embedded_aws: EmbeddedAws, lambda_: Any, make_function: MakeFunction
) -> None:
    # Given a function using the stack's layer
    layer_arn = lambda_.get_function_configuration(FunctionName=embedded_aws.settings.process_function)["Layers"][0]
    name = make_function("import sqsloops\n\ndef handler(event, context):\n    return sqsloops.__file__\n")
    lambda_.update_function_configuration(FunctionName=name, Layers=[layer_arn["Arn"]])
    # When it imports sqsloops, Then the layer's copy (under python/) is the one it gets
    _, location = invoke(lambda_, name, {})
    assert location.endswith("/python/sqsloops/__init__.py")
    assert not location.startswith(str(Path(__file__).resolve().parents[2]))


def test_an_event_invoke_over_the_limit_waits_in_the_queue_instead_of_failing(
    lambda_: Any, sqs: Any, make_function: MakeFunction, make_queue_url: Callable[[str], str]
) -> None:
    # Given a function with reserved concurrency 1, busy with a first asynchronous invocation
    name = make_function(BLOCKING, timeout_s=300, reserved_concurrency=1)
    events_url, release_url = make_queue_url("events"), make_queue_url("release")
    payload = json.dumps({"events_url": events_url, "release_url": release_url})
    assert lambda_.invoke(FunctionName=name, InvocationType="Event", Payload=payload)["StatusCode"] == 202
    assert [s["step"] for s in steps(sqs, events_url, 1)] == ["started"]
    # When a second one arrives, Then it is accepted (queued), not throttled
    assert lambda_.invoke(FunctionName=name, InvocationType="Event", Payload=payload)["StatusCode"] == 202
    # And it runs once the first is done
    sqs.send_message(QueueUrl=release_url, MessageBody="go")
    assert [s["step"] for s in steps(sqs, events_url, 2)] == ["released", "started"]
    sqs.send_message(QueueUrl=release_url, MessageBody="go")
    assert [s["step"] for s in steps(sqs, events_url, 1)] == ["released"]
