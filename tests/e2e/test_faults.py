"""Faults injected into the embedded AWS (sqsloops.local.faults) reach the stack's code as AWS's own failures would:
a throttled DynamoDB call, a failed or a dropped async invoke, an execution environment killed mid-invocation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from sqsloops.local.faults import FaultInjector, Faults
from sqsloops.local.server import EmbeddedAws
from sqsloops.ops.registration import QueueAdmin
from sqsloops.registry import QueueConfig
from tests.e2e.conftest import MakeFunction, eventually, is_empty, send_bodies, wait_for_messages
from tests.e2e.handlers import read_log

pytestmark = pytest.mark.e2e

# Calls DynamoDB (GetItem) or Lambda (Invoke) from inside a function with botocore's standard retries (3 retries),
# and says what came back: the error code, HTTP status, retries made and DynamoDB's ThrottlingReasons.
CALLER = """
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

RETRIES = Config(retries={"max_attempts": 3, "mode": "standard"})  # 3 retries: 4 attempts

def handler(event, context):
    try:
        if event["call"] == "dynamodb":
            response = boto3.client("dynamodb", config=RETRIES).get_item(
                TableName=event["table"], Key={"queue_url": {"S": "none"}, "token": {"S": "none"}}
            )
        else:
            response = boto3.client("lambda", config=RETRIES).invoke(
                FunctionName=event["function"], InvocationType=event["type"], Payload=event["payload"]
            )
    except ClientError as exc:
        return {
            "code": exc.response["Error"]["Code"],
            "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
            "retries": exc.response["ResponseMetadata"]["RetryAttempts"],
            "reasons": exc.response.get("ThrottlingReasons"),
        }
    return {"code": None, "status": response["ResponseMetadata"]["HTTPStatusCode"]}
"""

# Sends the event's "body" to the event's "queue_url": shows that an async invocation ran.
SENDER = """
import boto3

def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=event["queue_url"], MessageBody=event["body"])
"""


@pytest.fixture
def inject(embedded_aws: EmbeddedAws) -> Iterator[Callable[[str], FaultInjector]]:
    """Set faults on the shared stack for one test; none again after it."""

    def set_faults(spec: str) -> FaultInjector:
        injector = embedded_aws.set_faults(Faults.parse(spec))
        assert injector is not None
        return injector

    yield set_faults
    embedded_aws.set_faults(None)


def call(embedded_aws: EmbeddedAws, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    response = embedded_aws.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event))
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def test_a_functions_dynamodb_call_is_throttled_as_aws_throttles_it_and_the_operators_is_not(
    embedded_aws: EmbeddedAws, make_function: MakeFunction, inject: Callable[[str], FaultInjector]
) -> None:
    caller = make_function(CALLER, timeout_s=600)  # 60 s at the e2e time scale: time for botocore's backoffs
    table = embedded_aws.settings.loops_table
    ask = {"call": "dynamodb", "table": table}
    assert call(embedded_aws, caller, ask)["code"] is None

    injector = inject("ddb-throttle=1")
    throttled = call(embedded_aws, caller, ask)
    assert throttled["code"] == "ProvisionedThroughputExceededException"
    assert throttled["status"] == 400
    assert throttled["retries"] == 3  # botocore retried it as throttling, as it retries AWS's
    assert throttled["reasons"][0]["reason"] == "TableReadKeyRangeThroughputExceeded"
    assert injector.counts.ddb_throttled >= 4  # and the stack's own functions are throttled too meanwhile
    key = {"queue_url": {"S": "none"}, "token": {"S": "none"}}
    client = embedded_aws.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    assert "Item" not in client.get_item(TableName=table, Key=key)  # the test's own call goes through


def test_an_invoke_outage_fails_a_functions_async_invokes_but_not_its_synchronous_ones(
    embedded_aws: EmbeddedAws, make_function: MakeFunction, inject: Callable[[str], FaultInjector]
) -> None:
    caller, target = make_function(CALLER, timeout_s=600), make_function(SENDER)
    inject("invoke-outage=1m/1m")
    failed = call(embedded_aws, caller, {"call": "lambda", "function": target, "type": "Event", "payload": "{}"})
    assert failed["code"] == "ServiceException"
    assert failed["status"] == 500
    dry = call(embedded_aws, caller, {"call": "lambda", "function": target, "type": "DryRun", "payload": "{}"})
    assert dry == {"code": None, "status": 204}


def test_a_dropped_async_invoke_is_accepted_and_never_runs(
    embedded_aws: EmbeddedAws,
    make_function: MakeFunction,
    make_queue_url: Callable[[str], str],
    inject: Callable[[str], FaultInjector],
) -> None:
    caller, target, queue_url = make_function(CALLER), make_function(SENDER), make_queue_url("dropped")

    def send_through(body: str) -> dict[str, Any]:
        payload = json.dumps({"queue_url": queue_url, "body": body})
        return call(embedded_aws, caller, {"call": "lambda", "function": target, "type": "Event", "payload": payload})

    injector = inject("invoke-drop=1")
    assert send_through("dropped") == {"code": None, "status": 202}
    assert injector.counts.invoke_dropped == 1
    embedded_aws.set_faults(None)
    assert send_through("delivered") == {"code": None, "status": 202}
    bodies = [m["Body"] for m in wait_for_messages(embedded_aws.client("sqs"), queue_url, count=1)]
    assert bodies == ["delivered"]


def test_a_killed_loop_ends_as_a_crash_and_its_slot_comes_back_with_every_message(
    embedded_aws: EmbeddedAws,
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    inject: Callable[[str], FaultInjector],
    tmp_path: Path,
) -> None:
    sqs, tokens = embedded_aws.client("sqs"), registrations.tokens
    queue_url, dlq_url = make_queue_with_dlq("killed")
    injector = inject("kill=every:1h")  # armed, never firing by itself: the test picks the moment
    register(queue_url, handler="python:tests.e2e.handlers:blocking", min_loops=1, max_loops=1, visibility_timeout_s=10)
    [before] = tokens.list(queue_url)
    gate, blocked_log, log = tmp_path / "gate", tmp_path / "blocked.jsonl", tmp_path / "handled.jsonl"
    gate.touch()
    ids = [f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(10)]
    send_bodies(
        sqs, queue_url, [{"id": i, "log": str(log), "gate": str(gate), "blocked_log": str(blocked_log)} for i in ids]
    )
    eventually(lambda: read_log(blocked_log), what="the handler blocked mid-batch")

    kill = injector.kill_one()
    gate.unlink()
    assert kill is not None
    assert kill.function_name == embedded_aws.settings.process_function
    assert kill.event["token"] == before.slot
    assert kill.event["queue_url"] == queue_url

    eventually(lambda: [t for t in tokens.list(queue_url) if t.loop_id != before.loop_id], what="the slot taken over")
    eventually(lambda: {entry["id"] for entry in read_log(log)} >= set(ids), what="every message handled")
    eventually(lambda: is_empty(sqs, queue_url), what="the queue drained")
    assert is_empty(sqs, dlq_url)
