"""The loop against moto: messages are processed and deleted, failures are retried and end in the DLQ, never lost.

Time is a FakeClock: it passes only while the loop sleeps (an empty short poll, a backoff, pacing), and the Lambda
context's remaining time is read from it. Registrations use wait_s 0 so moto never long-polls in real time.
moto's Lambda without Docker cannot run the process function, so the hand-over to the next invocation is checked
through RecordingLauncher: the real Launcher (a real Event invoke of the function created in moto) that also
remembers each payload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sqsloops.dispatch import Dispatchers, Failure, Outcome, core_kinds
from sqsloops.handlers import KNOWN_KINDS
from sqsloops.loop import DEREGISTERED, DISABLED, TIME_LEFT, TOKEN_LOST, TOO_SHORT
from sqsloops.registry import QueueConfig, Registry
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import HighestBackoff, LogRecords, LoopHarness, capture_logs, throttle


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    return LoopHarness.create(aws, settings, monkeypatch)


@pytest.fixture
def logs() -> Iterator[LogRecords]:
    with capture_logs() as records:
        yield records


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("work", max_receive_count=3)


def test_it_processes_and_deletes_a_backlog(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a registered queue with 25 messages and a loop's token
    loops.register(queue.url)
    loops.send(queue.url, *[f"job {i}" for i in range(25)])
    token = loops.tokens.create(queue.url)

    # When the loop runs one invocation
    result = loops.run(token)

    # Then the queue is empty, and the token's counters say so
    assert loops.depth(queue.url) == 0
    assert result.processed == 25
    item = loops.token_item(token)
    assert item is not None
    assert (item.processed, item.failed, item.invocations) == (25, 0, 1)


def test_a_failing_message_is_hidden_for_a_backoff(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a handler that always fails and a backoff of 60 s or more for a first failure
    loops.register(queue.url, "python:tests.fixtures.handlers:always_fail", backoff_base_s=60, backoff_max_s=600)
    loops.send(queue.url, "doomed")
    token = loops.tokens.create(queue.url)

    # When the loop runs, with jitter drawing its ceiling
    result = loops.run(token, budget_s=10, rng=HighestBackoff())

    # Then the message failed once and is still in the queue, hidden (not visible) for its backoff
    assert result.failed == 1
    assert loops.depth(queue.url) == 1
    assert loops.visible(queue.url) == 0


def test_a_message_that_keeps_failing_ends_in_the_dead_letter_queue(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a handler that always fails, no backoff, and maxReceiveCount 3
    loops.register(queue.url, "python:tests.fixtures.handlers:always_fail")
    loops.send(queue.url, "doomed")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then the message was tried maxReceiveCount times, then SQS moved it to the DLQ, intact
    assert result.failed == queue.max_receive_count
    assert loops.depth(queue.url) == 0
    assert loops.bodies(queue.dlq_url) == ["doomed"]
    assert any("RuntimeError: cannot handle" in reason for reason in logs.with_field("reason"))


def test_a_malformed_body_is_never_lost(loops: LoopHarness, queue: MadeQueue, logs: LogRecords) -> None:
    # Given a handler that parses JSON, a good message and one that is not JSON
    loops.register(queue.url, "python:tests.fixtures.handlers:parse_json")
    loops.send(queue.url, '{"ok": true}', "{not json")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then the good one is done, the bad one sits in the DLQ, and why is logged
    assert result.processed == 1
    assert loops.depth(queue.url) == 0
    assert loops.bodies(queue.dlq_url) == ["{not json"]
    assert any(reason.startswith("JSONDecodeError") for reason in logs.with_field("reason"))


def test_a_handler_exception_does_not_stop_the_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a handler that raises on one message among others
    loops.register(queue.url, "python:tests.fixtures.handlers:fail_on_boom", batch_size=2)
    loops.send(queue.url, "a", "boom", "b", "c", "d")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then every other message is processed, the loop ran to its time limit and handed over
    assert result.processed == 4
    assert loops.bodies(queue.dlq_url) == ["boom"]
    assert (result.reason, result.recursed) == (TIME_LEFT, True)


def test_an_unimportable_handler_sends_messages_to_the_dead_letter_queue(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a registration whose module does not exist
    loops.register(queue.url, "python:no_such_package.jobs:run")
    loops.send(queue.url, "a", "b")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then the loop survived and the messages were kept, in the DLQ
    assert result.reason == TIME_LEFT
    assert loops.bodies(queue.dlq_url) == ["a", "b"]


class DeadOnBody:
    """A dispatcher of the `test:` kind: a message whose body is the target is dead; every other one succeeds."""

    def __init__(self, target: str) -> None:
        self.target = target

    def dispatch(self, records: list[dict[str, Any]]) -> Outcome:
        dead = {r["messageId"] for r in records if r["body"] == self.target}
        return Outcome(
            succeeded=tuple(r["messageId"] for r in records if r["messageId"] not in dead),
            failed=tuple(Failure(i, f"{self.target} is never retried", dead=True) for i in sorted(dead)),
        )


class KindForTests:
    """A handler kind plugged in from a test, as the job runner's `jobs:` will be: sqsloops.dispatch never sees it."""

    def validate(self, target: str) -> None:
        pass

    def build(self, target: str, config: QueueConfig) -> DeadOnBody:
        return DeadOnBody(target)


