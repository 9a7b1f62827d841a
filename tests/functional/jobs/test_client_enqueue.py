"""JobClient.enqueue on moto: now, delayed (DelaySeconds or a one-time schedule), unique, by id, by name, and bad
input that writes nothing. What an enqueue did is read back from SQS, Scheduler and the Jobs table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs.catalog import CatalogEntry, CatalogReader, write_catalog
from sqsloops.jobs.context import set_enqueuer
from sqsloops.jobs.enqueue import enqueue
from sqsloops.jobs.errors import (
    EnqueueTimeError,
    JobArgsError,
    JobNotFoundError,
    NotCancellableError,
    UnknownJobError,
)
from sqsloops.jobs.handle import JobFailedError, ResultTimeoutError, UntrackedJobError
from sqsloops.jobs.states import CANCELLED, QUEUED, SCHEDULED
from sqsloops.jobs.store import JobStore
from tests.conftest import Clients
from tests.fixtures.loop_kit import server_error
from tests.functional.jobs.client_kit import GROUP, ROLE_ARN, World, charge, firehose, make_world, send_email, serial
from tests.functional.jobs.conftest import JOBS_TABLE


@pytest.fixture
def world(aws: Clients, store: JobStore, clock: ManualClock) -> Iterator[World]:
    built = make_world(aws, store, clock)
    previous = built.client.install()
    yield built
    set_enqueuer(previous)


def now_of(world: World) -> datetime:
    return datetime.fromtimestamp(world.clock.now(), UTC)


def test_enqueue_now_sends_the_envelope_and_writes_a_queued_row(world: World) -> None:
    # When a job is enqueued through its declaration
    handle = send_email.enqueue(42, template="reset")

    # Then its envelope is on its queue and its row says queued
    [message] = world.messages("send_email")
    assert message["body"] | {"id": "x", "enqueued_at": "x"} == {
        "v": 1,
        "id": "x",
        "job": "send_email",
        "args": [42, "reset"],  # bound to the signature: positional-or-keyword parameters travel as positionals
        "kwargs": {},
        "enqueued_at": "x",
        "attempt": 0,
    }
    assert message["body"]["id"] == handle.id
    record = handle.status()
    assert (record.state, record.job, record.enqueued_at) == (QUEUED, "send_email", world.clock.now())
    assert not handle.duplicate


def test_a_delay_within_15_minutes_is_sqs_delay_seconds(world: World) -> None:
    handle = send_email.enqueue(1, delay="10m")
    delayed = world.aws.sqs.get_queue_attributes(
        QueueUrl=world.urls["send_email"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert delayed == "1"
    assert world.schedules() == []
    record = handle.status()
    assert (record.state, record.run_at) == (QUEUED, world.clock.now() + 600)


def test_a_longer_delay_is_a_one_time_schedule_that_deletes_itself(world: World) -> None:
    # When a job is delayed by an hour
    handle = send_email.enqueue(7, delay="1h")

    # Then nothing is on the queue yet; a one-time schedule in the stack's group carries the envelope to it
    assert world.queue_count("send_email") == 0
    [schedule] = world.schedules()
    due = now_of(world) + timedelta(hours=1)
    assert schedule["Name"] == f"job-{handle.id}" == handle.schedule_name
    assert schedule["GroupName"] == GROUP
    assert schedule["ScheduleExpression"] == f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"].endswith(":send_email")
    assert target["RoleArn"] == ROLE_ARN
    assert target["DeadLetterConfig"] == {"Arn": world.dlq_arn}
    assert json.loads(target["Input"])["id"] == handle.id
    assert json.loads(target["Input"])["scheduled"] is True  # due on arrival: the schedule kept the time
    assert "SqsParameters" not in target
    # and the row says scheduled, with its schedule's name
    record = handle.status()
    assert (record.state, record.run_at, record.schedule_name) == (SCHEDULED, due.timestamp(), handle.schedule_name)


def test_any_delay_on_a_fifo_queue_is_a_schedule_with_the_message_group(world: World) -> None:
    handle = serial.enqueue("cust-9", 1, delay="5s")
    assert world.queue_count("serial") == 0
    [schedule] = world.schedules()
    assert schedule["Target"]["SqsParameters"] == {"MessageGroupId": "cust-9"}
    assert handle.status().state is SCHEDULED


def test_a_fifo_job_due_now_carries_its_group_and_id_as_deduplication(world: World) -> None:
    handle = serial.enqueue("cust-1", 2)
    [message] = world.messages("serial")
    assert message["attributes"]["MessageGroupId"] == "cust-1"
    assert message["attributes"]["MessageDeduplicationId"] == handle.id


def test_run_at_a_time_is_scheduled_for_that_time(world: World) -> None:
    later = now_of(world) + timedelta(days=3, seconds=0.25)
    handle = send_email.enqueue(1, run_at=later)
    [schedule] = world.schedules()
    whole = (later + timedelta(seconds=0.75)).strftime("%Y-%m-%dT%H:%M:%S")  # rounded up: never early
    assert schedule["ScheduleExpression"] == f"at({whole})"
    assert handle.status().run_at == later.timestamp()


def test_a_unique_job_enqueued_twice_sends_once_and_returns_the_first_handle(world: World) -> None:
    first = charge.enqueue(42, amount=10)
    second = charge.enqueue(42, amount=99)
    assert (second.id, second.duplicate, first.duplicate) == (first.id, True, False)
    assert [(m["body"]["args"], m["body"]["key"]) for m in world.messages("charge")] == [([42, 10], "order-42")]


def test_an_explicit_key_and_an_explicit_id(world: World) -> None:
    first = charge.enqueue(1, key="batch-7", id="charge-batch-7")
    again = charge.enqueue(2, key="batch-7")
    assert first.id == "charge-batch-7"
    assert (again.id, again.duplicate) == ("charge-batch-7", True)
    assert world.queue_count("charge") == 1


def test_an_id_enqueued_twice_is_one_job(world: World) -> None:
    first = send_email.enqueue(1, id="welcome-1")
    second = send_email.enqueue(1, id="welcome-1")
    assert (first.id, first.duplicate, second.id, second.duplicate) == ("welcome-1", False, "welcome-1", True)
    assert world.queue_count("send_email") == 1


def test_enqueue_by_name_with_keyword_arguments(world: World) -> None:
    handle = enqueue("send_email", {"user_id": 5})
    [message] = world.messages("send_email")
    assert (message["body"]["args"], message["body"]["kwargs"]) == ([5], {})  # bound by the declaration it knows
    assert handle.status().job == "send_email"


def test_enqueue_by_name_of_a_job_only_the_catalog_knows(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    # Given a producer that imports no job code: only the catalog written by apply
    url = aws.sqs.create_queue(QueueName="report")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    entry = CatalogEntry(job="report", queue_url=url, queue_arn=arn, unique="until_done", key="r-{day}")
    write_catalog(aws.dynamodb, table_name=JOBS_TABLE, entries={"report": entry}, expected_version=0, clock=clock)
    catalog = CatalogReader(dynamodb=aws.dynamodb, table_name=JOBS_TABLE, clock=clock)
    world = make_world(aws, store, clock, catalog=catalog)

    # When it enqueues the job by name, twice, and an unknown name once
    first = world.client.enqueue("report", [], {"day": "2026-01-02"}, delay="2h")
    second = world.client.enqueue("report", [], {"day": "2026-01-02"})
    with pytest.raises(UnknownJobError, match="no job is named 'nope'"):
        world.client.enqueue("nope", [1])

    # Then the first is scheduled to the catalog's queue ARN, the second is its duplicate
    [schedule] = world.schedules()
    assert schedule["Target"]["Arn"] == arn
    assert json.loads(schedule["Target"]["Input"])["key"] == "r-2026-01-02"
    assert (second.id, second.duplicate) == (first.id, True)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: enqueue("no_such_job", [1]), UnknownJobError, "no job is named"),
        (lambda: send_email.enqueue(datetime(2026, 1, 1)), JobArgsError, "datetime is not JSON"),
        (lambda: send_email.enqueue(1, template="x" * 1_100_000), JobArgsError, "over the 1048576-byte limit"),
        (lambda: send_email.enqueue(1, template="x" * 300_000, delay="1h"), JobArgsError, "262144-byte"),
        (lambda: send_email.enqueue(1, delay="-5m"), EnqueueTimeError, "delay"),
        (lambda: send_email.enqueue(1, delay="soon"), EnqueueTimeError, "delay"),
        (lambda: enqueue("send_email", [1], delay="-1s"), EnqueueTimeError, "delay"),
        (
            lambda: send_email.enqueue(1, run_at=datetime(2020, 1, 1, tzinfo=UTC)),
            EnqueueTimeError,
            "is in the past",
        ),
        (lambda: send_email.enqueue(1, run_at=datetime(2099, 1, 1)), EnqueueTimeError, "with a time zone"),
        (lambda: send_email.enqueue(1, id="has space"), JobArgsError, "not a valid job id"),
        (lambda: send_email.enqueue(1, key="k"), JobArgsError, "key= is for unique jobs"),
        (send_email.enqueue, JobArgsError, "arguments do not fit"),
    ],
)
def test_bad_input_is_a_named_error_and_writes_nothing(world: World, call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
    assert (world.queue_count("send_email"), world.schedules(), world.rows()) == (0, [], [])


def test_a_failed_send_takes_back_the_row_and_the_key(world: World) -> None:
    # Given SQS failing the next sends (past botocore's retries: injected before them)
    server_error(world.aws.sqs, "sqs.SendMessage", times=1)

    # When a unique job is enqueued, then enqueued again once SQS is back
    with pytest.raises(Exception, match="InternalServerError"):
        charge.enqueue(5)
    again = charge.enqueue(5)

    # Then the failed attempt left nothing: the retry is the first job, not its duplicate
    assert not again.duplicate
    assert world.queue_count("charge") == 1
    assert [item["pk"]["S"] for item in world.rows() if item["pk"]["S"].startswith("job#")] == [f"job#{again.id}"]


def test_cancel_of_a_scheduled_job_deletes_its_schedule_and_frees_its_key(world: World) -> None:
    # Given a unique job scheduled for tomorrow
    handle = charge.enqueue(8, delay="1d")
    assert len(world.schedules()) == 1

    # When it is cancelled
    record = handle.cancel()

    # Then its row says cancelled, its schedule is gone, and its key is free for a new job
    assert record.state is CANCELLED
    assert handle.status().state is CANCELLED
    assert world.schedules() == []
    assert not charge.enqueue(8).duplicate


def test_cancel_of_an_unknown_id_and_of_a_finished_job(world: World) -> None:
    with pytest.raises(JobNotFoundError):
        world.client.cancel("never-enqueued")
    with pytest.raises(JobNotFoundError):
        world.client.cancel("not an id!")
    handle = send_email.enqueue(1)
    world.store.mark_running(handle.id, job="send_email", attempt=1)
    with pytest.raises(NotCancellableError, match="running"):
        handle.cancel()
    assert world.rows()
    assert all(item.get("state", {}).get("S") != "cancelled" for item in world.rows())


def test_result_polls_until_the_job_is_final(world: World) -> None:
    # Given a job that a runner finishes while the caller waits (the store's writes, on the clock's sleep)
    handle = send_email.enqueue(3)
    slept: list[float] = []
    sleep = world.clock.sleep

    def runner_meanwhile(seconds: float) -> None:
        slept.append(seconds)
        sleep(seconds)
        if len(slept) == 3:
            world.store.mark_running(handle.id, job="send_email", attempt=1)
        if len(slept) == 5:
            world.store.mark_succeeded(handle.id, result_json='{"sent": 3}')

    world.clock.sleep = runner_meanwhile  # type: ignore[method-assign]

    # Then result() returns the stored JSON, after pauses that grew
    assert handle.result(timeout=60) == {"sent": 3}
    assert slept == sorted(slept)
    assert slept[0] < slept[-1]


def test_result_times_out_and_a_dead_job_raises(world: World) -> None:
    handle = send_email.enqueue(4)
    with pytest.raises(ResultTimeoutError, match="is queued"):
        handle.result(timeout=5)
    world.store.mark_running(handle.id, job="send_email", attempt=1)
    world.store.mark_dead(handle.id, attempts=1, error="SMTP said no")
    with pytest.raises(JobFailedError, match="SMTP said no"):
        handle.result(timeout=5)


def test_an_untracked_job_writes_no_row_and_has_no_status(world: World) -> None:
    handle = firehose.enqueue(1)
    assert world.queue_count("firehose") == 1
    assert world.rows() == []
    with pytest.raises(UntrackedJobError):
        handle.status()
