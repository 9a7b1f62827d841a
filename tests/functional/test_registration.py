"""Registering queues against moto: everything is validated before anything is written, and failures leave nothing.

moto 5.2.5 runs a zip-packaged function only in Docker (an Event invoke returns 202 and an "error running docker"
payload), so which loops were started is recorded by a Launcher subclass; tokens, registrations and alarms are the
real items read back from moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError, NotRegisteredError
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.registry import QueueConfig
from sqsloops.restart import reconcile
from sqsloops.settings import Settings
from sqsloops.tokens import Token, slot_name
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import RecordingLauncher


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def service(aws: Clients, settings: Settings, launcher: RecordingLauncher, clock: ManualClock) -> QueueAdmin:
    # Handlers here are names only: the handler checks have tests of their own (test_register_checks.py).
    return OpsRoot(settings, clients=aws, launcher=launcher, clock=clock, check_handlers=False).admin


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("orders")


# --- reading state back ------------------------------------------------------------------------------------------


def registrations_in_table(aws: Clients, settings: Settings) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=settings.queues_table, ConsistentRead=True)["Items"]


def tokens_in_table(aws: Clients, settings: Settings) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=settings.loops_table, ConsistentRead=True)["Items"]


def live_tokens_in_table(aws: Clients, settings: Settings) -> list[dict[str, Any]]:
    """The tokens that are loops: a stopped loop's token stays, retired, until the restart sweep deletes it."""
    return [item for item in tokens_in_table(aws, settings) if not Token.from_item(item).retired]


def alarms_in_cloudwatch(aws: Clients) -> list[dict[str, Any]]:
    return aws.cloudwatch.describe_alarms()["MetricAlarms"]


def assert_nothing_written(aws: Clients, settings: Settings) -> None:
    assert registrations_in_table(aws, settings) == []
    assert tokens_in_table(aws, settings) == []
    assert alarms_in_cloudwatch(aws) == []


