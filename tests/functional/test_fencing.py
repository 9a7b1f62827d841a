"""One consumer per slot even when an event arrives twice: every invocation claims its hop before it receives.

Lambda may deliver an asynchronous event more than once, and an Invoke retried after a lost response is delivered
twice. Both copies carry the same (queue_url, token, loop_id, hop); only one can move the token from hop - 1 to hop,
the other stops without receiving. The claims really run in moto's DynamoDB; time is a FakeClock. moto's Lambda
without Docker runs no code, so a delivery is simulated by running the loop with the payload Lambda accepted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from sqsloops.errors import HopClaimedError
from sqsloops.loop import SUPERSEDED, TIME_LEFT, TOKEN_LOST, LoopResult
from sqsloops.restart import sweep
from sqsloops.settings import Settings
from sqsloops.tokens import Token, Tokens
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import LoopHarness, botocore_sleeps_on, capture_logs, fail_every_attempt, lose_responses
from tests.functional.scaling_helpers import Turnstile


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    return LoopHarness.create(aws, settings, monkeypatch, heartbeat_s=2)


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue], loops: LoopHarness) -> MadeQueue:
    made = make_queue("work")
    loops.register(made.url, max_loops=1)
    return made


@pytest.fixture
def token(loops: LoopHarness, queue: MadeQueue) -> Token:
    created = loops.tokens.create(queue.url, slot=0)
    assert created is not None
    return created


def accepted_invokes(lambda_client: Any) -> list[dict[str, Any]]:
    """The payloads of every Invoke attempt that reached moto's Lambda (what it would deliver)."""
    payloads: list[dict[str, Any]] = []

    def record(request: Any, **_: Any) -> None:
        payloads.append(json.loads(request.body))

    lambda_client.meta.events.register("before-send.lambda.Invoke", record)
    return payloads


def assert_stopped_without_receiving(result: LoopResult) -> None:
    assert (result.reason, result.recursed) == (SUPERSEDED, False)
    assert (result.processed, result.failed, result.batches) == (0, 0, 0)


def test_a_first_event_delivered_twice_runs_once(loops: LoopHarness, queue: MadeQueue, token: Token) -> None:
    # Given a loop's first event, delivered once and run
    event = token.payload()
    first = loops.run(token, payload=event, budget_s=10)
    loops.send(queue.url, "a", "b")

    # When the same event is delivered again
    with capture_logs() as logs:
        second = loops.run(token, payload=event, budget_s=10)

    # Then the second copy stops at its claim: it received nothing, handed nothing over, and said why
    assert (first.reason, first.recursed) == (TIME_LEFT, True)
    assert_stopped_without_receiving(second)
    assert loops.visible(queue.url) == 2
    assert loops.launcher.payloads == [{**event, "hop": 2}]
    assert any("delivered more than once" in m for m in logs.messages())
    item = loops.token_item(token)
    assert item is not None
    assert (item.hop, item.invocations) == (1, 1)


def test_two_copies_of_a_first_event_running_at_once_make_one_consumer(
    loops: LoopHarness, queue: MadeQueue, token: Token
) -> None:
    # Given two execution environments (their own clients) receiving the same first event at the same moment,
    # their claims racing as they would on DynamoDB (one request at a time, after both have started)
    turnstile = Turnstile(2, meet_before="UpdateItem")
    clients = [turnstile.attach(boto3.client("dynamodb", region_name=REGION)) for _ in range(2)]
    receives: list[list[str]] = [[], []]
    sqs_clients = []
    for seen in receives:
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda seen=seen, **_: seen.append("receive"))
        sqs_clients.append(sqs)
    loops.send(queue.url, *[f"job {i}" for i in range(5)])
    results: list[LoopResult | None] = [None, None]

    def deliver(i: int) -> None:
        tokens = Tokens(table_name=loops.settings.loops_table, dynamodb=clients[i], clock=loops.clock)
        results[i] = loops.run(token, payload=token.payload(), budget_s=10, tokens=tokens, sqs=sqs_clients[i])

    # When both run
    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one claimed the token and consumed; the other never received
    done = [r for r in results if r is not None]
    assert sorted(r.reason for r in done) == [SUPERSEDED, TIME_LEFT]
    winner = next(i for i, r in enumerate(results) if r is not None and r.reason == TIME_LEFT)
    loser = 1 - winner
    assert_stopped_without_receiving(results[loser])  # type: ignore[arg-type]
    assert receives[loser] == []
    assert results[winner].processed == 5  # type: ignore[union-attr]
    assert loops.launcher.payloads == [{**token.payload(), "hop": 2}]


