"""JobClient.enqueue_many on moto: SendMessageBatch groups of 10 within the byte limit, per-item results, long delays
as schedules paced under throttling. Requests are counted with botocore's before-call hook; faults are injected
there too (below botocore's retries, so what is tested is the client's own handling)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from sqsloops.clock import ManualClock
from sqsloops.jobs.client import JobCall, JobClient
from sqsloops.jobs.errors import JobArgsError, UnknownJobError
from sqsloops.jobs.store import BATCH_WRITE_ATTEMPTS, JobStore, UnprocessedWritesError
from tests.conftest import Clients
from tests.fixtures.loop_kit import throttle
from tests.functional.jobs.client_kit import GROUP, ROLE_ARN, charge, make_world, send_email


def count(client: Any, operation: str) -> list[str]:
    seen: list[str] = []
    client.meta.events.register(f"before-call.{operation}", lambda **_: seen.append(operation))
    return seen


def test_enqueue_many_sends_in_batches_of_ten_with_per_item_results(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given 23 good calls with a bad one and a duplicate among them
    world = make_world(aws, store, clock)
    batches = count(aws.sqs, "sqs.SendMessageBatch")
    calls = [JobCall(send_email, [n]) for n in range(23)]
    calls.insert(5, JobCall("no_such_job", [1]))
    calls.insert(9, JobCall(send_email, [object()]))
    calls += [JobCall(charge, [1]), JobCall(charge, [1])]

    # When they are enqueued at once
    results = world.client.enqueue_many(calls)

    # Then every call has its result, in order; the bad ones failed alone, the duplicate sent nothing
    assert [r.index for r in results] == list(range(len(calls)))
    assert isinstance(results[5].error, UnknownJobError)
    assert isinstance(results[9].error, JobArgsError)
    assert sum(r.ok for r in results) == 25
    assert results[-1].handle is not None
    assert results[-1].handle.duplicate
    assert results[-1].handle.id == results[-2].handle.id  # type: ignore[union-attr]
    # in ceil(23 / 10) + 1 batches, every good job on its queue once
    assert len(batches) == 4
    assert world.queue_count("send_email") == 23
    assert world.queue_count("charge") == 1


def test_a_batch_is_cut_at_the_byte_limit(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    world = make_world(aws, store, clock)
    client = JobClient(
        sqs=aws.sqs,
        scheduler=aws.scheduler,
        store=store,
        schedule_group=GROUP,
        scheduler_role_arn=ROLE_ARN,
        jobs=[send_email],
        queue_urls=world.urls,
        clock=clock,
        max_batch_bytes=3000,
    )
    batches = count(aws.sqs, "sqs.SendMessageBatch")
    results = client.enqueue_many([JobCall(send_email, [n, "x" * 1000]) for n in range(6)])
    assert all(r.ok for r in results)
    assert len(batches) == 3  # two ~1.1 KB messages per 3000-byte batch


def test_a_batch_sqs_refuses_fails_its_items_and_leaves_no_rows(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given a queue that refuses messages over 1 KiB (moto refuses the whole batch holding one), and another queue
    world = make_world(aws, store, clock)
    aws.sqs.set_queue_attributes(QueueUrl=world.urls["send_email"], Attributes={"MaximumMessageSize": "1024"})
    calls = [JobCall(send_email, [1]), JobCall(send_email, [2, "x" * 2000]), JobCall(charge, [3])]

    # When the three are enqueued together
    results = world.client.enqueue_many(calls)

    # Then the refused batch's items failed with SQS's error and kept no row; the other queue's job went
    assert [r.ok for r in results] == [False, False, True]
    assert "InvalidParameterValue" in str(results[0].error)
    rows = {item["job_id"]["S"] for item in world.rows() if item["pk"]["S"].startswith("job#")}
    assert rows == {results[2].handle.id}  # type: ignore[union-attr]
    assert world.queue_count("send_email") == 0


def test_long_delays_are_schedules_paced_when_create_schedule_is_throttled(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given Scheduler throttling the next 3 CreateSchedule calls past botocore's retries
    world = make_world(aws, store, clock)
    throttled = throttle(aws.scheduler, "scheduler.CreateSchedule", times=3)
    start = clock.monotonic()

    # When 5 jobs are enqueued two hours out
    results = world.client.enqueue_many([JobCall(send_email, [n], delay="2h") for n in range(5)])

    # Then every one is scheduled after the client waited out the throttling (on its clock)
    assert all(r.ok for r in results)
    assert len(throttled) == 3
    assert len(world.schedules()) == 5
    assert clock.monotonic() - start == pytest.approx(0.25 + 0.5 + 1.0)


def test_a_schedule_throttled_for_good_fails_its_item_and_takes_back_its_row(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    world = make_world(aws, store, clock)
    throttle(aws.scheduler, "scheduler.CreateSchedule", times=100)
    [result] = world.client.enqueue_many([JobCall(send_email, [1], delay="2h")])
    assert result.error is not None
    assert "Throttling" in str(result.error)
    assert world.rows() == []


def unprocessed(client: Any, *, times: int) -> list[int]:
    """Answer the next `times` BatchWriteItem calls as DynamoDB does when it throttles a batch: HTTP 200, every item
    back in UnprocessedItems, nothing written (injected below botocore, on its before-call hook)."""
    answered: list[int] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if len(answered) >= times:
            return None
        requested = json.loads(params["body"])["RequestItems"]  # the serialized request (DynamoDB's JSON protocol)
        answered.append(sum(len(items) for items in requested.values()))
        http = AWSResponse("https://injected.invalid", 200, {}, None)  # type: ignore[arg-type]
        return http, {"UnprocessedItems": requested, "ResponseMetadata": {"HTTPStatusCode": 200}}

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", answer)
    return answered


def test_tracked_jobs_with_ids_of_their_own_get_their_rows_25_a_request(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given 60 tracked jobs with no key and no id of the caller's, and 2 with the caller's id (one repeated)
    world = make_world(aws, store, clock)
    batch_writes, puts = count(aws.dynamodb, "dynamodb.BatchWriteItem"), count(aws.dynamodb, "dynamodb.PutItem")
    calls = [JobCall(send_email, [n]) for n in range(60)]
    calls += [JobCall(send_email, [1], id="mine"), JobCall(send_email, [1], id="mine")]

    # When they are enqueued at once
    results = world.client.enqueue_many(calls)

    # Then the 60 rows took ceil(60 / 25) requests; the caller's ids kept their conditional put (a duplicate found)
    assert all(r.ok for r in results)
    assert (len(batch_writes), len(puts)) == (3, 2)
    assert results[-1].handle.duplicate  # type: ignore[union-attr]
    assert {r.handle.status().state.value for r in results[:60]} == {"queued"}  # type: ignore[union-attr]
    assert world.queue_count("send_email") == 61


def test_rows_dynamodb_leaves_unprocessed_are_sent_again(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    world = make_world(aws, store, clock)
    answered = unprocessed(aws.dynamodb, times=2)

    results = world.client.enqueue_many([JobCall(send_email, [n]) for n in range(30)])

    assert [r.error for r in results if not r.ok] == []
    assert answered == [25, 25]  # the first chunk twice, then its resend and the second chunk went through
    assert world.queue_count("send_email") == 30
    assert len([i for i in world.rows() if i["pk"]["S"].startswith("job#")]) == 30


def test_rows_dynamodb_keeps_leaving_unprocessed_fail_their_jobs_and_nothing_is_sent(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given DynamoDB throttling every attempt at the first chunk of 25
    world = make_world(aws, store, clock)
    unprocessed(aws.dynamodb, times=BATCH_WRITE_ATTEMPTS)

    # When 30 jobs are enqueued
    results = world.client.enqueue_many([JobCall(send_email, [n]) for n in range(30)])

    # Then the chunk's 25 failed with why and left no message and no row; the other 5 went
    assert [r.ok for r in results] == [False] * 25 + [True] * 5
    assert isinstance(results[0].error, UnprocessedWritesError)
    assert world.queue_count("send_email") == 5
    assert len([i for i in world.rows() if i["pk"]["S"].startswith("job#")]) == 5
