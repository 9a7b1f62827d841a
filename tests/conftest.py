"""Shared fixtures: moto in-process, the stack's tables, queues with dead-letter queues."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from sqsloops.clients import Clients as RuntimeClients
from sqsloops.settings import Settings

REGION = "us-east-1"
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever reaches a real account: fake credentials, one region, no endpoint or profile leaking in."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


class Clients(RuntimeClients):
    """The runtime's Clients (so a Root can be built on them), plus IAM for tests that create functions."""

    @property
    def iam(self) -> Any:
        return self.get("iam")


@pytest.fixture
def aws() -> Iterator[Clients]:
    """moto in-process for the whole test; clients built on first use, inside it."""
    with mock_aws():
        yield Clients(region=REGION)


def create_tables(dynamodb: Any, *, queues_table: str, loops_table: str) -> None:
    """The two tables as template.yaml defines them (tests/functional/test_template.py keeps these in step)."""
    dynamodb.create_table(
        TableName=queues_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "queue_url", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "queue_url", "KeyType": "HASH"}],
    )
    dynamodb.create_table(
        TableName=loops_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "queue_url", "AttributeType": "S"},
            {"AttributeName": "token", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "queue_url", "KeyType": "HASH"},
            {"AttributeName": "token", "KeyType": "RANGE"},
        ],
    )


@pytest.fixture
def settings(aws: Clients) -> Settings:
    """The stack's settings with its tables created in moto."""
    result = Settings(
        queues_table="sqsloops-test-queues",
        loops_table="sqsloops-test-loops",
        process_function="sqsloops-test-process",
        scale_up_topic_arn=aws.sns.create_topic(Name="sqsloops-test-scale-up")["TopicArn"],
        scale_down_topic_arn=aws.sns.create_topic(Name="sqsloops-test-scale-down")["TopicArn"],
        stack_name="sqsloops-test",
        heartbeat_s=10,
        reserve_s=5,
        stale_after_s=120,
        alarm_period_s=60,
    )
    create_tables(aws.dynamodb, queues_table=result.queues_table, loops_table=result.loops_table)
    return result


@dataclass
class TestQueue:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str
    max_receive_count: int


@pytest.fixture
def make_queue(aws: Clients) -> Callable[..., TestQueue]:
    """Create a queue with a dead-letter queue, as every registered queue should have."""

    def make(name: str = "work", *, max_receive_count: int = 3, visibility_timeout_s: int = 30) -> TestQueue:
        dlq_url = aws.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = aws.sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout_s),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
                ),
            },
        )["QueueUrl"]
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return TestQueue(url=url, arn=arn, dlq_url=dlq_url, dlq_arn=dlq_arn, max_receive_count=max_receive_count)

    return make


def settings_env(settings: Settings) -> dict[str, str]:
    """The SQSLOOPS_* variables the template gives the functions (and the CLI reads) for these settings."""
    return {
        "SQSLOOPS_QUEUES_TABLE": settings.queues_table,
        "SQSLOOPS_LOOPS_TABLE": settings.loops_table,
        "SQSLOOPS_PROCESS_FUNCTION": settings.process_function,
        "SQSLOOPS_SCALE_UP_TOPIC_ARN": settings.scale_up_topic_arn,
        "SQSLOOPS_SCALE_DOWN_TOPIC_ARN": settings.scale_down_topic_arn,
        "SQSLOOPS_STACK_NAME": settings.stack_name,
        "SQSLOOPS_STALE_AFTER_S": str(settings.stale_after_s),
    }


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The stack's settings, also set as the SQSLOOPS_* variables (how the CLI and the functions find the stack)."""
    monkeypatch.delenv("SQSLOOPS_STACK", raising=False)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    return settings


_TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def create_function(aws: Clients, name: str, *, source: str = "def handler(event, context):\n    return None\n") -> str:
    """A real function in moto (its code runs only in moto's own Lambda modes); returns its ARN."""
    try:
        role_arn = aws.iam.get_role(RoleName="sqsloops-test-role")["Role"]["Arn"]
    except aws.iam.exceptions.NoSuchEntityException:
        role_arn = aws.iam.create_role(
            RoleName="sqsloops-test-role", AssumeRolePolicyDocument=json.dumps(_TRUST_LAMBDA)
        )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", source)
    return str(
        aws.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
    )
