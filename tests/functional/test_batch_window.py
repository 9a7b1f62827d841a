"""A batching window (QueueConfig.batch_window_s) against moto: after a partial receive the loop gathers more, up to
a full batch (which may be larger than 10), and dispatches it once; the window never outlives the reserve or the
next heartbeat, and messages gathered early stay hidden until the batch is settled.

Time is a FakeClock (it passes while the loop sleeps); messages arrive through clock.at, while the loop waits.
Registrations use wait_s 0, so moto never long-polls in real time. Batches are observed as the loop hands them to
the real dispatcher; receives as the loop sends them to moto.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sqsloops import dispatch
from sqsloops.dispatch import Dispatcher, Dispatchers, Outcome, Record, core_kinds
from sqsloops.loop import TIME_LEFT
from sqsloops.registry import QueueConfig
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock
from tests.fixtures.loop_kit import LoopHarness, create_function

BATCH_HANDLER = "python:tests.fixtures.handlers:report_failures_by_body"  # succeeds unless a body starts with "fail"
WORKER = "orders-worker"
VISIBILITY_TIMEOUT_S = 30


@dataclass
class Batch:
    at_s: float
    bodies: list[str]
    receives_before: int  # receives the loop had sent when it dispatched this batch


class Observed:
    """Sees each batch a loop dispatches (then lets the real dispatcher run it), and each receive it sends."""

    def __init__(self, loops: LoopHarness) -> None:
        self.batches: list[Batch] = []
        self.receives: list[dict[str, Any]] = []
        clock, batches, receives = loops.clock, self.batches, self.receives

        class Recording(Dispatcher):
            def __init__(self, real: Dispatcher) -> None:
                self._real = real

            def dispatch(self, records: list[Record]) -> Outcome:
                batches.append(Batch(clock.monotonic(), [r["body"] for r in records], receives_before=len(receives)))
                return self._real.dispatch(records)

        class RecordingDispatchers(Dispatchers):
            def for_config(self, config: QueueConfig) -> Dispatcher:
                return Recording(super().for_config(config))

        loops.dispatchers = RecordingDispatchers(kinds=core_kinds(loops.aws.lambda_))

        def receive(params: dict[str, Any], **_: Any) -> None:
            self.receives.append({**params, "at_s": clock.monotonic()})

        loops.aws.sqs.meta.events.register("provide-client-params.sqs.ReceiveMessage", receive)

    @property
    def sizes(self) -> list[int]:
        return [len(b.bodies) for b in self.batches]


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    return LoopHarness.create(aws, settings, monkeypatch)


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("work")


def register(loops: LoopHarness, queue: MadeQueue, handler: str = BATCH_HANDLER, **options: Any) -> QueueConfig:
    mode = {"handler_mode": "batch"} if handler.startswith("python:") else {}
    return loops.register(queue.url, handler, visibility_timeout_s=VISIBILITY_TIMEOUT_S, **{**mode, **options})


def send_at(clock: FakeClock, loops: LoopHarness, queue: MadeQueue, at_s: float, *bodies: str) -> None:
    clock.at(at_s, lambda: loops.send(queue.url, *bodies))


def bodies(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


# --- gathering ---------------------------------------------------------------------------------------------------


def test_a_partial_receive_waits_for_more_until_the_batch_is_full(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a 5 s window over batches of 10, 3 messages now and 7 more 2 s later
    register(loops, queue, batch_size=10, batch_window_s=5)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 3))
    send_at(loops.clock, loops, queue, 2, *bodies("b", 7))

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=8)

    # Then the 10 went in one batch, dispatched within the window, and all were deleted
    assert seen.sizes == [10]
    assert sorted(seen.batches[0].bodies) == sorted(bodies("a", 3) + bodies("b", 7))
    assert seen.batches[0].at_s <= 5
    assert (result.processed, loops.depth(queue.url)) == (10, 0)


def test_a_full_receive_is_dispatched_at_once(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a 5 s window over batches of 10 and 10 messages waiting
    register(loops, queue, batch_size=10, batch_window_s=5)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 10))

    # When a loop runs
    loops.run(loops.tokens.create(queue.url), budget_s=3)

    # Then the batch went at once, after one receive: the window only waits for a batch that is not full
    assert seen.sizes == [10]
    assert (seen.batches[0].at_s, seen.batches[0].receives_before) == (0, 1)


def test_the_window_ends_and_dispatches_what_it_has(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a 2 s window over batches of 10, 3 messages now and 2 more only at 6 s
    register(loops, queue, batch_size=10, batch_window_s=2)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 3))
    send_at(loops.clock, loops, queue, 6, *bodies("b", 2))

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=12)

    # Then the first 3 went when the window ended, the 2 later ones in a batch of their own
    assert seen.sizes == [3, 2]
    assert seen.batches[0].at_s == pytest.approx(2)
    assert seen.batches[1].at_s >= 6
    assert (result.processed, loops.depth(queue.url)) == (5, 0)


def test_without_a_window_each_receive_is_dispatched_as_it_comes(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given no window (the default) and the same arrivals
    register(loops, queue, batch_size=10)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 3))
    send_at(loops.clock, loops, queue, 2, *bodies("b", 7))

    # When a loop runs
    loops.run(loops.tokens.create(queue.url), budget_s=8)

    # Then the partial receive was dispatched at once, and the rest after it came
    assert seen.sizes == [3, 7]
    assert seen.batches[0].at_s == 0
    assert {r["VisibilityTimeout"] for r in seen.receives} == {VISIBILITY_TIMEOUT_S}


def test_a_batch_larger_than_10_is_assembled_from_several_receives(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given batches of 35 with a 3 s window, 25 messages now and 10 more at 1 s
    register(loops, queue, batch_size=35, batch_window_s=3)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 25))
    send_at(loops.clock, loops, queue, 1, *bodies("b", 10))

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=6)

    # Then all 35 went to the handler in one call, each message once, received at most 10 at a time
    assert seen.sizes == [35]
    assert len(set(seen.batches[0].bodies)) == 35
    assert all(r["MaxNumberOfMessages"] <= 10 for r in seen.receives)
    assert (result.processed, loops.depth(queue.url)) == (35, 0)


def test_messages_gathered_early_stay_hidden_until_the_window_ends(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a 4 s window and messages arriving over it
    register(loops, queue, batch_size=10, batch_window_s=4)
    seen = Observed(loops)
    loops.send(queue.url, *bodies("a", 2))
    send_at(loops.clock, loops, queue, 1, *bodies("b", 2))

    # When a loop runs
    loops.run(loops.tokens.create(queue.url), budget_s=8)

    # Then every receive hid its messages for the visibility timeout plus what was left of the window, so each
    # message still had the whole visibility timeout when its batch was dispatched
    [first, *_] = seen.batches
    window_receives = [r for r in seen.receives if r["at_s"] <= first.at_s]
    assert len(window_receives) >= 2
    for receive in window_receives:
        left_of_window_s = first.at_s - receive["at_s"]
        assert receive["VisibilityTimeout"] >= VISIBILITY_TIMEOUT_S + left_of_window_s
        assert receive["VisibilityTimeout"] <= VISIBILITY_TIMEOUT_S + 4


# --- bounds ------------------------------------------------------------------------------------------------------


def test_a_window_never_outlives_the_next_heartbeat(
    aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch, queue: MadeQueue
) -> None:
    # Given a 3 s heartbeat and a 60 s window, one message, and the next only at 30 s
    loops = LoopHarness.create(aws, settings, monkeypatch, heartbeat_s=3)
    register(loops, queue, batch_size=10, batch_window_s=60)
    seen = Observed(loops)
    loops.send(queue.url, "early")
    send_at(loops.clock, loops, queue, 30, "late")
    heartbeats: list[float] = []
    aws.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem", lambda **_: heartbeats.append(loops.clock.monotonic())
    )

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=40)

    # Then the first message was dispatched before the heartbeat came due (it is proved on time, never delayed
    # by the window), and the late one was not held for the early one's window
    assert seen.sizes == [1, 1]
    assert seen.batches[0].at_s <= 3
    assert all(later - earlier <= 3 + 1 for earlier, later in itertools.pairwise(heartbeats))
    assert (result.processed, loops.depth(queue.url)) == (2, 0)


def test_a_window_never_outlives_the_reserve(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a 60 s window and an invocation with 2 s before its reserve
    register(loops, queue, batch_size=10, batch_window_s=60)
    seen = Observed(loops)
    loops.send(queue.url, "a", "b")

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=2)

    # Then it dispatched what it had by the reserve, and handed over
    assert seen.sizes == [2]
    assert seen.batches[0].at_s <= 2
    assert (result.processed, result.reason, result.recursed) == (2, TIME_LEFT, True)
    assert loops.depth(queue.url) == 0


def test_a_rate_limit_holds_with_a_window(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given 2 messages/s, batches up to 100 with a 5 s window, and a deep backlog
    register(loops, queue, batch_size=100, batch_window_s=5, rate_per_s=2)
    loops.send(queue.url, *bodies("a", 60))
    seen = Observed(loops)

    # When one loop runs for 10 s (of the clock)
    result = loops.run(loops.tokens.create(queue.url), budget_s=10)

    # Then it took about 2 per second, in batches the window gathered
    assert 19 <= result.processed <= 23
    assert max(seen.sizes) > 1
    assert loops.depth(queue.url) == 60 - result.processed


# --- lambda: handlers --------------------------------------------------------------------------------------------


def test_a_large_batch_is_forwarded_to_a_function_in_payload_sized_invokes(
    loops: LoopHarness, queue: MadeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function, batches of 40 with a window, a payload limit a few records fill, and 40 messages of 1 KB
    create_function(loops.aws, WORKER)
    register(loops, queue, f"lambda:{WORKER}", batch_size=40, batch_window_s=2)
    limit = 8 * 1024
    monkeypatch.setattr(dispatch, "MAX_INVOKE_PAYLOAD_BYTES", limit)
    sent = [f"{i:04d}" + "x" * 1020 for i in range(40)]
    loops.send(queue.url, *sent)
    invokes: list[bytes] = []

    def observe(params: dict[str, Any], **_: Any) -> None:
        if params["url_path"].startswith(f"/2015-03-31/functions/{WORKER}/"):
            invokes.append(params["body"])

    loops.aws.lambda_.meta.events.register("before-call.lambda.Invoke", observe)
    seen = Observed(loops)

    # When a loop runs
    result = loops.run(loops.tokens.create(queue.url), budget_s=4)

    # Then the one batch of 40 went in several invokes, each within the limit, every message exactly once
    assert seen.sizes == [40]
    assert len(invokes) > 1
    assert all(len(body) <= limit for body in invokes)
    forwarded = [r["body"] for body in invokes for r in json.loads(body)["Records"]]
    assert sorted(forwarded) == sorted(sent)
    assert (result.processed, loops.depth(queue.url)) == (40, 0)
