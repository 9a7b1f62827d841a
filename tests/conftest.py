"""Shared fixtures: moto in-process, the stack's tables, queues with dead-letter queues."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

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


@dataclass
class Clients:
    dynamodb: Any
    sqs: Any
    lambda_: Any
    cloudwatch: Any
    sns: Any
    iam: Any


@pytest.fixture
def aws() -> Iterator[Clients]:
    with mock_aws():
        yield Clients(
            dynamodb=boto3.client("dynamodb", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
            lambda_=boto3.client("lambda", region_name=REGION),
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            sns=boto3.client("sns", region_name=REGION),
            iam=boto3.client("iam", region_name=REGION),
        )


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
