"""functions/process/lambda_function.py: the entry point, its collaborators built from the environment, on moto."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from process import lambda_function as app
from sqsloops import defaults
from sqsloops.loop import TIME_LEFT, LoopPayload
from sqsloops.root import Root
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock
from tests.fixtures.loop_kit import FakeLambdaContext, LoopHarness, capture_logs

EVENTS = Path(__file__).parent.parent.parent / "events"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def environment(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    """The variables template.yaml gives the process function."""
    for name, value in {
        "QUEUES_TABLE": settings.queues_table,
        "LOOPS_TABLE": settings.loops_table,
        "PROCESS_FUNCTION": settings.process_function,
        "HEARTBEAT_S": "5",
        "RESERVE_S": "10",
    }.items():
        monkeypatch.setenv(f"SQSLOOPS_{name}", value)
    return LoopHarness.create(aws, settings, monkeypatch)


@pytest.fixture
def root(environment: LoopHarness, aws: Clients, clock: FakeClock) -> Root:
    """What the function builds from its environment, on the test's clock (the function's own uses the system's)."""
    return Root(Settings.from_env(), clients=aws, clock=clock)


def test_an_invocation_processes_the_queue_and_hands_over(
    environment: LoopHarness, root: Root, clock: FakeClock, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a registered queue with messages and a loop's token
    queue = make_queue("work")
    environment.register(queue.url)
    environment.send(queue.url, *[f"job {i}" for i in range(12)])
    token = environment.tokens.create(queue.url)

    # When Lambda invokes the process function with the token's payload and 60 s to run
    summary = app.handle(token.payload(), FakeLambdaContext(clock, deadline_s=60), lambda: root)

    # Then the queue is drained, and the invocation stopped at its reserve and started the next one
    assert summary == {
        **token.payload(),
        "reason": TIME_LEFT,
        "recursed": True,
        "processed": 12,
        "failed": 0,
        "batches": 2,
    }
    assert environment.depth(queue.url) == 0
    item = environment.token_item(token)
    assert item is not None
    assert (item.processed, item.invocations) == (12, 1)


def test_the_next_invocation_in_the_environment_reuses_its_registration_cache(
    environment: LoopHarness, aws: Clients, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a registered queue and an execution environment that ran one (short) invocation for it
    queue = make_queue("work")
    environment.register(queue.url)
    token = environment.tokens.create(queue.url)
    app.root.cache_clear()
    try:
        app.root()  # built before the budget starts: on a busy CI machine building it can take longer than the margin
        first = app.handler(token.payload(), RealTimeContext(budget_s=12))
        # When the registration is deleted and the same environment runs the next invocation (the next hop) within
        # the cache TTL
        environment.registry.delete(queue.url)
        environment.send(queue.url, "after the delete")
        second = app.handler({**token.payload(), "hop": 2}, RealTimeContext(budget_s=12))
    finally:
        app.root.cache_clear()

    # Then the second still knew the registration (same Root, same cache) and consumed the message
    assert first["reason"] == second["reason"] == TIME_LEFT
    assert second["processed"] == 1
    assert environment.depth(queue.url) == 0


class RealTimeContext:
    """A Lambda context whose remaining time runs on the wall clock (the function's own Root uses it)."""

    def __init__(self, *, budget_s: float) -> None:
        self._deadline_s = time.monotonic() + budget_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline_s - time.monotonic()) * 1000))


def _no_root() -> Root:
    raise AssertionError("a malformed event must build nothing")


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {},
        {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work", "token": "t"},
        {"queue_url": "not a url", "token": "t", "loop_id": "l"},
        {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work", "token": 7, "loop_id": "l"},
        *(
            {
                "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
                "token": "t",
                "loop_id": "l",
                "hop": h,
            }
            for h in (0, -1, True, "2", 1.5, None)
        ),
    ],
    ids=[
        "null",
        "list",
        "empty",
        "no-loop-id",
        "bad-url",
        "token-not-a-string",
        *(f"hop-{h!r}" for h in (0, -1, True, "2", 1.5, None)),
    ],
)
def test_a_malformed_event_is_logged_and_dropped_without_raising(event: Any, clock: FakeClock) -> None:
    # When Lambda delivers an event that is not a loop payload (no environment is even needed)
    summary = app.handle(event, FakeLambdaContext(clock, deadline_s=60), _no_root)

    # Then nothing is attempted and nothing raised (a retry could not help)
    assert summary["reason"] == app.MALFORMED_EVENT
    assert summary["recursed"] is False


HUGE = 5_000_000


@pytest.mark.parametrize(
    "queue_url",
    [
        "not a url " + "x" * HUGE,
        "https://sqs.us-east-1.amazonaws.com/123456789012/" + "x" * HUGE,
        "https://" + "sqs" * (HUGE // 3) + ".amazonaws.com/123456789012/work",  # a queue URL but for its size
    ],
    ids=["not-a-url", "bad-name", "huge-host"],
)
def test_a_huge_malformed_event_logs_a_short_line_and_says_why(queue_url: str, clock: FakeClock) -> None:
    # Given an event whose queue_url is 5 MB
    event = {"queue_url": queue_url, "token": "slot-0000", "loop_id": "l", "hop": 1}

    # When Lambda delivers it
    with capture_logs() as logs:
        summary = app.handle(event, FakeLambdaContext(clock, deadline_s=60), _no_root)

    # Then it is dropped as malformed, and neither the log line nor the reply carries more than a capped excerpt,
    # saying how long the text was
    assert (summary["reason"], summary["recursed"]) == (app.MALFORMED_EVENT, False)
    [line] = logs.lines
    assert len(json.dumps(line)) < 3 * defaults.LOG_TEXT_MAX_CHARS
    assert len(summary["error"]) < defaults.LOG_TEXT_MAX_CHARS + 100
    assert "characters in all" in line["event"]
    assert "5,000," in line["event"]


def test_the_sample_event_is_a_loop_payload() -> None:
    event = json.loads((EVENTS / "process.json").read_text())

    assert LoopPayload.parse(event).as_dict() == event
