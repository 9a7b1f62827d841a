"""functions/process/app.py: the Lambda entry point, with its collaborators built from the environment, on moto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from process import app
from sqsloops.loop import TIME_LEFT, LoopPayload
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import FakeClock, FakeLambdaContext, LoopHarness

EVENTS = Path(__file__).parent.parent.parent / "events"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """A fresh execution environment whose loop runs on a FakeClock."""
    fake = FakeClock()
    monkeypatch.setattr(app, "CLOCK", fake)
    app.collaborators.cache_clear()
    yield fake
    app.collaborators.cache_clear()


@pytest.fixture
def environment(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> LoopHarness:
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


def test_an_invocation_processes_the_queue_and_hands_over(
    environment: LoopHarness, clock: FakeClock, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a registered queue with messages and a loop's token
    queue = make_queue("work")
    environment.register(queue.url)
    environment.send(queue.url, *[f"job {i}" for i in range(12)])
    token = environment.tokens.create(queue.url)

    # When Lambda invokes the process function with the token's payload and 60 s to run
    summary = app.handler(token.payload(), FakeLambdaContext(clock, deadline_s=60))

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


def test_the_environment_is_built_once_and_reused(
    environment: LoopHarness, clock: FakeClock, make_queue: Callable[..., MadeQueue]
) -> None:
    queue = make_queue("work")
    environment.register(queue.url)
    token = environment.tokens.create(queue.url)

    for _ in range(2):
        app.handler(token.payload(), FakeLambdaContext(clock, deadline_s=clock.monotonic() + 15))

    assert app.collaborators.cache_info().misses == 1


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {},
        {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work", "token": "t"},
        {"queue_url": "not a url", "token": "t", "loop_id": "l"},
        {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/work", "token": 7, "loop_id": "l"},
    ],
    ids=["null", "list", "empty", "no-loop-id", "bad-url", "token-not-a-string"],
)
def test_a_malformed_event_is_logged_and_dropped_without_raising(event: Any, clock: FakeClock) -> None:
    # When Lambda delivers an event that is not a loop payload (no environment is even needed)
    summary = app.handler(event, FakeLambdaContext(clock, deadline_s=60))

    # Then nothing is attempted and nothing raised (a retry could not help)
    assert summary["reason"] == app.MALFORMED_EVENT
    assert summary["recursed"] is False


def test_the_sample_event_is_a_loop_payload() -> None:
    event = json.loads((EVENTS / "process.json").read_text())

    assert LoopPayload.parse(event).as_dict() == event
