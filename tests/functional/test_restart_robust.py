"""The restart function against moto: no malformed item stops the sweep or reconcile, and a failed loop invocation
reported by the process function's OnFailure destination is revived at once (never a live loop's token)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from restart import lambda_function as restart_app
from sqsloops.clock import ManualClock
from sqsloops.errors import TokenLostError
from sqsloops.registry import QueueConfig, Registry
from sqsloops.restart import EVENT_AGE_EXCEEDED, RETRIES_EXHAUSTED
from sqsloops.root import Root
from sqsloops.settings import Settings
from sqsloops.tokens import Token, Tokens
from tests import conftest
from tests.conftest import Clients
from tests.fixtures.fakes import RecordingLauncher
from tests.fixtures.loop_kit import FreeSlotTokens

EVENTS = Path(__file__).resolve().parents[2] / "events"


@dataclass
class World:
    aws: Clients
    settings: Settings
    clock: ManualClock
    root: Root
    launcher: RecordingLauncher
    tokens: FreeSlotTokens
    make_queue: Callable[..., conftest.TestQueue]

    @property
    def registry(self) -> Registry:
        return self.root.registry

    def register(self, name: str, **options: Any) -> QueueConfig:
        url = self.make_queue(name).url
        return self.registry.create(QueueConfig(queue_url=url, handler="lambda:worker", **options))

    def corrupt(self, table: str, key: dict[str, Any], attribute: str, value: dict[str, Any]) -> None:
        """Overwrite one attribute as a hand edit, or a handler running in the loop's role, could."""
        self.aws.dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": value},
        )

    def run(self, event: dict[str, Any]) -> dict[str, Any]:
        return restart_app.handle(event, None, lambda: self.root)

    def token(self, queue_url: str, slot: str) -> Token:
        [found] = [t for t in self.tokens.list(queue_url, live=False) if t.slot == slot]
        return found


@pytest.fixture
def world(aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue]) -> World:
    clock = ManualClock()
    launcher = RecordingLauncher()
    root = Root(settings, clients=aws, clock=clock, launcher=launcher)
    tokens = FreeSlotTokens(table_name=settings.loops_table, dynamodb=aws.dynamodb, clock=clock)
    return World(aws, settings, clock, root, launcher, tokens, make_queue)


def schedule() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / "restart_schedule.json").read_text())
    return loaded


# --- one malformed item never stops the sweep ------------------------------------------------------------------


def test_a_token_item_with_last_used_as_text_is_counted_and_the_other_stale_tokens_restarted(world: World) -> None:
    # Given two stale tokens of a registered queue, one of whose items says last_used is text
    config = world.register("work", min_loops=2, max_loops=5)
    bad, good = world.tokens.create(config.queue_url), world.tokens.create(config.queue_url)
    assert bad is not None
    assert good is not None
    key = {"queue_url": {"S": config.queue_url}, "token": {"S": bad.slot}}
    world.corrupt(world.settings.loops_table, key, "last_used", {"S": "yesterday"})
    world.clock.advance(world.settings.stale_after_s + 1)

    # When the restart function runs on its schedule
    summary = world.run(schedule())

    # Then the readable stale token was taken over and restarted; the bad one was counted, not fatal
    assert summary["sweep"]["unreadable"] == 1
    assert summary["sweep"]["taken_over"] == 1
    assert [t.slot for t in world.launcher.started] == [good.slot]
    assert world.token(config.queue_url, good.slot).loop_id != good.loop_id


