"""What the store costs and how it survives a lost response: counted in real requests, read back from the table.

Requests are counted with botocore's before-call hook on the client; a lost response is a needs-retry hook that
asks botocore to send a request again after it was served (moto wrote it), which is what a timeout does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs.states import QUEUED, RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobRecord, JobStore, NotCancellableError
from tests.conftest import Clients
from tests.functional.jobs.kit import JOB, job_in

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@pytest.fixture
def requests(aws: Clients) -> Iterator[list[str]]:
    """The name of every DynamoDB request the client sends."""
    sent: list[str] = []

    def count(model: Any, **_: Any) -> None:
        sent.append(model.name)

    aws.dynamodb.meta.events.register("before-call.dynamodb.*", count)
    yield sent
    aws.dynamodb.meta.events.unregister("before-call.dynamodb.*", count)


def test_the_success_path_is_three_writes(store: JobStore, clock: ManualClock, requests: list[str]) -> None:
    # When a job is enqueued, run and succeeds
    store.create("j1", JOB, enqueued_at=clock.now())
    store.mark_running("j1", job=JOB, attempt=1)
    store.mark_succeeded("j1", result_json='{"ok": true}')

    # Then that took three write requests and nothing else
    assert requests == ["PutItem", "UpdateItem", "UpdateItem"]
    assert len([r for r in requests if r in WRITES]) <= 3
    record = store.get("j1")
    assert record is not None
    assert record.state is SUCCEEDED


def test_a_job_without_a_row_succeeds_in_two_writes(store: JobStore, requests: list[str]) -> None:
    store.mark_running("sns-1", job=JOB, attempt=1)
    store.mark_succeeded("sns-1", result_json="null")
    assert requests == ["UpdateItem", "UpdateItem"]
    record = store.get("sns-1")
    assert record is not None
    assert (record.state, record.result) == (SUCCEEDED, "null")


def test_a_refused_change_costs_no_read(store: JobStore, clock: ManualClock, requests: list[str]) -> None:
    job_in(store, clock, SUCCEEDED)
    requests.clear()
    store.mark_running("j1", job=JOB, attempt=2)
    with pytest.raises(NotCancellableError):
        store.cancel("j1")
    assert requests == ["UpdateItem", "UpdateItem"]  # the row came back with the refusal (ALL_OLD)


def lose_first_response(aws: Clients, operation: str) -> list[int]:
    """Make botocore send the first `operation` again, as if its response had been lost after it was served."""
    resent: list[int] = []

    def retry_once(attempts: int, **_: Any) -> float | None:
        if not resent:
            resent.append(attempts)
            return 0.0
        return None

    aws.dynamodb.meta.events.register(f"needs-retry.dynamodb.{operation}", retry_once)  # type: ignore[arg-type]
    return resent


def test_a_state_change_resent_after_a_lost_response_is_still_its_own(
    aws: Clients, store: JobStore, clock: ManualClock, requests: list[str]
) -> None:
    # Given a running job, and the response to the next UpdateItem lost (botocore sends it again)
    job_in(store, clock, RUNNING)
    resent = lose_first_response(aws, "UpdateItem")

    # When it succeeds: the second send finds the job succeeded already, by its own first send
    outcome = store.mark_succeeded("j1", result_json="1")

    # Then it was resent, and it is reported as the success it was
    assert resent == [1]
    assert isinstance(outcome, JobRecord)
    assert outcome.state is SUCCEEDED
    assert outcome == store.get("j1")


def test_a_create_resent_after_a_lost_response_is_still_its_own(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    resent = lose_first_response(aws, "PutItem")
    assert store.create("j1", JOB, enqueued_at=clock.now()) is True
    assert resent == [1]
    assert store.create("j1", JOB, enqueued_at=clock.now()) is False  # and a real duplicate still is one


def test_a_tick_resent_after_a_lost_response_is_still_its_own(aws: Clients, store: JobStore) -> None:
    resent = lose_first_response(aws, "PutItem")
    assert store.record_tick("digest", 1_700_038_800.0, job_id="digest@9") is True  # else the firing would be skipped
    assert resent == [1]
    assert store.record_tick("digest", 1_700_038_800.0, job_id="digest@9") is False


def test_a_backend_that_returns_no_old_item_costs_one_read_on_refusal(
    aws: Clients, store: JobStore, clock: ManualClock, requests: list[str]
) -> None:
    # Given a DynamoDB that ignores ReturnValuesOnConditionCheckFailure
    def drop_old_item(parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed:  # a refused write's response only: GetItem still answers
            parsed.pop("Item", None)

    aws.dynamodb.meta.events.register("after-call.dynamodb.*", drop_old_item)
    job_in(store, clock, RUNNING)
    requests.clear()

    # When a running job is cancelled, and a queued one is marked succeeded
    with pytest.raises(NotCancellableError) as raised:
        store.cancel("j1")
    job_in(store, clock, QUEUED, "j2")
    requests.clear()
    refused = store.mark_succeeded("j2", result_json="1")

    # Then the refusals still carry the state, read once each
    assert raised.value.state is RUNNING
    assert not isinstance(refused, JobRecord)
    assert refused.state is QUEUED
    assert requests == ["UpdateItem", "GetItem"]
