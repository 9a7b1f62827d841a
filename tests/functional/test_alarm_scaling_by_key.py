"""Alarm scaling reads the alarm's registration by key, and one bad record never stops the others (moto).

Requests are counted with botocore's event hooks on the very client the registry uses: a notification must make no
Scan of the Queues table, however many queues are registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scale import lambda_function as scale_app
from sqsloops.alarm_scaling import AlarmScaling, queue_hash
from sqsloops.fleet import Fleet
from sqsloops.registry import QueueConfig, Registry
from sqsloops.root import Root
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens
from tests import conftest
from tests.conftest import Clients
from tests.fixtures.fakes import RecordingLauncher

EVENTS = Path(__file__).resolve().parents[2] / "events"
HEARTBEAT_S = 10.0


def record(queue_url: str, **changes: Any) -> dict[str, Any]:
    """One SNS record of a depth alarm entering ALARM for `queue_url`, named and described as Alarms puts them."""
    sample = json.loads((EVENTS / "alarm_scale_up.json").read_text())["Records"][0]
    body = json.loads(sample["Sns"]["Message"])
    name = queue_url.rsplit("/", 1)[-1]
    body["AlarmName"] = f"sqsloops-test-{name}-{queue_hash(queue_url)}-depth-1"
    body["AlarmDescription"] = f"sqsloops: 1 loop(s) wanted when more than 0 messages are visible in {queue_url}"
    body["Trigger"]["Dimensions"] = [{"value": name, "name": "QueueName"}]
    body.update(changes)
    sample["Sns"]["Message"] = json.dumps(body)
    return dict(sample)


class Requests:
    """The DynamoDB operations a client made, by name (botocore's before-call hook)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.dynamodb.*", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.fixture
def root(aws: Clients, settings: Settings) -> Root:
    return Root(settings, clients=aws, launcher=RecordingLauncher())


def register(aws: Clients, settings: Settings, queue_url: str, **options: Any) -> QueueConfig:
    registry = Registry(table_name=settings.queues_table, dynamodb=aws.dynamodb)
    return registry.create(QueueConfig(queue_url=queue_url, handler="lambda:worker", **options))


def loops(aws: Clients, settings: Settings, queue_url: str) -> int:
    return len(Tokens(table_name=settings.loops_table, dynamodb=aws.dynamodb).list(queue_url))


def test_an_alarm_notification_gets_its_registration_by_key_and_never_scans(
    aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue], root: Root
) -> None:
    # Given many registered queues, one of them with a backlog
    queues = [make_queue(f"q{i}") for i in range(12)]
    for queue in queues:
        register(aws, settings, queue.url, max_loops=3, backlog_per_loop=10)
    target = queues[7]
    aws.sqs.send_message_batch(QueueUrl=target.url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
    requests = Requests(aws.dynamodb)

    # When its alarm notification is handled
    response = scale_app.handle({"Records": [record(target.url)]}, None, lambda: root, up=True)

    # Then its loop is started, and the registration was read by key: no Scan at all
    assert response["results"][0]["action"] == "scaled", response
    assert loops(aws, settings, target.url) == 1
    assert "Scan" not in requests.names
    assert requests.names.count("GetItem") == 1


def test_an_alarm_of_an_unregistered_queue_is_ignored_without_a_scan(
    aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue], root: Root
) -> None:
    register(aws, settings, make_queue("other").url)
    requests = Requests(aws.dynamodb)

    response = scale_app.handle({"Records": [record(make_queue("stranger").url)]}, None, lambda: root, up=True)

    assert response["results"][0]["reason"] == "queue is not registered"
    assert "Scan" not in requests.names


def test_a_registration_under_another_spelling_is_found_through_the_alarms_description(
    aws: Clients, settings: Settings
) -> None:
    # Given a registration keyed by a spelling no endpoint would produce (disabled: scaling reads no depth)
    url = "http://localhost:4566/123456789012/legacy"
    register(aws, settings, url, enabled=False)
    registry = Registry(table_name=settings.queues_table, dynamodb=aws.dynamodb)
    tokens = Tokens(table_name=settings.loops_table, dynamodb=aws.dynamodb)
    scaling = AlarmScaling(
        registry=registry, sqs=aws.sqs, fleet=Fleet(tokens=tokens, launcher=RecordingLauncher(), heartbeat_s=10)
    )

    [result] = scaling.on_event({"Records": [record(url)]}, up=True)

    assert (result.action, result.queue_url, result.reason) == ("scaled", url, "queue is disabled")


@pytest.mark.parametrize("dimensions", [7, 3.5, True, "QueueName"])
def test_a_record_whose_dimensions_are_not_a_list_is_counted_and_the_valid_alarm_beside_it_acted_on(
    aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue], root: Root, dimensions: Any
) -> None:
    queue = make_queue("work")
    register(aws, settings, queue.url, max_loops=2)
    aws.sqs.send_message(QueueUrl=queue.url, MessageBody="x")
    bad = record(queue.url)
    body = json.loads(bad["Sns"]["Message"])
    body["Trigger"]["Dimensions"] = dimensions
    bad["Sns"]["Message"] = json.dumps(body)

    response = scale_app.handle({"Records": [bad, record(queue.url)]}, None, lambda: root, up=True)

    assert response["bad_records"] == 1
    assert [r["action"] for r in response["results"]] == ["ignored", "scaled"]
    assert loops(aws, settings, queue.url) == 1


def test_an_unreadable_registration_fails_its_record_only(
    aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue], root: Root
) -> None:
    # Given a registration whose item says max_loops "ten", and a sound one, both with a backlog
    bad, good = make_queue("bad"), make_queue("good")
    register(aws, settings, bad.url)
    register(aws, settings, good.url)
    aws.dynamodb.update_item(
        TableName=settings.queues_table,
        Key={"queue_url": {"S": bad.url}},
        UpdateExpression="SET max_loops = :ten",
        ExpressionAttributeValues={":ten": {"S": "ten"}},
    )
    for queue in (bad, good):
        aws.sqs.send_message(QueueUrl=queue.url, MessageBody="x")

    # When one SNS event carries both alarms
    response = scale_app.handle({"Records": [record(bad.url), record(good.url)]}, None, lambda: root, up=True)

    # Then the bad one is an error result (logged), and the good one scaled all the same
    assert [r["action"] for r in response["results"]] == ["error", "scaled"]
    assert "cannot be read" in response["results"][0]["reason"]
    assert response["errors"] == 1
    assert loops(aws, settings, good.url) == 1