def test_a_registration_with_max_loops_ten_in_words_is_counted_and_every_other_queue_reconciled(world: World) -> None:
    # Given a registration whose item says max_loops "ten", and two sound ones that want a loop each
    broken = world.register("broken", min_loops=1)
    sound = [world.register(name, min_loops=1) for name in ("one", "two")]
    world.corrupt(world.settings.queues_table, {"queue_url": {"S": broken.queue_url}}, "max_loops", {"S": "ten"})
    stale = world.tokens.create(broken.queue_url)
    world.clock.advance(world.settings.stale_after_s + 1)

    # When the restart function runs on its schedule
    summary = world.run(schedule())

    # Then the sound queues got their loops, the unreadable one is reported, and its stale token is left alone
    assert summary["unreadable_registrations"] == 1
    assert summary["queues"][broken.queue_url]["rule"] == "unreadable"
    assert "max_loops" in summary["queues"][broken.queue_url]["error"]
    for config in sound:
        assert summary["queues"][config.queue_url]["started"] == 1
        assert len(world.tokens.list(config.queue_url)) == 1
    assert summary["sweep"]["unreadable_registration_skipped"] == 1
    assert world.token(broken.queue_url, stale.slot).loop_id == stale.loop_id


def test_a_token_whose_handling_fails_is_counted_and_the_sweep_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two stale tokens, and a take-over that fails (throttled, say) for the first one only
    config = world.register("work", min_loops=2, max_loops=5)
    first, second = world.tokens.create(config.queue_url), world.tokens.create(config.queue_url)
    assert first is not None
    assert second is not None
    world.clock.advance(world.settings.stale_after_s + 1)
    take_over = Tokens.take_over

    def failing_once(self: Tokens, stale: Token) -> Token:
        if stale.slot == first.slot:
            raise RuntimeError("throttled")
        return take_over(self, stale)

    monkeypatch.setattr(Tokens, "take_over", failing_once)

    summary = world.run(schedule())

    assert (summary["sweep"]["errors"], summary["sweep"]["started"]) == (1, 1)
    assert [t.slot for t in world.launcher.started] == [second.slot]


# --- revive: the OnFailure destination record of a failed loop invocation ---------------------------------------


FAILED_REQUEST = "e4b46cbf-b738-4aa1-8880-a18cdf61200e"


