"""Client budgets: how many attempts each client may make so that one call fits the time its caller has."""

from __future__ import annotations

import pytest

from sqsloops import defaults
from sqsloops.clients import (
    FORWARD_READ_TIMEOUT_S,
    LAMBDA_FORWARDING,
    SQS_RECEIVE,
    CallBudget,
    ClientBudgets,
    Clients,
    retry_pause_ceiling_s,
)


def test_the_worst_case_is_every_attempt_timing_out_and_every_pause_at_its_ceiling() -> None:
    assert [retry_pause_ceiling_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]
    assert CallBudget(1, 1.0, 1.0).worst_case_s == 2.0
    assert CallBudget(3, 1.0, 2.0).worst_case_s == 3 * 3.0 + 1 + 2


def test_a_budget_takes_the_most_attempts_that_fit_and_never_fewer_than_one() -> None:
    assert CallBudget.within(5.0, read_timeout_s=1.0).max_attempts == 2  # 2 x 2 s + 1 s
    assert CallBudget.within(4.9, read_timeout_s=1.0).max_attempts == 1
    assert CallBudget.within(0.1, read_timeout_s=1.0).max_attempts == 1
    assert CallBudget.within(1000.0, read_timeout_s=1.0).max_attempts == defaults.CALL_MAX_ATTEMPTS


def test_with_the_default_timing_a_heartbeat_and_a_hand_over_fit_their_shares() -> None:
    budgets = ClientBudgets.for_timing(heartbeat_s=defaults.HEARTBEAT_S, reserve_s=defaults.RESERVE_S)

    assert (budgets.dynamodb.max_attempts, budgets.dynamodb.worst_case_s) == (2, 5.0)
    assert (budgets.lambda_.max_attempts, budgets.lambda_.worst_case_s) == (2, 7.0)
    assert budgets.dynamodb.worst_case_s <= defaults.HEARTBEAT_CALL_SHARE * defaults.HEARTBEAT_S
    assert budgets.dynamodb.worst_case_s + budgets.lambda_.worst_case_s <= defaults.HANDOVER_SHARE * defaults.RESERVE_S
    assert budgets.dynamodb.worst_case_s < defaults.STALE_AFTER_S


@pytest.mark.parametrize(("heartbeat_s", "reserve_s"), [(10, 15), (10, 30), (20, 30), (30, 60), (60, 120)])
def test_whenever_the_timing_leaves_room_for_one_attempt_the_budgets_fit(heartbeat_s: float, reserve_s: float) -> None:
    budgets = ClientBudgets.for_timing(heartbeat_s=heartbeat_s, reserve_s=reserve_s)

    assert budgets.dynamodb.worst_case_s <= defaults.HEARTBEAT_CALL_SHARE * heartbeat_s
    assert budgets.sqs.worst_case_s <= defaults.HEARTBEAT_CALL_SHARE * heartbeat_s
    assert budgets.dynamodb.worst_case_s + budgets.lambda_.worst_case_s <= defaults.HANDOVER_SHARE * reserve_s


def test_each_client_gets_its_budget_as_botocore_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    budgets = ClientBudgets.for_timing(heartbeat_s=10, reserve_s=15)
    clients = Clients(region="us-east-1", budgets=budgets)

    def config(name: str) -> tuple[object, float, float]:
        c = clients.get(name).meta.config
        return c.retries, c.connect_timeout, c.read_timeout

    assert config("dynamodb") == ({"mode": "standard", "total_max_attempts": 2}, 1.0, 1.0)
    assert config("lambda") == ({"mode": "standard", "total_max_attempts": 2}, 1.0, 2.0)
    assert config("sqs") == ({"mode": "standard", "total_max_attempts": 2}, 1.0, 1.0)
    # long polls outlast the longest wait, once (the loop retries a failed receive itself)
    assert config(SQS_RECEIVE) == ({"mode": "standard", "total_max_attempts": 1}, 1.0, defaults.MAX_WAIT_S + 2)
    assert config(LAMBDA_FORWARDING)[2] == FORWARD_READ_TIMEOUT_S
    assert config("cloudwatch") == ({"mode": "standard", "total_max_attempts": 3}, 1.0, 10.0)
    assert clients.get(SQS_RECEIVE) is not clients.sqs
    assert clients.lambda_forwarding is not clients.lambda_


def test_a_stand_in_client_serves_its_variants_too() -> None:
    stand_in = object()
    assert Clients(overrides={"sqs": stand_in}).sqs_receive is stand_in
    assert Clients(overrides={"lambda": stand_in}).lambda_forwarding is stand_in


def test_a_lambda_client_built_first_never_serves_forwarding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients = Clients(region="us-east-1")
    short = clients.lambda_

    assert clients.lambda_forwarding is not short
    assert clients.lambda_forwarding.meta.config.read_timeout == FORWARD_READ_TIMEOUT_S
