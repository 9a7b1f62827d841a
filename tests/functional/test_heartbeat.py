"""The heartbeat against moto: a loop runs only while its token exists and carries its loop_id.

Also a token's creation: only in a free slot, so two creators of one slot never both start a loop.
The conditional writes really run in moto. Throttling and server errors are injected through botocore's
before-call hook on the loop's DynamoDB client; time is a FakeClock (see tests/functional/test_loop.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sqsloops.loop import TIME_LEFT, TOKEN_LOST
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import LoopHarness, lose_responses, server_error, throttle


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    return LoopHarness.create(aws, settings, monkeypatch, heartbeat_s=2)


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue], loops: LoopHarness) -> MadeQueue:
    made = make_queue("work")
    loops.register(made.url)
    return made


def test_a_loop_holding_its_token_keeps_going_and_proves_it(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a loop's token, created at the start of the clock
    token = loops.tokens.create(queue.url)
    loops.send(queue.url, "a", "b", "c")

    # When the loop runs for 20 s, heartbeating every 2 s
    result = loops.run(token, budget_s=20)

    # Then it ran to its time limit and handed over; the token shows it was alive until the end, with its counts
    assert (result.reason, result.recursed) == (TIME_LEFT, True)
    item = loops.token_item(token)
    assert item is not None
    assert item.last_used >= token.last_used + 19  # the final heartbeat, at the reserve
    assert (item.processed, item.invocations) == (3, 1)


def test_a_deleted_token_stops_the_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a running loop whose token is deleted (scaled down) after 5 s
    token = loops.tokens.create(queue.url)
    loops.clock.at(5, lambda: loops.tokens.delete(queue.url, token.slot))

    # When the loop runs with plenty of time
    result = loops.run(token, budget_s=600)

    # Then it stops at its next heartbeat, without handing over
    assert (result.reason, result.recursed) == (TOKEN_LOST, False)
    assert loops.clock.elapsed_s <= 5 + loops.settings.heartbeat_s + 1
    assert loops.launcher.started == []


def test_a_token_taken_over_stops_the_old_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a running loop whose token the restart sweep takes over (a fresh loop_id) after 5 s
    token = loops.tokens.create(queue.url)
    taken: list[str] = []
    loops.clock.at(5, lambda: taken.append(loops.tokens.take_over(loops.token_item(token)).loop_id))  # type: ignore[arg-type]

    # When the old loop runs on
    result = loops.run(token, budget_s=600)

    # Then it stops without handing over, and the token still belongs to the new loop
    assert (result.reason, result.recursed) == (TOKEN_LOST, False)
    assert loops.launcher.started == []
    item = loops.token_item(token)
    assert item is not None
    assert item.loop_id == taken[0] != token.loop_id


@pytest.mark.parametrize("inject", [throttle, server_error], ids=["throttling", "5xx"])
def test_a_failing_heartbeat_write_is_retried_and_never_stops_the_loop(
    loops: LoopHarness, queue: MadeQueue, inject: Callable[..., list[str]]
) -> None:
    # Given a token, and DynamoDB failing the next 8 heartbeat writes (more than one heartbeat's retries)
    token = loops.tokens.create(queue.url)
    loops.send(queue.url, "a")
    injected = inject(loops.aws.dynamodb, "dynamodb.UpdateItem", times=8)

    # When the loop runs
    result = loops.run(token, budget_s=20)

    # Then the loop carried on, the heartbeat got through in the end, and no count was lost
    assert len(injected) == 8
    assert (result.reason, result.recursed) == (TIME_LEFT, True)
    item = loops.token_item(token)
    assert item is not None
    assert item.last_used >= token.last_used + 19  # the final heartbeat, at the reserve
    assert (item.processed, item.invocations) == (1, 1)


def test_a_loop_that_cannot_prove_its_token_stops_receiving_until_it_can(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a running loop (heartbeat every 2 s) whose heartbeat writes fail from 5 s to 35 s, and two messages
    # sent at 10 s, once its last proof is more than two heartbeat periods old
    token = loops.tokens.create(queue.url)
    failing = lambda: 5 <= loops.clock.monotonic() < 35  # noqa: E731
    server_error(loops.aws.dynamodb, "dynamodb.UpdateItem", times=10**6, when=failing)
    seen: dict[str, int] = {}
    loops.clock.at(10, lambda: loops.send(queue.url, "a", "b"))
    loops.clock.at(30, lambda: seen.setdefault("visible_while_unproven", loops.visible(queue.url)))

    # When the loop runs for 60 s
    result = loops.run(token, budget_s=60)

    # Then while unproven it received nothing (both still visible at 30 s), it did not stop, and once a heartbeat
    # got through it processed them and handed over
    assert seen == {"visible_while_unproven": 2}
    assert (result.reason, result.recursed) == (TIME_LEFT, True)
    assert result.processed == 2
    assert loops.visible(queue.url) == 0


# --- creating a token in its slot -------------------------------------------------------------------------------


def test_a_token_is_created_only_in_a_free_slot(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given slot 1 of a queue taken
    tokens = Tokens(table_name=loops.settings.loops_table, dynamodb=loops.aws.dynamodb, clock=loops.clock)
    first = tokens.create(queue.url, slot=1)

    # When another creator tries slot 1, then slot 0
    again = tokens.create(queue.url, slot=1)
    other = tokens.create(queue.url, slot=0)

    # Then slot 1 is refused and keeps the first token; slot 0 is created, used now
    assert first is not None
    assert again is None
    assert other is not None
    assert [t.slot for t in loops.tokens.list(queue.url)] == ["slot-0000", "slot-0001"]
    assert loops.token_item(first) == first
    assert other.last_used == other.created_at == loops.clock.now()


def test_a_create_retried_after_a_lost_response_is_still_its_own(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given DynamoDB writing the first PutItem but its response lost, so that the client retries it
    lost = lose_responses(loops.aws.dynamodb, "dynamodb.PutItem")
    tokens = Tokens(table_name=loops.settings.loops_table, dynamodb=loops.aws.dynamodb, clock=loops.clock)

    # When a token is created in slot 0 (the retry finds the slot taken, by itself)
    token = tokens.create(queue.url, slot=0)

    # Then the creator knows the token is its own, so it starts the loop
    assert lost == [1]
    assert token is not None
    assert loops.token_item(token) == token
