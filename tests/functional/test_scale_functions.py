"""Scaling on alarm notifications, against moto: tokens are real DynamoDB items, read back after each step."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from scale import lambda_function as scale_app
from sqsloops.alarm_scaling import AlarmScaling, ScaleResult
from sqsloops.fleet import Fleet
from sqsloops.registry import QueueConfig, Registry
from sqsloops.restart import reconcile
from sqsloops.settings import Settings
from sqsloops.tokens import Token, Tokens, slot_name
from tests import conftest
from tests.conftest import REGION, Clients
from tests.fixtures.fakes import RecordingLauncher
from tests.fixtures.loop_kit import FreeSlotTokens
from tests.functional.scaling_helpers import Turnstile, deploy_for_functions, loop_ids

EVENTS = Path(__file__).resolve().parents[2] / "events"
HEARTBEAT_S = 10.0


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@dataclass
class World:
    aws: Clients
    settings: Settings
    queue: conftest.TestQueue
    registry: Registry
    tokens: Tokens
    launcher: RecordingLauncher
    scaling: AlarmScaling

    def register(self, **overrides: Any) -> QueueConfig:
        return self.registry.create(QueueConfig(queue_url=self.queue.url, handler="lambda:worker", **overrides))

    def send(self, count: int) -> None:
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageBody": f"job {start + i}"} for i in range(min(10, count - start))]
            self.aws.sqs.send_message_batch(QueueUrl=self.queue.url, Entries=entries)

    def receive(self, count: int) -> None:
        """Take `count` messages in flight, as busy loops would."""
        taken = 0
        while taken < count:
            got = self.aws.sqs.receive_message(
                QueueUrl=self.queue.url, MaxNumberOfMessages=min(10, count - taken), VisibilityTimeout=300
            ).get("Messages", [])
            assert got, "queue ran dry"
            taken += len(got)

    def stored(self) -> list[Token]:
        return self.tokens.list(self.queue.url)

    def add_tokens(self, count: int) -> list[Token]:
        return [token for slot in range(count) if (token := self.tokens.create(self.queue.url, slot=slot))]

    def token_ids(self) -> set[str]:
        """The token ids in the table now, read with a client outside any race."""
        items = self.aws.dynamodb.query(
            TableName=self.settings.loops_table,
            KeyConditionExpression="queue_url = :q",
            ExpressionAttributeValues={":q": {"S": self.queue.url}},
            ConsistentRead=True,
        )["Items"]
        return {item["token"]["S"] for item in items}

    def racing_scale_ups(self, count: int) -> tuple[list[ScaleResult], list[set[str]]]:
        """`count` alarm notifications handled at once, each having read the table before any writes.

        Returns their results and the token ids in the table after every write any of them made.
        """
        seen: list[set[str]] = []
        turnstile = Turnstile(
            count,
            meet_before="PutItem",
            after_each=lambda op: seen.append(self.token_ids()) if op == "PutItem" else None,
        )
        results: list[ScaleResult] = []

        def handle() -> None:
            dynamodb = turnstile.attach(boto3.client("dynamodb", region_name=REGION))
            tokens = Tokens(table_name=self.settings.loops_table, dynamodb=dynamodb)
            registry = Registry(table_name=self.settings.queues_table, dynamodb=dynamodb)
            scaling = AlarmScaling(
                registry=registry,
                sqs=self.aws.sqs,
                fleet=Fleet(tokens=tokens, launcher=self.launcher, heartbeat_s=HEARTBEAT_S),
            )
            results.extend(scaling.on_event(event("alarm_scale_up.json"), up=True))

        threads = [threading.Thread(target=handle) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert len(results) == count, "a racing scale-up failed"
        return results, seen


@pytest.fixture
def world(aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue]) -> World:
    queue = make_queue("work")  # the queue the events/alarm_*.json samples are about
    tokens = FreeSlotTokens(table_name=settings.loops_table, dynamodb=aws.dynamodb)
    registry = Registry(table_name=settings.queues_table, dynamodb=aws.dynamodb)
    launcher = RecordingLauncher()
    scaling = AlarmScaling(
        registry=registry, sqs=aws.sqs, fleet=Fleet(tokens=tokens, launcher=launcher, heartbeat_s=HEARTBEAT_S)
    )
    return World(aws, settings, queue, registry, tokens, launcher, scaling)


def scale_up(world: World) -> list[dict[str, Any]]:
    return [r.as_dict() for r in world.scaling.on_event(event("alarm_scale_up.json"), up=True)]


def scale_down(world: World, name: str = "alarm_scale_down.json") -> list[dict[str, Any]]:
    return [r.as_dict() for r in world.scaling.on_event(event(name), up=False)]


# --- scale-up ---------------------------------------------------------------------------------------------------


def test_scale_from_zero_an_alarm_starts_the_loops_the_backlog_needs(world: World) -> None:
    # Given a queue that may idle at zero loops, with none running, and 25 messages waiting
    world.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    world.send(25)

    # When its depth alarm goes to ALARM
    [result] = scale_up(world)

    # Then three tokens exist, and exactly their loops were started
    stored = world.stored()
    assert len(stored) == 3
    assert loop_ids(world.launcher.started) == loop_ids(stored)
    assert result["action"] == "scaled"
    assert (result["before"], result["after"], result["desired"]) == (0, 3, 3)


def test_scale_up_stops_at_max_loops_and_a_repeated_alarm_adds_nothing(world: World) -> None:
    # Given a queue capped at 2 loops and a backlog worth 5
    world.register(max_loops=2, backlog_per_loop=10)
    world.send(50)

    # When the alarm fires, and its notification arrives twice
    scale_up(world)
    first = loop_ids(world.stored())
    scale_up(world)

    # Then 2 loops run, the same ones, each started once
    assert len(first) == 2
    assert loop_ids(world.stored()) == first
    assert loop_ids(world.launcher.started) == first
    assert len(world.launcher.started) == 2


def test_scale_up_never_scales_down(world: World) -> None:
    # Given 5 loops and a backlog that needs just 1
    world.register(max_loops=10, backlog_per_loop=10)
    existing = loop_ids(world.add_tokens(5))
    world.send(3)

    # When an alarm notification arrives
    scale_up(world)

    # Then all 5 loops are still there
    assert loop_ids(world.stored()) == existing
    assert world.launcher.started == []


def test_concurrent_scale_ups_never_hold_more_than_max_loops_at_any_moment(world: World) -> None:
    # Given a queue whose backlog calls for 3 loops (its max), and six notifications handled at once
    # (several alarms cross together), each having counted 0 loops before any adds one
    world.register(max_loops=3, backlog_per_loop=10)
    world.send(30)

    # When they all scale up
    results, seen = world.racing_scale_ups(6)

    # Then the table never held more than slots 0-2, each slot's loop was started exactly once, by whoever created it
    slots = {slot_name(s) for s in range(3)}
    assert set().union(*seen) <= slots
    assert max(len(ids) for ids in seen) == 3
    assert world.token_ids() == slots
    assert loop_ids(world.launcher.started) == loop_ids(world.stored())
    assert len(world.launcher.started) == 3
    assert sum(r.change.lost_races for r in results if r.change) == 6 * 3 - 3


def test_with_max_loops_1_racing_scale_ups_only_ever_make_one_token(world: World) -> None:
    # Given a queue whose concurrency must stay at exactly 1, a backlog, and eight notifications handled at once
    world.register(min_loops=0, max_loops=1, backlog_per_loop=10)
    world.send(50)

    # When they all scale up
    results, seen = world.racing_scale_ups(8)

    # Then exactly one token ever existed, slot-0000, and exactly one loop was started
    assert {frozenset(ids) for ids in seen} == {frozenset({"slot-0000"})}
    assert [t.slot for t in world.launcher.started] == ["slot-0000"]
    assert loop_ids(world.launcher.started) == loop_ids(world.stored())
    assert sorted(r.change.started for r in results if r.change) == [0] * 7 + [1]


def test_racing_convergences_never_exceed_the_highest_desired_count(world: World) -> None:
    # Given five convergences to 1, 2, 3, 4 and 2 loops at once, each having counted 0 loops before any adds one
    world.register(max_loops=10)
    seen: list[set[str]] = []
    turnstile = Turnstile(5, meet_before="PutItem", after_each=lambda op: seen.append(world.token_ids()))

    def converge(desired: int) -> None:
        tokens = Tokens(
            table_name=world.settings.loops_table,
            dynamodb=turnstile.attach(boto3.client("dynamodb", region_name=REGION)),
        )
        fleet = Fleet(tokens=tokens, launcher=world.launcher, heartbeat_s=HEARTBEAT_S)
        fleet.converge(world.queue.url, desired, max_loops=10, visibility_timeout_s=30)

    threads = [threading.Thread(target=converge, args=(desired,)) for desired in (1, 2, 3, 4, 2)]

    # When they all run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then the table only ever held slots below 4, and ends with those 4, each started once
    assert set().union(*seen) <= {slot_name(s) for s in range(4)}
    assert world.token_ids() == {slot_name(s) for s in range(4)}
    assert sorted(t.slot for t in world.launcher.started) == sorted(world.token_ids())


# --- scale-down -------------------------------------------------------------------------------------------------


def test_alarm_to_ok_scales_down_to_what_the_backlog_needs_keeping_the_oldest_loops(world: World) -> None:
    # Given 5 loops and a queue that has drained to 15 visible messages
    world.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    oldest = world.add_tokens(5)[:2]
    world.send(15)

    # When an alarm goes from ALARM to OK
    [result] = scale_down(world)

    # Then the 2 oldest loops remain
    assert loop_ids(world.stored()) == loop_ids(oldest)
    assert (result["before"], result["after"], result["stopped"]) == (5, 2, 3)


def test_scale_down_never_goes_below_min_loops(world: World) -> None:
    # Given 5 loops, a minimum of 2 and an empty queue
    world.register(min_loops=2, max_loops=10, backlog_per_loop=10)
    world.add_tokens(5)

    # When the last alarm goes from ALARM to OK
    scale_down(world)

    # Then 2 loops remain
    assert len(world.stored()) == 2


def test_scale_down_keeps_loops_for_messages_in_flight(world: World) -> None:
    # Given 5 loops busy with 30 in-flight messages, nothing visible
    world.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    world.add_tokens(5)
    world.send(30)
    world.receive(30)

    # When the alarm goes from ALARM to OK (visible dropped to 0)
    scale_down(world)

    # Then the 3 loops the in-flight work needs keep running
    assert len(world.stored()) == 3


def test_ok_after_insufficient_data_does_nothing(world: World) -> None:
    # Given 5 loops and an empty queue
    world.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    existing = loop_ids(world.add_tokens(5))

    # When an alarm goes from INSUFFICIENT_DATA to OK (a new alarm's first evaluation)
    [result] = scale_down(world, "alarm_insufficient.json")

    # Then no loop is stopped
    assert loop_ids(world.stored()) == existing
    assert result["action"] == "ignored"


def test_scale_down_ignores_an_alarm_transition(world: World) -> None:
    world.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    existing = loop_ids(world.add_tokens(3))

    [result] = scale_down(world, "alarm_scale_up.json")

    assert result["action"] == "ignored"
    assert loop_ids(world.stored()) == existing


# --- registrations that do not allow scaling --------------------------------------------------------------------


def test_an_unregistered_queue_is_left_alone(world: World) -> None:
    # Given a backlog on a queue nobody registered
    world.send(20)

    # When its alarm notifications arrive
    [up] = scale_up(world)
    [down] = scale_down(world)

    # Then nothing starts
    assert (up["action"], down["action"]) == ("ignored", "ignored")
    assert world.stored() == []
    assert world.launcher.started == []


def test_a_disabled_queue_is_scaled_to_zero_by_any_notification(world: World) -> None:
    # Given a disabled registration that still has 3 loops, and a backlog
    world.register(max_loops=10, backlog_per_loop=10, enabled=False)
    world.add_tokens(3)
    world.send(50)

    # When an ALARM notification arrives
    scale_up(world)

    # Then its loops are stopped, and none started
    assert world.stored() == []
    assert world.launcher.started == []


def test_a_malformed_notification_is_logged_and_ignored(world: World) -> None:
    world.register(max_loops=10, backlog_per_loop=10)
    bad = event("alarm_scale_up.json")
    bad["Records"][0]["Sns"]["Message"] = "this is not an alarm"

    [result] = world.scaling.on_event(bad, up=True)

    assert result.action == "ignored"
    assert world.stored() == []


# --- a persisting ALARM keeps converging through the restart reconcile -------------------------------------------


def test_an_alarm_that_stays_in_alarm_is_followed_by_reconcile_when_max_is_raised(world: World) -> None:
    # Given an alarm that scaled a queue to its max of 2 and stays in ALARM (no further notification)
    config = world.register(max_loops=2, backlog_per_loop=10)
    world.send(50)
    scale_up(world)

    # When the registration raises max_loops to 4, and the restart function reconciles
    world.registry.update(replace(config, max_loops=4))
    reconcile(
        registry=world.registry,
        sqs=world.aws.sqs,
        fleet=Fleet(tokens=world.tokens, launcher=world.launcher, heartbeat_s=HEARTBEAT_S),
    )

    # Then 4 loops run, every one of them started
    assert len(world.stored()) == 4
    assert loop_ids(world.launcher.started) == loop_ids(world.stored())


def test_an_alarm_that_stays_in_alarm_is_followed_by_reconcile_when_the_backlog_grows(world: World) -> None:
    # Given an alarm that scaled a queue to 2 loops for 15 messages
    world.register(max_loops=10, backlog_per_loop=10)
    world.send(15)
    scale_up(world)
    assert len(world.stored()) == 2

    # When 30 more messages arrive while the alarm stays in ALARM, and the restart function reconciles
    world.send(30)
    reconcile(
        registry=world.registry,
        sqs=world.aws.sqs,
        fleet=Fleet(tokens=world.tokens, launcher=world.launcher, heartbeat_s=HEARTBEAT_S),
    )

    # Then 5 loops run
    assert len(world.stored()) == 5


# --- the function adapters, with the real Launcher invoking a (moto) process function -----------------------------


@pytest.fixture
def deployed(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The functions' environment as the template sets it, and a process function moto invokes without Docker."""
    deploy_for_functions(world.aws, world.settings, monkeypatch)
    scale_app.root.cache_clear()
    yield world
    scale_app.root.cache_clear()


def test_scale_up_function_starts_loops_from_an_sns_alarm_event(deployed: World) -> None:
    deployed.register(min_loops=0, max_loops=10, backlog_per_loop=10)
    deployed.send(12)

    response = scale_app.scale_up(event("alarm_scale_up.json"), None)

    assert len(deployed.stored()) == 2
    assert response["results"][0]["started"] == 2  # the process function accepted both Event invokes


def test_scale_down_function_stops_surplus_loops_from_an_sns_ok_event(deployed: World) -> None:
    deployed.register(min_loops=1, max_loops=10, backlog_per_loop=10)
    deployed.add_tokens(4)

    response = scale_app.scale_down(event("alarm_scale_down.json"), None)

    assert len(deployed.stored()) == 1
    assert response["results"][0]["stopped"] == 3


def test_scale_functions_return_normally_on_a_message_they_cannot_use(deployed: World) -> None:
    response = scale_app.scale_up({"Records": [{"Sns": {"Message": "{"}}]}, None)

    assert response["results"][0]["action"] == "ignored"
