"""One retry layer with a budget: a heartbeat gives up within its share of heartbeat_s, a hand-over fits the reserve.

Faults answer every HTTP attempt through botocore's before-send hook, below botocore's retries, so each retry is
counted; botocore's pauses pass on the test's FakeClock (botocore_sleeps_on), and a hanging endpoint costs each
attempt its connect and read timeouts on that clock. The clients are built as the process function builds them,
with budgets from the stack's timing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from sqsloops import defaults
from sqsloops.clients import ClientBudgets, Clients
from sqsloops.errors import TransientAwsError
from sqsloops.launcher import Launcher
from sqsloops.loop import TIME_LEFT
from sqsloops.root import Root
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens
from tests.conftest import REGION
from tests.conftest import Clients as AwsClients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock
from tests.fixtures.loop_kit import LoopHarness, botocore_sleeps_on, fail_every_attempt

HEARTBEAT_S = 10.0
RESERVE_S = 15.0
BUDGETS = ClientBudgets.for_timing(heartbeat_s=HEARTBEAT_S, reserve_s=RESERVE_S)

DYNAMODB_FAULTS = {
    "throttling": {"code": "ThrottlingException", "status": 400},
    "5xx": {"code": "InternalServerError", "status": 500},
    "hang": {"hang": True},
}
LAMBDA_FAULTS = {
    "throttling": {"code": "TooManyRequestsException", "status": 429},
    "5xx": {"code": "ServiceException", "status": 500},
    "hang": {"hang": True},
}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    botocore_sleeps_on(clock, monkeypatch)
    return clock


@pytest.fixture
def clients(aws: AwsClients) -> Clients:
    """The clients a process function with HeartbeatSeconds 10 and ReserveSeconds 15 builds."""
    return Clients(region=REGION, budgets=BUDGETS)


@pytest.mark.parametrize("fault", DYNAMODB_FAULTS.values(), ids=DYNAMODB_FAULTS.keys())
def test_a_heartbeat_under_persistent_faults_gives_up_within_its_budget(
    clients: Clients, settings: Settings, clock: FakeClock, fault: dict[str, Any]
) -> None:
    # Given a token, and DynamoDB failing every attempt from now on
    tokens = Tokens(table_name=settings.loops_table, dynamodb=clients.dynamodb, clock=clock)
    token = tokens.create("https://sqs.us-east-1.amazonaws.com/123456789012/work", slot=0)
    assert token is not None
    attempts = fail_every_attempt(clients.dynamodb, "dynamodb.UpdateItem", clock=clock, **fault)
    started_s = clock.monotonic()

    # When the loop heartbeats
    with pytest.raises(TransientAwsError):
        tokens.heartbeat(token.queue_url, token.slot, token.loop_id, hop=0)

    # Then it made its budget's attempts, no more, and gave up within its share of the heartbeat period
    took_s = clock.monotonic() - started_s
    assert len(attempts) == BUDGETS.dynamodb.max_attempts == 2
    assert took_s <= BUDGETS.dynamodb.worst_case_s <= defaults.HEARTBEAT_CALL_SHARE * HEARTBEAT_S
    if fault.get("hang"):
        assert took_s >= 2 * (defaults.CONNECT_TIMEOUT_S + defaults.DYNAMODB_READ_TIMEOUT_S)


@pytest.mark.parametrize("fault", LAMBDA_FAULTS.values(), ids=LAMBDA_FAULTS.keys())
def test_a_loop_start_under_persistent_faults_gives_up_within_its_budget(
    clients: Clients, settings: Settings, clock: FakeClock, fault: dict[str, Any]
) -> None:
    # Given Lambda failing every attempt of an Invoke
    launcher = Launcher(lambda_client=clients.lambda_, function_name=settings.process_function, clock=clock)
    tokens = Tokens(table_name=settings.loops_table, dynamodb=clients.dynamodb, clock=clock)
    token = tokens.create("https://sqs.us-east-1.amazonaws.com/123456789012/work", slot=0)
    assert token is not None
    attempts = fail_every_attempt(clients.lambda_, "lambda.Invoke", clock=clock, **fault)

    # When a loop is started (or handed over)
    with pytest.raises(TransientAwsError):
        launcher.start(token)

    # Then it gave up within the Lambda budget, which with the last heartbeat's fits the reserve
    assert len(attempts) == BUDGETS.lambda_.max_attempts == 2
    assert clock.monotonic() <= BUDGETS.lambda_.worst_case_s
    assert BUDGETS.dynamodb.worst_case_s + BUDGETS.lambda_.worst_case_s <= defaults.HANDOVER_SHARE * RESERVE_S


@pytest.mark.parametrize("fault", [{"hang": True}, DYNAMODB_FAULTS["throttling"]], ids=["hang", "throttling"])
def test_a_loop_hands_over_inside_its_reserve_while_dynamodb_keeps_failing(
    aws: AwsClients,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    make_queue: Callable[..., MadeQueue],
    fault: dict[str, Any],
) -> None:
    # Given a loop with the stack's default timing (its clients' budgets derived from it), heartbeating at 0, 10,
    # ... 50 s, whose reserve begins at 50.5 s; and every DynamoDB call (heartbeats, registration reads) failing
    # from 45 s on, so that the heartbeat due at 50 s could still be blocked when the reserve begins
    loops = LoopHarness.create(aws, settings, monkeypatch, heartbeat_s=HEARTBEAT_S, reserve_s=RESERVE_S)
    assert aws.budgets == ClientBudgets.for_settings(loops.settings)
    botocore_sleeps_on(loops.clock, monkeypatch)
    queue = make_queue("work")
    loops.register(queue.url)
    token = loops.tokens.create(queue.url)
    attempts = fail_every_attempt(
        aws.dynamodb, "dynamodb", clock=loops.clock, when=lambda: loops.clock.monotonic() >= 45, **fault
    )

    # When the invocation runs
    reserve_starts_s = loops.clock.monotonic() + 50.5
    result = loops.run(token, budget_s=50.5)

    # Then it handed over to the next hop inside its reserve, with only the last heartbeat before the hand-over:
    # no DynamoDB call that could block was started within a call budget of the reserve
    assert len(attempts) >= BUDGETS.dynamodb.max_attempts
    assert (result.reason, result.recursed) == (TIME_LEFT, True)
    assert loops.launcher.payloads == [{**token.payload(), "hop": 2}]
    [handed_over_s] = loops.launcher.started_at_s
    assert reserve_starts_s <= handed_over_s <= reserve_starts_s + BUDGETS.dynamodb.worst_case_s
    assert BUDGETS.dynamodb.worst_case_s + BUDGETS.lambda_.worst_case_s <= defaults.HANDOVER_SHARE * RESERVE_S


def test_the_process_function_builds_its_clients_with_budgets_from_its_settings(
    aws: AwsClients, settings: Settings
) -> None:
    fast = dataclasses.replace(settings, heartbeat_s=30, reserve_s=60)
    root = Root(fast)

    assert root.clients.budgets == ClientBudgets.for_settings(fast)
    assert root.clients.budgets.dynamodb.max_attempts > BUDGETS.dynamodb.max_attempts
    assert root.clients.dynamodb.meta.config.retries == {
        "mode": "standard",
        "total_max_attempts": root.clients.budgets.dynamodb.max_attempts,
    }
