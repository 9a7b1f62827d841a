"""The heartbeat against moto: a loop runs only while its token exists and carries its loop_id.

The conditional UpdateItem really runs in moto. Throttling and server errors are injected through botocore's
before-call hook on the loop's DynamoDB client; time is a FakeClock (see tests/functional/test_loop.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sqsloops.loop import TIME_LEFT, TOKEN_LOST
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import LoopHarness, server_error, throttle


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
    loops.clock.at(5, lambda: loops.tokens.delete(queue.url, token.token))

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