def fail_calls(
    client: Any, operation: str, code: str, *, when: Callable[[dict[str, Any]], bool] = lambda p: True
) -> None:
    """Make `operation` fail with `code` (an event hook on the real client; every other call reaches moto)."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        if when(params):
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)

    client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_name}.{operation}", hook)


# --- register: refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "queue_url",
    [
        "not-a-url",
        "sqs.us-east-1.amazonaws.com/123456789012/orders",
        "https://sqs.us-east-1.amazonaws.com/orders",
        "https://sqs.us-east-1.amazonaws.com/1234/orders",
        "https://sqs.us-east-1.amazonaws.com/123456789012/orders/extra",
        "https://sqs.us-east-1.amazonaws.com/123456789012/bad name",
    ],
)
def test_malformed_queue_url_is_refused_and_nothing_written(
    service: QueueAdmin, aws: Clients, settings: Settings, queue_url: str
) -> None:
    with pytest.raises(ConfigError):
        service.register(QueueConfig(queue_url=queue_url, handler="lambda:worker"))

    assert_nothing_written(aws, settings)


def test_nonexistent_queue_is_refused_and_nothing_written(
    service: QueueAdmin, aws: Clients, settings: Settings
) -> None:
    url = f"https://sqs.{REGION}.amazonaws.com/123456789012/never-created"

    with pytest.raises(ConfigError, match=f"queue does not exist: {url}"):
        service.register(QueueConfig(queue_url=url, handler="lambda:worker"))

    assert_nothing_written(aws, settings)


@pytest.mark.parametrize(
    "handler",
    [
        "",
        "worker",
        "lambda:",
        "lambda:bad name",
        "lambda:arn:aws:lambda:us-east-1:123:function:worker",
        "python:",
        "python:module_without_function",
        "python:1module:handle",
        "python:pkg.mod:not-an-identifier",
        "http://example.com/hook",
    ],
)
def test_bad_handler_is_refused_and_nothing_written(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue, handler: str
) -> None:
    with pytest.raises(ConfigError):
        service.register(QueueConfig(queue_url=queue.url, handler=handler))

    assert_nothing_written(aws, settings)


@pytest.mark.parametrize(
    "changes",
    [
        {"min_loops": 5, "max_loops": 2},
        {"min_loops": -1},
        {"max_loops": 1001},
        {"batch_size": 0},
        {"batch_size": 11},
        {"wait_s": 21},
        {"wait_s": -1},
        {"visibility_timeout_s": 43_201},
        {"backlog_per_loop": 0},
        {"backoff_base_s": 10.0, "backoff_max_s": 5.0},
        {"rate_per_s": 0.0},
        {"rate_per_s": float("nan")},
        {"handler_mode": "batch"},  # batch mode is for python: handlers only
        {"handler_mode": "sometimes"},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
def test_out_of_range_setting_is_refused_and_nothing_written(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue, changes: dict[str, Any]
) -> None:
    config = QueueConfig(queue_url=queue.url, handler="lambda:worker", **changes)

    with pytest.raises(ConfigError):
        service.register(config)

    assert_nothing_written(aws, settings)


def test_incomplete_settings_are_refused_before_anything_is_written(
    aws: Clients, settings: Settings, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    # Given settings that name the tables but not the stack's topics and process function
    tables_only = Settings(queues_table=settings.queues_table, loops_table=settings.loops_table)
    service = OpsRoot(tables_only, clients=aws, launcher=launcher).admin

    with pytest.raises(ConfigError, match="SQSLOOPS_SCALE_UP_TOPIC_ARN"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker"))

    assert_nothing_written(aws, settings)


def test_registering_twice_is_refused_and_the_first_registration_is_kept(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:first", min_loops=1))

    with pytest.raises(ConfigError, match="already registered"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:second", min_loops=3))

    assert service.registry.get(queue.url).handler == "lambda:first"
    assert len(tokens_in_table(aws, settings)) == 1


# --- register: the happy path -----------------------------------------------------------------------------------


def test_register_writes_registration_alarms_and_min_loops_started_loops(
    service: QueueAdmin, aws: Clients, settings: Settings, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    # When a queue is registered with two loops at least and five at most
    result = service.register(
        QueueConfig(queue_url=queue.url, handler="lambda:orders-worker", min_loops=2, max_loops=5, batch_size=5)
    )

    # Then the registration is stored, version 1
    stored = service.registry.get(queue.url)
    assert (stored.handler, stored.min_loops, stored.max_loops, stored.batch_size) == ("lambda:orders-worker", 2, 5, 5)
    assert stored.version == 1
    # and its alarms publish to the scale-up and scale-down topics
    alarms = alarms_in_cloudwatch(aws)
    assert sorted(a["AlarmName"] for a in alarms) == sorted(result.alarms)
    assert alarms
    assert all(a["AlarmActions"] == [settings.scale_up_topic_arn] for a in alarms)
    assert all(a["OKActions"] == [settings.scale_down_topic_arn] for a in alarms)
    # and two tokens exist, each with a loop started for it
    tokens = tokens_in_table(aws, settings)
    assert len(tokens) == 2
    assert {t["token"]["S"] for t in tokens} == {t.slot for t in launcher.started}
    assert {t["loop_id"]["S"] for t in tokens} == {t.loop_id for t in launcher.started}
    assert result.warnings == []


def test_queue_without_dead_letter_queue_is_registered_with_a_warning(
    service: QueueAdmin, aws: Clients, settings: Settings
) -> None:
    url = aws.sqs.create_queue(QueueName="no-dlq")["QueueUrl"]

    result = service.register(QueueConfig(queue_url=url, handler="lambda:worker"))

    assert service.registry.get(url).handler == "lambda:worker"
    assert len(result.warnings) == 1
    assert "no dead-letter queue" in result.warnings[0]


def test_disabled_registration_has_neither_loops_nor_alarms(
    service: QueueAdmin, aws: Clients, settings: Settings, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=2, enabled=False))

    assert service.registry.get(queue.url).enabled is False
    assert tokens_in_table(aws, settings) == []
    assert alarms_in_cloudwatch(aws) == []
    assert launcher.started == []


# --- register: undo --------------------------------------------------------------------------------------------


def test_alarm_failure_after_the_registration_was_written_leaves_nothing(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    # Given CloudWatch refuses PutMetricAlarm (say, a missing IAM permission)
    fail_calls(aws.cloudwatch, "PutMetricAlarm", "AccessDenied")

    # When a queue is registered, the original error surfaces
    with pytest.raises(ClientError, match="AccessDenied"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))

    # Then the registration written before it is gone again
    assert_nothing_written(aws, settings)


def test_token_failure_after_alarms_were_put_leaves_nothing(
    service: QueueAdmin, aws: Clients, settings: Settings, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    # Given the second token cannot be written (the first one can)
    writes: list[str] = []

    def second_token(params: dict[str, Any]) -> bool:
        if params.get("TableName") != settings.loops_table:
            return False
        writes.append(params["Item"]["token"]["S"])
        return len(writes) == 2

    fail_calls(aws.dynamodb, "PutItem", "AccessDeniedException", when=second_token)

    with pytest.raises(ClientError, match="AccessDeniedException"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=3, max_loops=4))

    # Then registration and alarms are gone, and the token already written is retired: its loop, already started,
    # stops at its next heartbeat, and its slot stays closed until then
    assert registrations_in_table(aws, settings) == []
    assert alarms_in_cloudwatch(aws) == []
    assert [Token.from_item(t).retired for t in tokens_in_table(aws, settings)] == [True]
    assert len(launcher.started) == 1


# --- deregister --------------------------------------------------------------------------------------------------


def test_deregister_removes_tokens_alarms_and_registration(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=2, max_loops=6))
    assert alarms_in_cloudwatch(aws)

    result = service.deregister(queue.url)

    assert result.tokens_retired == 2
    assert result.alarms_deleted
    assert registrations_in_table(aws, settings) == []
    assert alarms_in_cloudwatch(aws) == []
    assert live_tokens_in_table(aws, settings) == []  # retired: the restart sweep deletes them after their grace
    assert len(tokens_in_table(aws, settings)) == 2


def test_deregister_leaves_other_queues_alone(
    service: QueueAdmin, aws: Clients, settings: Settings, make_queue: Callable[..., MadeQueue]
) -> None:
    first, second = make_queue("first"), make_queue("second")
    service.register(QueueConfig(queue_url=first.url, handler="lambda:worker", min_loops=1))
    service.register(QueueConfig(queue_url=second.url, handler="lambda:worker", min_loops=1))

    service.deregister(first.url)

    assert [c.queue_url for c in service.list()] == [second.url]
    assert [t["queue_url"]["S"] for t in live_tokens_in_table(aws, settings)] == [second.url]
    assert service.alarms.names(second.url)
    assert service.alarms.names(first.url) == []


def test_deregister_unknown_queue_is_not_registered_error(service: QueueAdmin, queue: MadeQueue) -> None:
    with pytest.raises(NotRegisteredError):
        service.deregister(queue.url)


# --- scale -------------------------------------------------------------------------------------------------------


def test_scale_moves_the_token_count_up_and_down(
    service: QueueAdmin,
    aws: Clients,
    settings: Settings,
    launcher: RecordingLauncher,
    clock: ManualClock,
    queue: MadeQueue,
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))
    clock.advance(1)

    up = service.scale(queue.url, 4)
    assert (up.before, up.after, up.started) == (1, 4, 3)
    assert len(live_tokens_in_table(aws, settings)) == 4
    assert len(launcher.started) == 4

    down = service.scale(queue.url, 1)
    assert (down.before, down.after, down.stopped) == (4, 1, 3)
    remaining = live_tokens_in_table(aws, settings)
    assert [t["token"]["S"] for t in remaining] == [launcher.started[0].slot]  # the oldest loop stays


@pytest.mark.parametrize("loops", [0, 5, -1])
def test_scale_outside_min_and_max_is_refused_with_the_bounds(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue, loops: int
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))

    with pytest.raises(ConfigError, match="between min_loops 1 and max_loops 4"):
        service.scale(queue.url, loops)

    assert len(tokens_in_table(aws, settings)) == 1


def test_scale_of_a_disabled_registration_is_refused(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", enabled=False))

    with pytest.raises(ConfigError, match="disabled"):
        service.scale(queue.url, 1)

    assert tokens_in_table(aws, settings) == []


def test_scale_of_an_unknown_queue_is_not_registered_error(service: QueueAdmin, queue: MadeQueue) -> None:
    with pytest.raises(NotRegisteredError):
        service.scale(queue.url, 1)


# --- update ------------------------------------------------------------------------------------------------------


def test_update_changes_config_and_version_and_converges_into_the_new_bounds(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))

    result = service.update(queue.url, min_loops=2, batch_size=5, handler="lambda:other")

    stored = service.registry.get(queue.url)
    assert (stored.min_loops, stored.batch_size, stored.handler, stored.version) == (2, 5, "lambda:other", 2)
    assert result.config == stored
    assert len(tokens_in_table(aws, settings)) == 2


def test_update_lowering_max_stops_the_loops_above_it(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=0, max_loops=8))
    service.scale(queue.url, 6)

    service.update(queue.url, max_loops=3)

    stored = live_tokens_in_table(aws, settings)
    assert sorted(t["token"]["S"] for t in stored) == ["slot-0000", "slot-0001", "slot-0002"]
    assert len(alarms_in_cloudwatch(aws)) == len(service.alarms.names(queue.url))


def test_update_lowering_max_moves_a_loop_beyond_it_into_a_free_slot_below_it(
    service: QueueAdmin, aws: Clients, settings: Settings, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    # Given 2 loops, at slots 0 and 5 (the ones between were stopped)
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=0, max_loops=8))
    service.scale(queue.url, 6)
    for slot in range(1, 5):
        service.tokens.delete(queue.url, slot_name(slot))

    # When max_loops is lowered to 3
    result = service.update(queue.url, max_loops=3)

    # Then the loop at slot 5 is stopped, and one started at slot 1: still 2 loops, all below the new max
    assert sorted(t["token"]["S"] for t in live_tokens_in_table(aws, settings)) == ["slot-0000", "slot-0001"]
    assert launcher.started[-1].slot == "slot-0001"
    assert (result.change.before, result.change.after, result.change.stopped, result.change.started) == (2, 2, 1, 1)


def test_update_to_disabled_removes_loops_and_alarms_and_enabling_brings_them_back(
    service: QueueAdmin, aws: Clients, settings: Settings, clock: ManualClock, queue: MadeQueue
) -> None:
    config = service.register(
        QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=2, max_loops=3)
    ).config
    service.scale(queue.url, 3)  # every slot below max_loops in use

    service.update(queue.url, enabled=False)
    assert live_tokens_in_table(aws, settings) == []
    assert alarms_in_cloudwatch(aws) == []

    # Enabled again at once: alarms are back, but the stopped loops' slots (every slot below max_loops) stay closed
    # while those loops may still run
    enabled = service.update(queue.url, enabled=True)
    assert alarms_in_cloudwatch(aws)
    assert live_tokens_in_table(aws, settings) == []
    assert enabled.change.deferred == 2
    assert "not started yet" in enabled.warnings[0]

    # Once their grace has passed, the restart function's reconcile starts them
    clock.advance(service.fleet.grace_s(config.visibility_timeout_s) + 1)
    reconcile(registry=service.registry, sqs=aws.sqs, fleet=service.fleet)
    assert len(live_tokens_in_table(aws, settings)) == 2


def test_enabling_again_at_once_starts_the_loops_on_free_slots_below_max_loops(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    # Given a queue with 2 loops (max 4), disabled: slots 0 and 1 are retired, in their grace
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=2, max_loops=4))
    service.update(queue.url, enabled=False)

    # When it is enabled again at once
    enabled = service.update(queue.url, enabled=True)

    # Then its 2 loops start now, on slots 2 and 3; slots 0 and 1 stay closed
    assert (enabled.change.started, enabled.change.deferred) == (2, 0)
    assert sorted(item["token"]["S"] for item in live_tokens_in_table(aws, settings)) == ["slot-0002", "slot-0003"]
    assert enabled.warnings == []


def test_invalid_update_is_refused_and_the_registration_is_unchanged(service: QueueAdmin, queue: MadeQueue) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))

    with pytest.raises(ConfigError, match="batch_size"):
        service.update(queue.url, batch_size=11)
    with pytest.raises(ConfigError, match="min_loops"):
        service.update(queue.url, min_loops=5)
    with pytest.raises(ConfigError, match="cannot update"):
        service.update(queue.url, version=9)

    stored = service.registry.get(queue.url)
    assert (stored.batch_size, stored.min_loops, stored.version) == (10, 1, 1)


def test_update_retries_over_a_concurrent_change_and_keeps_it(
    service: QueueAdmin, aws: Clients, settings: Settings, queue: MadeQueue
) -> None:
    service.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=1, max_loops=4))
    # Given another operator changes the registration between our read and our write, once
    other = boto3.client("dynamodb", region_name=REGION)
    raced: list[bool] = []

    def concurrent_change(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == settings.queues_table and not raced:
            raced.append(True)
            current = service.registry.get(queue.url)
            changed = replace(current, batch_size=3, version=current.version + 1)
            other.put_item(TableName=settings.queues_table, Item=changed.to_item())

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.PutItem", concurrent_change)

    # When we update
    service.update(queue.url, max_loops=6)

    # Then our change is applied on top of theirs, not over it
    stored = service.registry.get(queue.url)
    assert (stored.max_loops, stored.batch_size, stored.version) == (6, 3, 3)


def test_update_of_an_unknown_queue_is_not_registered_error(service: QueueAdmin, queue: MadeQueue) -> None:
    with pytest.raises(NotRegisteredError):
        service.update(queue.url, max_loops=3)


# --- status and list ---------------------------------------------------------------------------------------------


def test_status_reports_depth_dead_letters_loops_and_counters(
    service: QueueAdmin, aws: Clients, settings: Settings, clock: ManualClock, queue: MadeQueue
) -> None:
    # Given a queue with two loops, five messages waiting and two dead letters
    service.register(
        QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=2, max_loops=8, backlog_per_loop=2)
    )
    for n in range(5):
        aws.sqs.send_message(QueueUrl=queue.url, MessageBody=json.dumps({"n": n}))
    for n in range(2):
        aws.sqs.send_message(QueueUrl=queue.dlq_url, MessageBody=json.dumps({"dead": n}))
    # and, three minutes later, only the first loop has proved itself (and counted its work)
    first, _ = service.tokens.list(queue.url)
    clock.advance(180)
    service.tokens.heartbeat(queue.url, first.slot, first.loop_id, processed=7, failed=2, invocations=3)

    (status,) = service.status(queue.url)

    assert (status.depth.visible, status.depth.in_flight, status.depth.delayed) == (5, 0, 0)  # type: ignore[union-attr]
    assert status.dlq_url == queue.dlq_url
    assert status.dlq_depth is not None
    assert status.dlq_depth.visible == 2
    assert (status.loops.running, status.loops.stale, status.loops.desired) == (1, 1, 3)
    assert (status.counters.processed, status.counters.failed, status.counters.invocations) == (7, 2, 3)
    assert status.error is None
    assert json.loads(json.dumps(status.to_dict()))["config"]["handler"] == "lambda:worker"


def test_status_of_every_queue_and_of_a_deleted_queue(
    service: QueueAdmin, aws: Clients, make_queue: Callable[..., MadeQueue]
) -> None:
    alive, deleted = make_queue("alive"), make_queue("deleted")
    service.register(QueueConfig(queue_url=alive.url, handler="lambda:worker"))
    service.register(QueueConfig(queue_url=deleted.url, handler="lambda:worker"))
    aws.sqs.delete_queue(QueueUrl=deleted.url)

    statuses = {s.queue_url: s for s in service.status()}

    assert set(statuses) == {alive.url, deleted.url}
    assert statuses[alive.url].error is None
    assert statuses[deleted.url].error == f"queue does not exist: {deleted.url}"
    assert statuses[deleted.url].depth is None
    assert statuses[deleted.url].loops.desired is None


def test_status_of_an_unknown_queue_is_not_registered_error(service: QueueAdmin, queue: MadeQueue) -> None:
    with pytest.raises(NotRegisteredError):
        service.status(queue.url)


def test_list_returns_registrations_by_queue_url(service: QueueAdmin, make_queue: Callable[..., MadeQueue]) -> None:
    b, a = make_queue("b-queue"), make_queue("a-queue")
    service.register(QueueConfig(queue_url=b.url, handler="lambda:b"))
    service.register(QueueConfig(queue_url=a.url, handler="python:jobs.a:handle", handler_mode="batch"))

    assert [(c.queue_url, c.handler) for c in service.list()] == [(a.url, "python:jobs.a:handle"), (b.url, "lambda:b")]