def plug_in_test_kind(loops: LoopHarness, kind: KindForTests, queue_url: str, handler: str) -> None:
    """Give the loop the core kinds plus `test:` (as a composition root adds one), and register the queue with it."""
    loops.dispatchers = Dispatchers(kinds={**core_kinds(loops.aws.lambda_), "test": kind})
    registry = Registry(
        table_name=loops.settings.queues_table, dynamodb=loops.aws.dynamodb, handler_kinds={*KNOWN_KINDS, "test"}
    )
    registry.create(QueueConfig(queue_url=queue_url, handler=handler, wait_s=0, backoff_base_s=0, backoff_max_s=0))


def test_a_handler_kind_plugged_in_from_outside_runs_and_can_send_a_message_to_the_dlq_at_once(
    loops: LoopHarness, queue: MadeQueue
) -> None:
    # Given a loop given the core kinds plus a `test:` kind, and a queue registered with it (maxReceiveCount 3)
    plug_in_test_kind(loops, KindForTests(), queue.url, "test:poison")
    loops.send(queue.url, "a", "poison", "b")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then the kind handled the batch: the others are done, and the message it declared dead went to the DLQ on its
    # first failure, not after maxReceiveCount
    assert (result.processed, result.failed) == (2, 1)
    assert loops.depth(queue.url) == 0
    assert loops.bodies(queue.dlq_url) == ["poison"]


class BrokenKind(KindForTests):
    def build(self, target: str, config: QueueConfig) -> DeadOnBody:
        raise TimeoutError("the kind's catalog cannot be read")