def failure_record(
    token: Token, *, hop: int, condition: str = RETRIES_EXHAUSTED, request_id: str = FAILED_REQUEST
) -> dict[str, Any]:
    """What Lambda sends the OnFailure destination for a failed asynchronous invocation (the developer guide's
    invocation record, version 1.0), for the loop payload of `token` at `hop`."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:sqsloops-test-process:$LATEST"
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": "2026-12-02T14:16:05.568Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": arn,
            "condition": condition,
            "approximateInvokeCount": 1 if condition == RETRIES_EXHAUSTED else 0,
        },
        "requestPayload": {"queue_url": token.queue_url, "token": token.slot, "loop_id": token.loop_id, "hop": hop},
    }
    if condition == RETRIES_EXHAUSTED:
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        record["responsePayload"] = {"errorMessage": "Runtime exited with error: signal: killed"}
    return record


def running_loop(world: World, *, hop: int = 1) -> Token:
    """A loop whose invocation at `hop` claimed its token, as the process function does first."""
    config = world.register("work", max_loops=2)
    token = world.tokens.create(config.queue_url)
    assert token is not None
    for claimed in range(1, hop + 1):
        world.tokens.claim(token.queue_url, token.slot, token.loop_id, hop=claimed, invocation_id=f"i{claimed}")
    return world.token(token.queue_url, token.slot)


def test_a_crashed_invocation_is_revived_at_once_and_its_old_hand_over_is_fenced_off(world: World) -> None:
    # Given a loop whose hop-3 invocation claimed its token and then died (its token is far from stale)
    crashed = running_loop(world, hop=3)

    # When Lambda sends its failure record to the restart function
    response = world.run(failure_record(crashed, hop=3))

    # Then the token carries a new loop_id and that loop was started, hop 1 of its own
    revived = world.token(crashed.queue_url, crashed.slot)
    assert response["revival"]["outcome"] == "revived"
    assert revived.loop_id == response["revival"]["new_loop_id"] != crashed.loop_id
    assert [(t.loop_id, t.payload()["hop"]) for t in world.launcher.started] == [(revived.loop_id, 1)]
    # And a hand-over the dead invocation sent (hop 4 of the old loop_id) can no longer claim the token
    with pytest.raises(TokenLostError):
        world.tokens.claim(crashed.queue_url, crashed.slot, crashed.loop_id, hop=4, invocation_id="late")


def test_an_event_that_aged_out_before_running_is_revived(world: World) -> None:
    # Given a hand-over (hop 2) that waited past its maximum age: the token is still at hop 1
    waiting = running_loop(world, hop=1)

    response = world.run(failure_record(waiting, hop=2, condition=EVENT_AGE_EXCEEDED))

    assert response["revival"]["outcome"] == "revived"
    assert world.token(waiting.queue_url, waiting.slot).loop_id != waiting.loop_id


def test_a_failed_invocation_of_a_hop_another_invocation_claimed_leaves_the_claimant_alone(world: World) -> None:
    # Given hop 2 was invoked twice (a retried Invoke whose first attempt went through): request B claimed it
    config = world.register("work", max_loops=2)
    token = world.tokens.create(config.queue_url)
    assert token is not None
    world.tokens.claim(token.queue_url, token.slot, token.loop_id, hop=1, invocation_id="i1", request_id="request-a")
    world.tokens.claim(token.queue_url, token.slot, token.loop_id, hop=2, invocation_id="i2", request_id="request-b")
    live = world.token(token.queue_url, token.slot)
    assert live.claimed_request == "request-b"

    # When the other copy (request C) crashes before its claim and Lambda reports it
    response = world.run(failure_record(live, hop=2, request_id="request-c"))

    # Then the claimant runs on: nothing is taken over or started
    assert response["revival"]["outcome"] == "alive"
    assert world.token(live.queue_url, live.slot) == live
    assert world.launcher.started == []
    # But a failure of the claimant itself is revived
    assert world.run(failure_record(live, hop=2, request_id="request-b"))["revival"]["outcome"] == "revived"


def test_a_failed_invocation_whose_loop_handed_over_first_leaves_the_live_loop_alone(world: World) -> None:
    # Given hop 2 failed after handing over, and hop 3 has claimed the token and runs
    live = running_loop(world, hop=3)

    response = world.run(failure_record(live, hop=2))

    assert response["revival"]["outcome"] == "alive"
    assert world.token(live.queue_url, live.slot) == live
    assert world.launcher.started == []


@pytest.mark.parametrize("change", ["retired", "taken_over", "disabled", "deregistered"])
def test_a_token_no_longer_that_loops_or_a_queue_that_wants_no_loop_is_not_revived(world: World, change: str) -> None:
    crashed = running_loop(world, hop=1)
    if change == "retired":
        world.tokens.retire(crashed.queue_url, crashed.slot, grace_s=60)
    elif change == "taken_over":
        world.tokens.take_over(crashed)
    elif change == "disabled":
        config = world.registry.get(crashed.queue_url)
        world.registry.update(QueueConfig(**{**config.__dict__, "enabled": False}))
    else:
        world.registry.delete(crashed.queue_url)
    before = world.token(crashed.queue_url, crashed.slot)

    response = world.run(failure_record(crashed, hop=1))

    expected = {"retired": "retired", "taken_over": "gone", "disabled": "inactive", "deregistered": "not_registered"}
    assert response["revival"]["outcome"] == expected[change]
    assert world.token(crashed.queue_url, crashed.slot) == before
    assert world.launcher.started == []


@pytest.mark.parametrize(
    "payload",
    [None, "loop", {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work"}, {"check_handler": "x"}],
)
def test_a_destination_record_without_a_loop_payload_is_reported_not_raised(world: World, payload: Any) -> None:
    record = {"version": "1.0", "requestContext": {"condition": RETRIES_EXHAUSTED}, "requestPayload": payload}

    response = world.run(record)

    assert response["revival"]["outcome"] == "malformed"
    assert world.launcher.started == []