@pytest.mark.parametrize("later_hops_ran", [False, True], ids=["before-the-next-hop", "after-the-next-hop"])
def test_a_hand_over_event_delivered_twice_runs_once(
    loops: LoopHarness, queue: MadeQueue, token: Token, later_hops_ran: bool
) -> None:
    # Given a loop that ran its first hop and handed over to hop 2, which ran (and maybe hop 3 after it)
    loops.run(token, budget_s=5)
    [hand_over] = loops.launcher.payloads
    assert hand_over["hop"] == 2
    assert loops.run(token, payload=hand_over, budget_s=5).reason == TIME_LEFT
    if later_hops_ran:
        assert loops.run(token, payload=loops.launcher.payloads[-1], budget_s=5).reason == TIME_LEFT
    started_before = len(loops.launcher.payloads)
    loops.send(queue.url, "a")

    # When the hand-over event to hop 2 is delivered again
    again = loops.run(token, payload=hand_over, budget_s=5)

    # Then that copy stops at its claim, without receiving or handing over
    assert_stopped_without_receiving(again)
    assert loops.visible(queue.url) == 1
    assert len(loops.launcher.payloads) == started_before
    item = loops.token_item(token)
    assert item is not None
    assert item.hop == (3 if later_hops_ran else 2)


def test_an_invoke_retried_after_its_first_attempt_got_through_starts_one_consumer(
    loops: LoopHarness, queue: MadeQueue, token: Token
) -> None:
    # Given Lambda accepting an Invoke whose response is then lost, so that the client sends it again
    delivered = accepted_invokes(loops.aws.lambda_)
    lost = lose_responses(loops.aws.lambda_, "lambda.Invoke")

    # When the loop is started
    loops.launcher.start(token)

    # Then Lambda accepted the same event twice ...
    assert lost == [1]
    assert delivered == [token.payload(), token.payload()]

    # ... and of the two deliveries one consumes, the other stops at its claim
    loops.send(queue.url, "a", "b")
    first = loops.run(token, payload=delivered[0], budget_s=5)
    loops.send(queue.url, "c")
    second = loops.run(token, payload=delivered[1], budget_s=5)
    assert (first.reason, first.processed) == (TIME_LEFT, 2)
    assert_stopped_without_receiving(second)
    assert loops.visible(queue.url) == 1


def test_an_invocation_outliving_its_successors_claim_stops_at_its_next_heartbeat(
    loops: LoopHarness, queue: MadeQueue, token: Token
) -> None:
    # Given hop 1 running, and hop 2 claiming the token after 5 s (an invocation that lingers after its hand-over)
    claimed: list[None] = []
    loops.clock.at(
        5,
        lambda: claimed.append(loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=2, invocation_id="hop-2")),
    )

    # When hop 1 runs on with plenty of time
    with capture_logs() as logs:
        result = loops.run(token, budget_s=600)

    # Then it stops at its next heartbeat, hands nothing over, and hop 2 keeps the token
    assert claimed == [None]
    assert (result.reason, result.recursed) == (SUPERSEDED, False)
    assert loops.clock.elapsed_s <= 5 + loops.settings.heartbeat_s + 1
    assert loops.launcher.payloads == []
    assert any("claimed by a later invocation" in m for m in logs.messages())
    item = loops.token_item(token)
    assert item is not None
    assert item.hop == 2


def test_a_claim_whose_response_was_lost_is_still_its_own(loops: LoopHarness, queue: MadeQueue, token: Token) -> None:
    # Given DynamoDB applying the claim (the first UpdateItem) but its response lost, so that the client retries it
    lost = lose_responses(loops.aws.dynamodb, "dynamodb.UpdateItem")
    loops.send(queue.url, "a")

    # When the loop runs
    result = loops.run(token, budget_s=5)

    # Then the retry, finding the hop taken by this very invocation, went on; the invocation is counted once
    assert lost == [1]
    assert (result.reason, result.recursed, result.processed) == (TIME_LEFT, True, 1)
    item = loops.token_item(token)
    assert item is not None
    assert (item.hop, item.invocations, item.processed) == (1, 1, 1)


