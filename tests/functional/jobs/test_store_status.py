"""Job rows against moto: every state change allowed and refused, creation, cancel, caps and TTL.

Each case reads the row back from the table; a refused change must leave the item exactly as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs import schema
from sqsloops.jobs.states import (
    CANCELLED,
    DEAD,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    JobState,
)
from sqsloops.jobs.store import (
    DEFAULT_DEAD_TTL_S,
    DEFAULT_TTL_S,
    MAX_ERROR_BYTES,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_BYTES,
    JobNotFoundError,
    JobRecord,
    JobStore,
    NotCancellableError,
    Refused,
)
from tests.conftest import Clients
from tests.functional.jobs.conftest import JOBS_TABLE, raw_item
from tests.functional.jobs.kit import JOB, job_in, settled

Change = Callable[[JobStore, ManualClock, JobRecord], "JobRecord | Refused"]

CHANGES: dict[str, tuple[JobState, Change]] = {
    "mark_running": (
        RUNNING,
        lambda store, clock, record: store.mark_running(record.id, job=record.job, attempt=record.attempts + 1),
    ),
    "mark_succeeded": (SUCCEEDED, lambda store, clock, record: store.mark_succeeded(record.id, result_json="42")),
    "mark_retrying": (
        RETRYING,
        lambda store, clock, record: store.mark_retrying(
            record.id, attempts=max(record.attempts, 1), error="Boom", next_run_at=clock.now() + 30
        ),
    ),
    "mark_dead": (
        DEAD,
        lambda store, clock, record: store.mark_dead(
            record.id, attempts=max(record.attempts, 1), error="Boom", traceback="tb"
        ),
    ),
    "requeue_for_redrive": (QUEUED, lambda store, clock, record: store.requeue_for_redrive(record.id)),
}
# Which states each write may start from (the design's table, written out).
ALLOWED_FROM = {
    "mark_running": {SCHEDULED, QUEUED, RUNNING, RETRYING},
    "mark_succeeded": {RUNNING},
    "mark_retrying": {RUNNING},
    "mark_dead": {RUNNING, RETRYING},
    "requeue_for_redrive": {DEAD, QUEUED},
}
CANCELLABLE_FROM = {SCHEDULED, QUEUED, RETRYING}


@pytest.mark.parametrize("start", list(JobState), ids=str)
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_state_change_happens_exactly_from_the_states_the_table_allows(
    aws: Clients, store: JobStore, clock: ManualClock, change: str, start: JobState
) -> None:
    # Given a job in `start`
    record = job_in(store, clock, start)
    before = raw_item(aws, schema.job_pk(record.id))
    target, write = CHANGES[change]

    # When the change is written
    outcome = write(store, clock, record)

    # Then it is written when the table allows it, with the index key in step; else refused, the row untouched
    after = raw_item(aws, schema.job_pk(record.id))
    assert after is not None
    if start in ALLOWED_FROM[change]:
        assert isinstance(outcome, JobRecord)
        assert outcome == store.get(record.id)
        assert outcome.state is target
        assert after["state"] == {"S": target.value}
        assert after["state_at"] == {"S": f"{target.value}#{clock.now():017.6f}"}
        assert outcome.updated_at == clock.now()
    else:
        assert isinstance(outcome, Refused)
        assert (outcome.target, outcome.state, outcome.current) == (target, start, record)
        assert start.value in outcome.detail
        assert after == before


@pytest.mark.parametrize("start", list(JobState), ids=str)
def test_cancel_works_before_a_job_starts_or_between_attempts_only(
    aws: Clients, store: JobStore, clock: ManualClock, start: JobState
) -> None:
    # Given a job in `start`
    record = job_in(store, clock, start)
    before = raw_item(aws, schema.job_pk(record.id))

    # When it is cancelled
    if start in CANCELLABLE_FROM:
        cancelled = store.cancel(record.id)

        # Then it is cancelled and finished now
        assert cancelled == store.get(record.id)
        assert (cancelled.state, cancelled.finished_at, cancelled.attempts) == (CANCELLED, clock.now(), record.attempts)
    else:
        with pytest.raises(NotCancellableError) as raised:
            store.cancel(record.id)

        # Then it says what state the job is in, chained from the refused write, and the row is untouched
        assert raised.value.state is start
        assert raised.value.job_id == record.id
        assert isinstance(raised.value.__cause__, ClientError)
        assert raw_item(aws, schema.job_pk(record.id)) == before


def test_cancelling_an_unknown_job_says_it_is_not_found(aws: Clients, store: JobStore) -> None:
    with pytest.raises(JobNotFoundError) as raised:
        store.cancel("nope")
    assert raised.value.job_id == "nope"
    assert isinstance(raised.value.__cause__, ClientError)
    assert raw_item(aws, schema.job_pk("nope")) is None  # no row was made by trying


# --- create ------------------------------------------------------------------------------------------------------


def test_a_job_is_created_queued_with_its_envelope_times(store: JobStore, clock: ManualClock) -> None:
    assert store.create("j1", JOB, enqueued_at=clock.now() - 2, key="order-7")
    assert store.get("j1") == JobRecord(
        id="j1",
        job=JOB,
        state=QUEUED,
        attempts=0,
        enqueued_at=clock.now() - 2,
        updated_at=clock.now(),
        key="order-7",
        expires_at=math.ceil(clock.now() + DEFAULT_TTL_S),
    )


def test_a_duplicate_create_is_not_an_error_and_keeps_the_first(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given a job
    assert store.create("j1", JOB, enqueued_at=clock.now())
    first = raw_item(aws, schema.job_pk("j1"))
    clock.advance(5)

    # When the same id is created again (a repeated enqueue), even as another job
    again = store.create("j1", JOB, enqueued_at=clock.now())
    other = store.create("j1", "other_job", state=SCHEDULED, enqueued_at=clock.now(), run_at=clock.now() + 60)

    # Then both say it exists, and the first row is kept as it was
    assert (again, other) == (False, False)
    assert raw_item(aws, schema.job_pk("j1")) == first


def test_a_row_past_its_expiry_counts_as_gone(store: JobStore, clock: ManualClock) -> None:
    # Given a job whose row expired (DynamoDB deletes late: it is still there)
    assert store.create("j1", JOB, enqueued_at=clock.now(), ttl_s=60)
    clock.advance(61)

    # When the id is enqueued again
    created = store.create("j1", JOB, enqueued_at=clock.now())

    # Then it is a new job
    assert created is True
    record = store.get("j1")
    assert record is not None
    assert record.enqueued_at == clock.now()


def test_a_scheduled_job_keeps_its_time_and_schedule(store: JobStore, clock: ManualClock) -> None:
    run_at = clock.now() + 30 * 86400
    assert store.create("j1", JOB, state="scheduled", enqueued_at=clock.now(), run_at=run_at, schedule_name="s-j1")
    record = store.get("j1")
    assert record is not None
    assert (record.state, record.run_at, record.schedule_name) == (SCHEDULED, run_at, "s-j1")
    # kept until a week after it is due, not a week after it was scheduled
    assert record.expires_at == math.ceil(run_at + DEFAULT_TTL_S)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"state": RUNNING},
        {"state": SCHEDULED},  # no run_at
        {"state": "paused"},
        {"ttl_s": 0},
    ],
)
def test_a_bad_create_writes_nothing(aws: Clients, store: JobStore, clock: ManualClock, kwargs: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, ValueError)):
        store.create("j1", JOB, enqueued_at=clock.now(), **kwargs)
    assert raw_item(aws, schema.job_pk("j1")) is None


@pytest.mark.parametrize(("job_id", "job"), [("", JOB), ("j1", ""), ("j1", "a#b"), ("x" * 2100, JOB)])
def test_bad_ids_and_names_are_refused(store: JobStore, clock: ManualClock, job_id: str, job: str) -> None:
    with pytest.raises(ConfigError):
        store.create(job_id, job, enqueued_at=clock.now())


# --- running ---------------------------------------------------------------------------------------------------


def test_a_job_with_no_row_is_tracked_from_its_first_run(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    # Given a job whose producer wrote no row (a bare SNS message)

    # When the runner starts it
    record = settled(store.mark_running("sns-1", job=JOB, attempt=1, enqueued_at=clock.now() - 3))

    # Then its row exists, running, listed under running
    assert record == store.get("sns-1")
    assert (record.job, record.state, record.attempts, record.started_at) == (JOB, RUNNING, 1, clock.now())
    assert record.enqueued_at == clock.now() - 3
    assert [r.id for r in store.list(JOB, state=RUNNING)[0]] == ["sns-1"]


def test_a_redelivery_runs_again_but_a_stale_attempt_does_not(store: JobStore, clock: ManualClock) -> None:
    # Given a job running its second attempt
    job_in(store, clock, RETRYING)
    settled(store.mark_running("j1", job=JOB, attempt=2))
    clock.advance(10)

    # When attempt 2 is delivered again (its loop was lost), then an old copy of attempt 1 shows up
    again = store.mark_running("j1", job=JOB, attempt=2)
    stale = store.mark_running("j1", job=JOB, attempt=1)

    # Then the redelivery runs (started now), the stale copy is refused and changes nothing
    assert isinstance(again, JobRecord)
    assert (again.attempts, again.started_at) == (2, clock.now())
    assert isinstance(stale, Refused)
    assert "attempt 1 is older than attempt 2" in stale.detail
    assert store.get("j1") == again


def test_an_id_of_another_job_is_not_run(store: JobStore, clock: ManualClock) -> None:
    record = job_in(store, clock, QUEUED)
    refused = store.mark_running("j1", job="another_job", attempt=1)
    assert isinstance(refused, Refused)
    assert f"belongs to job {JOB}" in refused.detail
    assert store.get("j1") == record


def test_attempts_never_go_down(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    settled(store.mark_running("j1", job=JOB, attempt=3))
    for refused in (
        store.mark_retrying("j1", attempts=2, error="e", next_run_at=clock.now() + 1),
        store.mark_dead("j1", attempts=2, error="e"),
    ):
        assert isinstance(refused, Refused)
        assert "attempt 2 is older than attempt 3" in refused.detail
    record = store.get("j1")
    assert record is not None
    assert (record.state, record.attempts) == (RUNNING, 3)


def test_a_stale_attempt_cannot_kill_a_job_waiting_for_a_later_one(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RETRYING)
    settled(store.mark_running("j1", job=JOB, attempt=2))
    settled(store.mark_retrying("j1", attempts=2, error="again", next_run_at=clock.now() + 60))
    refused = store.mark_dead("j1", attempts=1, error="late")
    assert isinstance(refused, Refused)
    assert refused.detail == "attempt 1 is older than attempt 2, already recorded"
    record = store.get("j1")
    assert record is not None
    assert (record.state, record.last_error) == (RETRYING, "again")


@pytest.mark.parametrize("change", ["mark_succeeded", "mark_retrying", "mark_dead", "requeue_for_redrive"])
def test_a_change_to_a_job_with_no_row_is_refused_and_makes_none(
    aws: Clients, store: JobStore, clock: ManualClock, change: str
) -> None:
    ghost = JobRecord(id="ghost", job=JOB, state=RUNNING, attempts=1)
    outcome = CHANGES[change][1](store, clock, ghost)
    assert isinstance(outcome, Refused)
    assert (outcome.current, outcome.detail) == (None, "no such job")
    assert raw_item(aws, schema.job_pk("ghost")) is None


def test_a_retry_is_due_at_its_next_run_and_kept_until_a_ttl_after_it(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    next_run_at = clock.now() + 10 * 86400
    record = settled(
        store.mark_retrying("j1", attempts=1, error="Timeout", next_run_at=next_run_at, traceback="Traceback...")
    )
    assert (record.state, record.run_at, record.last_error, record.traceback) == (
        RETRYING,
        next_run_at,
        "Timeout",
        "Traceback...",
    )
    assert record.expires_at == math.ceil(next_run_at + DEFAULT_TTL_S)


def test_success_keeps_the_result_and_the_last_error_but_drops_the_old_traceback(
    store: JobStore, clock: ManualClock
) -> None:
    job_in(store, clock, RETRYING)
    settled(store.mark_running("j1", job=JOB, attempt=2))
    clock.advance(2)
    record = settled(store.mark_succeeded("j1", result_json='{"sent": 3}', ttl_s=3600))
    assert record == store.get("j1")
    assert (record.state, record.result, record.result_bytes, record.result_truncated) == (
        SUCCEEDED,
        '{"sent": 3}',
        11,
        False,
    )
    assert (record.finished_at, record.run_at, record.traceback, record.last_error) == (
        clock.now(),
        None,
        None,
        "boom",
    )
    assert record.expires_at == math.ceil(clock.now() + 3600)


def test_a_dead_job_keeps_its_error_and_a_redrive_starts_it_afresh(store: JobStore, clock: ManualClock) -> None:
    # Given a dead job
    dead = job_in(store, clock, DEAD)
    assert (dead.last_error, dead.traceback, dead.finished_at) == (
        "boom",
        "Traceback ...\nValueError: boom",
        1_700_000_002.0,
    )

    # When it is redriven, twice (an interrupted redrive run again), and then runs
    redriven = settled(store.requeue_for_redrive("j1"))
    clock.advance(1)
    again = settled(store.requeue_for_redrive("j1"))
    running = settled(store.mark_running("j1", job=JOB, attempt=1))

    # Then it was queued with its attempts reset and its times of the last life gone, its last error kept
    assert (redriven.state, redriven.attempts, redriven.started_at, redriven.finished_at) == (QUEUED, 0, None, None)
    assert redriven.last_error == "boom"
    assert (again.state, again.attempts) == (QUEUED, 0)
    assert (running.state, running.attempts) == (RUNNING, 1)


# --- caps ------------------------------------------------------------------------------------------------------


def test_a_result_up_to_the_cap_is_kept_whole(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    result = '"' + "é" * ((MAX_RESULT_BYTES - 2) // 2) + '"'  # two bytes a character
    assert len(result.encode()) == MAX_RESULT_BYTES
    record = settled(store.mark_succeeded("j1", result_json=result))
    assert (record.result, record.result_bytes, record.result_truncated) == (result, MAX_RESULT_BYTES, False)
    assert store.get("j1") == record


def test_a_result_over_the_cap_is_stored_as_its_size(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    result = '"' + "x" * MAX_RESULT_BYTES + '"'
    record = settled(store.mark_succeeded("j1", result_json=result))
    assert (record.result, record.result_bytes, record.result_truncated) == (None, MAX_RESULT_BYTES + 2, True)
    item = raw_item(aws, schema.job_pk("j1"))
    assert item is not None
    assert "result" not in item
    assert item["result_truncated"] == {"BOOL": True}


def test_no_result_is_no_result(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    record = settled(store.mark_succeeded("j1", result_json=None))
    assert (record.result, record.result_bytes, record.result_truncated) == (None, None, False)


def test_a_long_traceback_keeps_its_end_and_a_long_error_its_beginning(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    traceback = "Traceback (most recent call last):\n" + "  frame ✓\n" * 5000 + "ValueError: the real reason"
    error = "ValueError: " + "why " * 5000
    record = settled(store.mark_dead("j1", attempts=1, error=error, traceback=traceback))
    assert record.traceback is not None
    assert record.last_error is not None
    assert len(record.traceback.encode()) <= MAX_TRACEBACK_BYTES
    assert record.traceback.endswith("ValueError: the real reason")
    assert record.traceback.startswith(f"...[truncated from {len(traceback.encode())} bytes]\n")
    assert len(record.last_error.encode()) <= MAX_ERROR_BYTES
    assert record.last_error.startswith("ValueError: why why")
    assert record.last_error.endswith(f"...[truncated from {len(error.encode())} bytes]")
    assert store.get("j1") == record


# --- TTL ---------------------------------------------------------------------------------------------------------


def test_every_write_sets_the_ttl_from_now(aws: Clients, jobs_table: str, clock: ManualClock) -> None:
    # Given a store keeping rows for a day
    store = JobStore(table_name=jobs_table, dynamodb=aws.dynamodb, clock=clock, ttl_s=86400)
    expiries: list[tuple[str, int]] = []

    def expiry() -> int:
        item = raw_item(aws, schema.job_pk("j1"))
        assert item is not None
        assert item["expires_at"]["N"].isdigit()  # whole epoch seconds, as DynamoDB TTL wants
        return int(item["expires_at"]["N"])

    # When a job goes through its life, the clock moving between writes
    clock.advance(0.25)
    store.create("j1", JOB, enqueued_at=clock.now())
    expiries.append(("created", expiry()))
    clock.advance(100)
    store.mark_running("j1", job=JOB, attempt=1)
    expiries.append(("running", expiry()))
    clock.advance(100)
    store.mark_succeeded("j1", result_json="1")
    expiries.append(("succeeded", expiry()))

    # Then each write moved the expiry to a day after it (rounded up to the second)
    start = 1_700_000_000.25
    assert expiries == [
        ("created", math.ceil(start + 86400)),
        ("running", math.ceil(start + 100 + 86400)),
        ("succeeded", math.ceil(start + 200 + 86400)),
    ]


def test_a_dead_job_is_kept_as_long_as_its_message_may_wait_in_the_dlq(store: JobStore, clock: ManualClock) -> None:
    job_in(store, clock, RUNNING)
    dead = settled(store.mark_dead("j1", attempts=1, error="boom"))
    assert dead.expires_at == math.ceil(clock.now() + DEFAULT_DEAD_TTL_S) > math.ceil(clock.now() + DEFAULT_TTL_S)
    clock.advance(1)
    redriven = settled(store.requeue_for_redrive("j1", ttl_s=60))
    assert redriven.expires_at == math.ceil(clock.now() + 60)


def test_the_ttl_attribute_is_the_one_the_table_expires_by(aws: Clients, store: JobStore) -> None:
    spec = aws.dynamodb.describe_time_to_live(TableName=JOBS_TABLE)["TimeToLiveDescription"]
    assert spec["AttributeName"] == schema.TTL_ATTRIBUTE == "expires_at"