def test_a_plugged_in_kind_that_raises_fails_the_batch_with_why_and_loses_nothing(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a `test:` kind whose build raises every time
    plug_in_test_kind(loops, BrokenKind(), queue.url, "test:x")
    loops.send(queue.url, "a")

    # When the loop runs
    result = loops.run(loops.tokens.create(queue.url))

    # Then the message failed with the reason on every receive, and is kept in the DLQ; the loop went on
    assert loops.bodies(queue.dlq_url) == ["a"]
    assert any("TimeoutError: the kind's catalog cannot be read" in r for r in logs.with_field("reason"))
    assert (result.reason, result.recursed) == (TIME_LEFT, True)


def test_a_kind_the_loop_was_not_given_fails_its_messages_with_why_and_the_loop_goes_on(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a registration of a known kind (jobs:) that this loop has no HandlerKind for
    loops.register(queue.url, "jobs:app.jobs")
    loops.send(queue.url, "a", "b")
    token = loops.tokens.create(queue.url)

    # When the loop runs
    result = loops.run(token)

    # Then each message failed maxReceiveCount times with the reason, and sits in the DLQ; the loop handed over
    assert result.failed == 2 * queue.max_receive_count
    assert loops.bodies(queue.dlq_url) == ["a", "b"]
    assert any("no handler kind 'jobs'" in reason for reason in logs.with_field("reason"))
    assert (result.reason, result.recursed) == (TIME_LEFT, True)


def test_it_stops_at_the_reserve_and_hands_over_to_the_next_hop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a registered queue and a token
    loops.register(queue.url)
    token = loops.tokens.create(queue.url)

    # When an invocation has 20 s before its reserve
    result = loops.run(token, budget_s=20)

    # Then it polled until then, not beyond, and started the next invocation: the same loop, one hop further
    assert result.reason == TIME_LEFT
    assert 20 <= loops.clock.elapsed_s < 21
    assert token.payload()["hop"] == 1
    assert loops.launcher.payloads == [{**token.payload(), "hop": 2}]


def test_it_does_not_start_another_invocation_once_stopped(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a token deleted (scaled down) before its loop starts, and messages waiting
    loops.register(queue.url)
    loops.send(queue.url, "a", "b")
    token = loops.tokens.create(queue.url)
    loops.tokens.delete(queue.url, token.slot)

    # When the loop runs
    result = loops.run(token)

    # Then it stops at once: nothing processed, no next invocation
    assert (result.reason, result.recursed) == (TOKEN_LOST, False)
    assert loops.depth(queue.url) == 2
    assert loops.launcher.started == []


def test_a_deregistered_queue_stops_its_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a running loop whose registration is deleted after 5 s
    loops.register(queue.url)
    token = loops.tokens.create(queue.url)
    loops.clock.at(5, lambda: loops.registry.delete(queue.url))

    # When the loop runs with plenty of time
    result = loops.run(token, budget_s=600)

    # Then it stops once its cached registration expires, without handing over
    assert (result.reason, result.recursed) == (DEREGISTERED, False)
    assert loops.clock.elapsed_s <= 5 + 30 + 1
    assert loops.launcher.started == []


def test_a_disabled_registration_stops_its_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a loop whose registration gets disabled after 5 s
    config = loops.register(queue.url)
    token = loops.tokens.create(queue.url)
    loops.clock.at(5, lambda: loops.registry.update(QueueConfig(**{**config.__dict__, "enabled": False})))

    # When the loop runs
    result = loops.run(token, budget_s=600)

    # Then it stops, without handing over
    assert (result.reason, result.recursed) == (DISABLED, False)
    assert loops.launcher.started == []


def test_an_invocation_shorter_than_the_reserve_neither_polls_nor_recurses(
    loops: LoopHarness, queue: MadeQueue
) -> None:
    # Given a message and an invocation that starts below the reserve (a misconfigured timeout)
    loops.register(queue.url)
    loops.send(queue.url, "a")
    token = loops.tokens.create(queue.url)

    # When it runs
    result = loops.run(token, budget_s=-1)

    # Then it does nothing rather than recurse in a tight loop
    assert (result.reason, result.recursed) == (TOO_SHORT, False)
    assert loops.depth(queue.url) == 1


def test_transient_sqs_errors_do_not_stop_the_loop(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given SQS throttling the first receives
    loops.register(queue.url)
    loops.send(queue.url, "a", "b")
    token = loops.tokens.create(queue.url)
    injected = throttle(loops.aws.sqs, "sqs.ReceiveMessage", times=6)

    # When the loop runs
    result = loops.run(token)

    # Then it backed off, carried on, processed everything and handed over
    assert len(injected) == 6
    assert loops.depth(queue.url) == 0
    assert (result.reason, result.recursed) == (TIME_LEFT, True)


def test_a_rate_limit_is_split_across_live_loops(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given a queue limited to 2 messages/s, two live loops, and a deep backlog
    loops.register(queue.url, rate_per_s=2)
    token = loops.tokens.create(queue.url)
    loops.tokens.create(queue.url)
    loops.send(queue.url, *[str(i) for i in range(40)])

    # When one loop runs for 10 s (of the clock)
    result = loops.run(token, budget_s=10)

    # Then it took its share, 1 message per second, and left the rest
    assert 9 <= result.processed <= 11
    assert loops.depth(queue.url) == 40 - result.processed


def test_every_log_line_names_the_loop_and_the_last_says_why_it_stopped(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a loop with a failing message to log about
    loops.register(queue.url, "python:tests.fixtures.handlers:always_fail")
    loops.send(queue.url, "doomed")
    token = loops.tokens.create(queue.url)

    # When it runs
    loops.run(token, budget_s=5)

    # Then each line carries the queue, the token, the loop id and the hop, and the last one the exit reason
    assert logs.lines
    assert all(
        {k: line.get(k) for k in ("queue_url", "token", "loop_id", "hop")} == token.payload() for line in logs.lines
    )
    assert (logs.lines[-1]["message"], logs.lines[-1]["reason"]) == ("loop stopped", TIME_LEFT)


def test_a_failing_registration_read_is_retried_not_fatal(loops: LoopHarness, queue: MadeQueue) -> None:
    # Given DynamoDB throttling the first reads of the registration
    loops.register(queue.url)
    loops.send(queue.url, "a", "b")
    token = loops.tokens.create(queue.url)
    injected = throttle(loops.aws.dynamodb, "dynamodb.GetItem", times=3)

    # When the loop runs
    result = loops.run(token)

    # Then it backed off, read it in the end, and did its work
    assert len(injected) == 3
    assert loops.depth(queue.url) == 0
    assert (result.reason, result.recursed) == (TIME_LEFT, True)