def test_an_invocation_that_never_got_its_claim_through_hands_its_own_hop_over(
    loops: LoopHarness, queue: MadeQueue, token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB failing every write for the whole invocation, and messages waiting
    botocore_sleeps_on(loops.clock, monkeypatch)
    fail_every_attempt(loops.aws.dynamodb, "dynamodb.UpdateItem", clock=loops.clock)
    loops.send(queue.url, "a", "b")

    # When the first hop runs
    result = loops.run(token, budget_s=10)

    # Then it received nothing (its token was never proved), and handed the same hop to the next invocation, which
    # can still claim it (hop 2 could not: hop 1 was never claimed)
    assert (result.reason, result.recursed, result.batches) == (TIME_LEFT, True, 0)
    assert loops.visible(queue.url) == 2
    assert loops.launcher.payloads == [token.payload()]


def test_an_event_from_before_hops_is_the_first_hop_of_its_loop(
    loops: LoopHarness, queue: MadeQueue, aws: Clients
) -> None:
    # Given a token written before hops existed (no `hop`), and an event without one, as in flight during a deploy
    aws.dynamodb.put_item(
        TableName=loops.settings.loops_table,
        Item={
            "queue_url": {"S": queue.url},
            "token": {"S": "slot-0000"},
            "loop_id": {"S": "old-loop"},
            "created_at": {"N": repr(loops.clock.now())},
            "last_used": {"N": repr(loops.clock.now())},
        },
    )
    [token] = loops.tokens.list(queue.url)
    legacy = {"queue_url": queue.url, "token": "slot-0000", "loop_id": "old-loop"}

    # When it is delivered twice
    first = loops.run(token, payload=legacy, budget_s=5)
    second = loops.run(token, payload=legacy, budget_s=5)

    # Then the first claims hop 1 and hands over to hop 2; the second stops at its claim
    assert (first.reason, first.recursed) == (TIME_LEFT, True)
    assert loops.launcher.payloads == [{**legacy, "hop": 2}]
    assert_stopped_without_receiving(second)


def test_the_sweep_restarts_a_stale_loop_at_hop_1_and_its_old_invocations_stop(
    loops: LoopHarness, queue: MadeQueue, token: Token
) -> None:
    # Given a loop at hop 3 that went silent for longer than stale_after_s
    for hop in (1, 2, 3):
        loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=hop, invocation_id=f"hop-{hop}")
    loops.clock.advance(loops.settings.stale_after_s + 1)

    # When the restart sweep takes it over
    summary = sweep(
        tokens=loops.tokens,
        registry=loops.registry,
        launcher=loops.launcher,
        stale_after_s=loops.settings.stale_after_s,
        clock=loops.clock,
    )

    # Then the token has a fresh loop_id at hop 0, and its new loop was started at hop 1 ...
    [started] = loops.launcher.payloads
    item = loops.token_item(token)
    assert item is not None
    assert summary.started == 1
    assert (item.loop_id, item.hop) == (started["loop_id"], 0)
    assert started["hop"] == 1
    assert started["loop_id"] != token.loop_id

    # ... which claims it; while a late copy of the old loop's hop 4 stops at its claim
    assert loops.run(item, payload=started, budget_s=5).reason == TIME_LEFT
    old = loops.run(token, payload={**token.payload(), "hop": 4}, budget_s=5)
    assert (old.reason, old.recursed, old.batches) == (TOKEN_LOST, False, 0)


def test_the_next_hop_is_claimed_only_after_the_one_before(loops: LoopHarness, queue: MadeQueue, token: Token) -> None:
    # A token at hop 0 (its loop starting): hop 2 cannot skip hop 1, and hop 1 claims once
    with pytest.raises(HopClaimedError, match="the hop before never claimed it"):
        loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=2, invocation_id="b")
    loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=1, invocation_id="a")
    with pytest.raises(HopClaimedError, match="another delivery of the same event"):
        loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=1, invocation_id="a-again")

    # And the heartbeat of hop 1 holds until hop 2 claims, then fails
    loops.tokens.heartbeat(queue.url, token.slot, token.loop_id, hop=1)
    loops.tokens.claim(queue.url, token.slot, token.loop_id, hop=2, invocation_id="b")
    with pytest.raises(HopClaimedError, match="a later invocation holds it"):
        loops.tokens.heartbeat(queue.url, token.slot, token.loop_id, hop=1)


def test_a_loop_whose_every_event_is_delivered_twice_runs_each_hop_once(
    loops: LoopHarness, queue: MadeQueue, token: Token
) -> None:
    # Given a loop whose every event (the first and each hand-over) Lambda delivers twice, back to back
    pending = [token.payload(), token.payload()]
    results: list[LoopResult] = []
    with capture_logs() as logs:
        # When ten events run, each copy after the other
        while pending and len(results) < 10:
            event = pending.pop(0)
            before = len(loops.launcher.payloads)
            results.append(loops.run(token, payload=event, budget_s=3))
            pending += [event for event in loops.launcher.payloads[before:] for _ in range(2)]

    # Then every hop ran exactly once, and every repeat stopped at its claim
    ran = [r for r in results if r.reason == TIME_LEFT]
    assert len(ran) == 5
    assert [r.reason for r in results] == [TIME_LEFT, SUPERSEDED] * 5
    assert logs.with_field("found_hop") == [1, 2, 3, 4, 5]
