"""One embedded AWS for the whole e2e package: template.yaml deployed, Lambda code running, alarms and schedules live.

The fixture is package-scoped: it starts on the first e2e test and stops after the last one, so that no
in-process `mock_aws` of the functional tests (which resets moto's process-wide backends) ever overlaps it.

Helpers for tests that need more than the stack: `make_function` deploys a small function from source text,
`make_queue_url` creates a queue, `wait_for_messages` polls one with a generous deadline. For the system tests:
`register` registers a queue with the deployed stack (deregistered at teardown), `make_queue_with_dlq`,
`send_bodies`, `is_empty`, and `eventually`, which polls any condition with the same deadline.
"""

from __future__ import annotations

import io
import json
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bench.chaos import CHAOS_HANDLER_LAYER
from sqsloops.local.provision import LayerSource
from sqsloops.local.server import EmbeddedAws
from sqsloops.ops.registration import QueueAdmin
from sqsloops.queues import queue_depth
from sqsloops.registry import QueueConfig

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STACK = "sqsloops-e2e"
# Compressed time for the whole e2e package: an invocation gets Timeout/10 s, alarms are evaluated every
# Period/10 s, rate() schedules fire every interval/10 s, StaleAfterSeconds and HeartbeatSeconds are divided by 10.
TIME_SCALE = 10.0
DEADLINE_S = 60.0  # how long a poll may wait on a loaded 2-core machine before a test gives up

MakeFunction = Callable[..., str]


# The handlers the e2e tests register as python:tests...: workers see only code and layers (as on AWS), so they
# come in a layer the embedded stack attaches to the process function, as a deployment ships its handlers.
TEST_HANDLERS_LAYER = LayerSource(
    name="test-handlers",
    root=TEMPLATE.parent,
    entries=(
        "tests/__init__.py",
        "tests/e2e/__init__.py",
        "tests/e2e/handlers.py",
        "tests/e2e/entry_jobs.py",
        "tests/e2e/dashboard_jobs.py",  # the jobs test_dashboard_browser.py applies
        "tests/fixtures/__init__.py",
        "tests/fixtures/handlers.py",
    ),
)


@pytest.fixture(scope="package")
def embedded_aws() -> Iterator[EmbeddedAws]:
    layers = (TEST_HANDLERS_LAYER, CHAOS_HANDLER_LAYER)
    with EmbeddedAws(template=TEMPLATE, stack_name=STACK, time_scale=TIME_SCALE, handler_layers=layers) as aws:
        yield aws


@pytest.fixture(scope="package")
def lambda_role_arn(embedded_aws: EmbeddedAws) -> str:
    iam = embedded_aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=f"{STACK}-test-functions", AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def zip_source(source: str, *, filename: str = "app.py") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(filename, textwrap.dedent(source))
    return buffer.getvalue()


@pytest.fixture
def make_function(embedded_aws: EmbeddedAws, lambda_role_arn: str) -> MakeFunction:
    """Deploy `source` (an app.py with `handler`) as a new function; returns its name.

    `timeout_s` is the function's Timeout as deployed; each invocation gets timeout_s / TIME_SCALE.
    """
    lambda_ = embedded_aws.client("lambda")

    def make(
        source: str,
        *,
        timeout_s: int = 60,
        reserved_concurrency: int | None = None,
        environment: dict[str, str] | None = None,
        name: str | None = None,
    ) -> str:
        function_name = name or f"{STACK}-handler-{uuid.uuid4().hex[:8]}"  # within the default invoke scope
        lambda_.create_function(
            FunctionName=function_name,
            Runtime="python3.11",
            Role=lambda_role_arn,
            Handler="app.handler",
            Code={"ZipFile": zip_source(source)},
            Timeout=timeout_s,
            Environment={"Variables": environment or {}},
        )
        if reserved_concurrency is not None:
            lambda_.put_function_concurrency(
                FunctionName=function_name, ReservedConcurrentExecutions=reserved_concurrency
            )
        return function_name

    return make


@pytest.fixture
def make_queue_url(embedded_aws: EmbeddedAws) -> Callable[[str], str]:
    sqs = embedded_aws.client("sqs")

    def make(prefix: str = "q") -> str:
        return str(sqs.create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:8]}")["QueueUrl"])

    return make


def wait_for_messages(
    sqs: Any, queue_url: str, *, count: int = 1, deadline_s: float = DEADLINE_S
) -> list[dict[str, Any]]:
    """Receive (and delete) until `count` messages arrived or the deadline passed; returns what arrived."""
    received: list[dict[str, Any]] = []
    give_up_at = time.monotonic() + deadline_s
    while len(received) < count and time.monotonic() < give_up_at:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            received.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return received


# ---------------------------------------------------------------- registering queues on the deployed stack

T = TypeVar("T")


def eventually(check: Callable[[], T], *, what: str, deadline_s: float = DEADLINE_S, interval_s: float = 0.25) -> T:
    """Call `check` until it returns something truthy (returned) or the deadline passes (AssertionError)."""
    give_up_at = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= give_up_at:
            raise AssertionError(f"not within {deadline_s:g} s: {what} (last seen: {result!r})")
        time.sleep(interval_s)


@pytest.fixture
def registrations(embedded_aws: EmbeddedAws) -> QueueAdmin:
    """The operator's view of the deployed stack, as the CLI builds it."""
    return embedded_aws.root().admin


@pytest.fixture
def register(registrations: QueueAdmin) -> Iterator[Callable[..., QueueConfig]]:
    """Register a queue (QueueConfig fields as keywords); whatever is still registered at teardown is deregistered."""
    registered: list[str] = []

    def make(queue_url: str, **fields: Any) -> QueueConfig:
        config = registrations.register(QueueConfig(queue_url=queue_url, **fields)).config
        registered.append(queue_url)
        return config

    yield make
    for queue_url in registered:
        if registrations.registry.find(queue_url) is not None:
            registrations.deregister(queue_url)


@pytest.fixture
def make_queue_with_dlq(embedded_aws: EmbeddedAws) -> Callable[..., tuple[str, str]]:
    """A queue and its dead-letter queue: (queue_url, dlq_url)."""
    sqs = embedded_aws.client("sqs")

    def make(prefix: str = "q", *, max_receive_count: int = 5) -> tuple[str, str]:
        name = f"{STACK}-{prefix}-{uuid.uuid4().hex[:8]}"  # within the default queue scope
        dlq_url = str(sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"])
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        queue_url = str(sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)})["QueueUrl"])
        return queue_url, dlq_url

    return make


def send_bodies(sqs: Any, queue_url: str, bodies: list[dict[str, Any]]) -> None:
    """Send JSON bodies, ten per SendMessageBatch."""
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(chunk)]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not response.get("Failed"), response["Failed"]


def is_empty(sqs: Any, queue_url: str) -> bool:
    """Nothing visible and nothing in flight: every message was deleted (or moved to the dead-letter queue)."""
    depth = queue_depth(sqs, queue_url)
    return depth.visible == 0 and depth.in_flight == 0
