"""`sqsloops.jobs.lambda_handler`: a per-job function on moto, given Lambda's SQS event, with the runner's rules."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import sqsloops.jobs
from sqsloops.clock import ManualClock
from sqsloops.dispatch import to_lambda_record
from sqsloops.jobs import Envelope, job
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.states import DEAD, QUEUED, RETRYING, SUCCEEDED
from sqsloops.settings import Settings
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import FakeLambdaContext


@job(retries=2, backoff=("45s",), timeout="10s")
def resize(width: int) -> dict[str, int]:
    if width <= 0:
        raise RuntimeError("no width")
    if width > 10_000:
        raise ValueError("too wide")
    return {"width": width}


resize_no_retry = job(name="resize_once", retries=0)(resize.fn)


@dataclasses.dataclass
class Function:
    aws: Clients
    root: JobsRoot
    clock: ManualClock
    queue: MadeQueue

    def enqueue(self, name: str, *args: Any) -> Envelope:
        now = self.clock.now()
        envelope = Envelope.create(name, args, {}, now=datetime.fromtimestamp(now, tz=UTC))
        assert self.root.job_store is not None
        assert self.root.job_store.create(envelope.id, name, enqueued_at=now)
        self.aws.sqs.send_message(QueueUrl=self.queue.url, MessageBody=envelope.to_json())
        return envelope

    def event(self) -> dict[str, Any]:
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.queue.url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        return {"Records": [to_lambda_record(m, queue_arn=self.queue.arn, region=REGION) for m in messages]}

    def state(self, envelope: Envelope) -> Any:
        assert self.root.job_store is not None
        record = self.root.job_store.get(envelope.id)
        assert record is not None
        return record.state

    def depth(self, url: str) -> int:
        attrs = self.aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def fn(aws: Clients, settings: Settings, jobs_table: str, make_queue: Callable[..., MadeQueue]) -> Function:
    clock = ManualClock()
    root = JobsRoot(dataclasses.replace(settings, jobs_table=jobs_table), clients=aws, clock=clock)
    return Function(aws=aws, root=root, clock=clock, queue=make_queue("resize", max_receive_count=100))


def test_a_batch_is_run_settled_and_reported_as_lambda_expects(fn: Function) -> None:
    # Given a handler for two jobs, and a batch: a success, a retry, a non-retryable failure, an unknown job
    handler = sqsloops.jobs.lambda_handler([resize, resize_no_retry], root=lambda: fn.root)
    ok, later, poison = fn.enqueue("resize", 640), fn.enqueue("resize", 0), fn.enqueue("resize_once", 20_000)
    stray = Envelope.create("gone", [], {}, now=datetime.fromtimestamp(fn.clock.now(), tz=UTC))
    fn.aws.sqs.send_message(QueueUrl=fn.queue.url, MessageBody=stray.to_json())
    event = fn.event()
    ids = {json.loads(r["body"])["id"]: r["messageId"] for r in event["Records"]}

    # When the function is invoked with plenty of time left
    reply = handler(event, FakeLambdaContext(fn.clock, fn.clock.monotonic() + 300))

    # Then the success is done, the retry is hidden for its backoff and reported, the dead ones are in the DLQ
    assert (fn.state(ok), fn.state(later), fn.state(poison)) == (SUCCEEDED, RETRYING, DEAD)
    reported = {item["itemIdentifier"] for item in reply["batchItemFailures"]}
    assert ids[ok.id] not in reported
    assert {ids[later.id], ids[poison.id], ids[stray.id]} <= reported
    dead = [
        json.loads(m["Body"])["id"]
        for m in fn.aws.sqs.receive_message(QueueUrl=fn.queue.dlq_url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(dead) == sorted([poison.id, stray.id])
    assert fn.depth(fn.queue.url) == 1  # only the retry is left, hidden


def test_a_job_that_would_outlast_the_invocation_is_not_started(fn: Function) -> None:
    # Given a job with a 10 s timeout and an invocation with 5 s left
    handler = sqsloops.jobs.lambda_handler(resize, root=lambda: fn.root)
    envelope = fn.enqueue("resize", 640)

    # When the function is invoked
    reply = handler(fn.event(), FakeLambdaContext(fn.clock, fn.clock.monotonic() + 5))

    # Then it was handed back untouched: still queued, no attempt spent, reported for a retry
    assert len(reply["batchItemFailures"]) == 1
    assert fn.state(envelope) is QUEUED
    assert fn.depth(fn.queue.url) == 1
