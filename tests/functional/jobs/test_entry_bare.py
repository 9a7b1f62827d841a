"""Bare entry-topic messages through a per-job Lambda (`sqsloops.jobs.lambda_handler`) on moto: published to an SNS
topic with raw delivery, received with their attributes, run with the loop runner's rules (one code path: the
JobsDispatcher): unique jobs claim their key at the runner, a dead one reaches the DLQ as its envelope (its id kept),
and a redrive moves it back, as it does a bare message SQS dead-lettered itself."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from freezegun import freeze_time

import sqsloops.jobs
from sqsloops.clock import ManualClock
from sqsloops.dispatch import to_lambda_record
from sqsloops.jobs import job
from sqsloops.jobs.catalog import CatalogEntry, write_catalog
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.schema import key_pk
from sqsloops.jobs.states import DEAD, QUEUED, SUCCEEDED
from sqsloops.jobs.store import JobStore
from sqsloops.ops.jobs_admin import JobsAdmin
from sqsloops.settings import Settings
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import FakeLambdaContext
from tests.functional.jobs.conftest import raw_item

RAN: list[tuple[str, Any]] = []
BROKEN: set[str] = set()  # names of jobs that fail for now (a redrive test fixes them)


@job(unique="1h", key="order-{order}")
def charge(order: str, cents: int) -> None:
    RAN.append(("charge", (order, cents)))


@job(unique="until_done")
def notify(user: str) -> None:
    RAN.append(("notify", user))


@job(retries=0)
def flaky(n: int) -> int:
    RAN.append(("flaky", n))
    if "flaky" in BROKEN:
        raise RuntimeError("still broken")
    return n


@job
def greet(name: str) -> str:
    RAN.append(("greet", name))
    return f"hello {name}"


JOBS = [charge, notify, flaky, greet]


@dataclasses.dataclass
class Entry:
    """A per-job function's queue subscribed (raw) to an entry topic, with the stack's Jobs table."""

    aws: Clients
    root: JobsRoot
    clock: ManualClock
    queue: MadeQueue
    topic: str

    @property
    def store(self) -> JobStore:
        assert self.root.job_store is not None
        return self.root.job_store

    def publish(self, body: str, **attributes: str) -> None:
        self.aws.sns.publish(
            TopicArn=self.topic,
            Message=body,
            MessageAttributes={name: {"DataType": "String", "StringValue": v} for name, v in attributes.items()},
        )

    def event(self) -> dict[str, Any]:
        """Lambda's SQS event for what the queue holds now (attributes included, as an event source mapping has)."""
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        return {"Records": [to_lambda_record(m, queue_arn=self.queue.arn, region=REGION) for m in messages]}

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        handler = sqsloops.jobs.lambda_handler(JOBS, root=lambda: self.root)
        reply: dict[str, Any] = handler(event, FakeLambdaContext(self.clock, self.clock.monotonic() + 300))
        return reply

    def depth(self, url: str) -> int:
        attrs = self.aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def messages(self, url: str) -> list[dict[str, Any]]:
        """What the queue holds (received with its attributes, then handed back)."""
        found = self.aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        return [dict(m) for m in found]

    def admin(self) -> JobsAdmin:
        entries = {
            fn.name: CatalogEntry(job=fn.name, queue_url=self.queue.url, queue_arn=self.queue.arn) for fn in JOBS
        }
        table = self.root.settings.jobs_table
        write_catalog(self.aws.dynamodb, table_name=table, entries=entries, expected_version=0, clock=self.clock)
        return JobsAdmin(
            sqs=self.aws.sqs,
            store=self.store,
            admin=None,  # type: ignore[arg-type]  # redrive never registers anything
            jobs_table=table,
            dynamodb=self.aws.dynamodb,
            clock=self.clock,
        )


@pytest.fixture
def entry(aws: Clients, settings: Settings, jobs_table: str, make_queue: Callable[..., MadeQueue]) -> Entry:
    RAN.clear()
    BROKEN.clear()
    clock = ManualClock()
    root = JobsRoot(dataclasses.replace(settings, jobs_table=jobs_table), clients=aws, clock=clock)
    queue = make_queue("entry-jobs", max_receive_count=100)
    topic = aws.sns.create_topic(Name="entry")["TopicArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue.arn, Attributes={"RawMessageDelivery": "true"})
    return Entry(aws, root, clock, queue, topic)


def ids_of(reply: dict[str, Any]) -> set[str]:
    return {item["itemIdentifier"] for item in reply["batchItemFailures"]}


# ---------------------------------------------------------------- the per-job Lambda wraps bare messages


def test_a_per_job_lambda_runs_a_bare_message_as_the_loop_does(entry: Entry) -> None:
    # Given a bare message published with an id
    entry.publish('["ada"]', job="greet", id="greet-ada")
    # When the function is invoked with it
    reply = entry.invoke(entry.event())
    # Then it ran with the body as its args, under that id, and was deleted
    assert reply == {"batchItemFailures": []}
    assert RAN == [("greet", "ada")]
    row = entry.store.get("greet-ada")
    assert row is not None
    assert (row.state, row.result) == (SUCCEEDED, '"hello ada"')
    assert entry.depth(entry.queue.url) == 0


# ---------------------------------------------------------------- unique jobs through the entry topic


def test_a_unique_job_claims_its_rendered_key_and_a_duplicate_is_skipped_and_counted(
    entry: Entry, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two bare messages for the same order (a window-unique job with a key template), different ids
    # When each is delivered, one after the other
    entry.publish('{"order": "o-1", "cents": 500}', job="charge", id="charge-a")
    first = entry.invoke(entry.event())
    entry.publish('{"order": "o-1", "cents": 500}', job="charge", id="charge-b")
    second = entry.invoke(entry.event())
    # Then the job ran once; the duplicate was deleted, has no row, and was counted
    assert (first, second) == ({"batchItemFailures": []}, {"batchItemFailures": []})
    assert RAN == [("charge", ("o-1", 500))]
    rows = [entry.store.get(i) for i in ("charge-a", "charge-b")]
    assert rows[0] is not None
    assert rows[0].state is SUCCEEDED
    assert rows[1] is None
    claim = raw_item(entry.aws, key_pk("charge", "order-o-1"))
    assert claim is not None
    assert claim["job_id"]["S"] == "charge-a"
    assert entry.depth(entry.queue.url) == 0
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [(line.get("JobSucceeded"), line.get("JobDuplicate")) for line in emf if line.get("job") == "charge"] == [
        ([1.0], None),
        (None, [1.0]),
    ]


def test_a_key_attribute_is_the_key_and_a_job_enqueued_by_code_holds_it_too(entry: Entry) -> None:
    # Given a unique job with no key template: enqueued from code with key "u-1" (claimed there, still held)
    client = JobClient(
        sqs=entry.aws.sqs,
        scheduler=entry.aws.scheduler,
        store=entry.store,
        schedule_group="g",
        scheduler_role_arn="arn:aws:iam::123456789012:role/r",
        jobs=(notify,),
        queue_urls={"notify": entry.aws.sqs.create_queue(QueueName="elsewhere")["QueueUrl"]},
        clock=entry.clock,
    )
    held = client.enqueue(notify, ["bob"], key="u-1", id="by-code")
    # When a bare message with the same key attribute arrives, then one with another key
    entry.publish('["bob"]', job="notify", key="u-1", id="by-sns-1")
    skipped = entry.invoke(entry.event())
    entry.publish('["bob"]', job="notify", key="u-2", id="by-sns-2")
    ran = entry.invoke(entry.event())
    # Then the first is a duplicate of the enqueued job (skipped, deleted), the second ran and freed its key
    assert (skipped, ran) == ({"batchItemFailures": []}, {"batchItemFailures": []})
    assert held.duplicate is False
    assert RAN == [("notify", "bob")]
    assert entry.store.get("by-sns-1") is None
    row = entry.store.get("by-sns-2")
    assert row is not None
    assert row.state is SUCCEEDED
    assert raw_item(entry.aws, key_pk("notify", "u-2")) is None  # until_done: released at success


def test_an_sns_duplicate_of_a_finished_unique_job_is_skipped_by_its_row_and_claims_nothing(entry: Entry) -> None:
    # Given an until_done job that ran and released its key
    entry.publish('["cy"]', job="notify", key="u-9", id="n-9")
    entry.invoke(entry.event())
    assert raw_item(entry.aws, key_pk("notify", "u-9")) is None
    # When SNS delivers the same message again (at-least-once)
    entry.publish('["cy"]', job="notify", key="u-9", id="n-9")
    reply = entry.invoke(entry.event())
    # Then it is skipped by its row, and the key stays free for the next job
    assert reply == {"batchItemFailures": []}
    assert RAN == [("notify", "cy")]
    assert raw_item(entry.aws, key_pk("notify", "u-9")) is None


def test_a_unique_job_with_neither_key_attribute_nor_template_is_dead_with_its_reason(entry: Entry) -> None:
    entry.publish('["dee"]', job="notify", id="n-nokey")
    entry.invoke(entry.event())
    assert RAN == []
    [dead] = entry.messages(entry.queue.dlq_url)
    assert json.loads(dead["Body"])["id"] == "n-nokey"
    assert entry.store.get("n-nokey") is None  # refused before any row or claim


# ---------------------------------------------------------------- dead bare messages and their redrive


def test_a_dead_bare_message_reaches_the_dlq_as_its_envelope_and_redrive_keeps_its_id(entry: Entry) -> None:
    # Given a bare message without an id attribute (its job id is the delivery's SQS message id), whose job fails
    BROKEN.add("flaky")
    entry.publish("[7]", job="flaky", tier="gold")
    event = entry.event()
    job_id = event["Records"][0]["messageId"]
    # When it runs and dies
    entry.invoke(event)
    row = entry.store.get(job_id)
    assert row is not None
    assert row.state is DEAD
    # Then the DLQ holds its envelope, under the same id, with the producer's other attributes but not the entry's
    [dead] = entry.messages(entry.queue.dlq_url)
    body = json.loads(dead["Body"])
    assert (body["id"], body["job"], body["args"]) == (job_id, "flaky", [7])
    assert set(dead.get("MessageAttributes", {})) == {"tier"}
    assert entry.depth(entry.queue.url) == 0
    # And once the job is fixed, a redrive moves it back: the same job id, its row requeued, then it succeeds
    BROKEN.clear()
    moved = entry.admin().redrive("flaky")
    assert (moved.done, moved.failed, moved.unreadable) == ([job_id], {}, 0)
    row = entry.store.get(job_id)
    assert row is not None
    assert row.state is QUEUED
    assert entry.invoke(entry.event()) == {"batchItemFailures": []}
    row = entry.store.get(job_id)
    assert row is not None
    assert (row.state, row.attempts) == (SUCCEEDED, 1)
    assert entry.depth(entry.queue.dlq_url) == 0


def test_a_dead_bare_message_whose_envelope_cannot_be_sent_is_retried_not_lost(
    entry: Entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a dying bare job and a DLQ that refuses the envelope
    BROKEN.add("flaky")
    sqs = entry.aws.sqs
    original = sqs.send_message

    def refuse(**request: Any) -> Any:
        if request["QueueUrl"] == entry.queue.dlq_url:
            raise RuntimeError("DLQ unavailable")
        return original(**request)

    with freeze_time(datetime.now(UTC)) as frozen:  # moto hides messages on the wall clock: moved by hand here
        entry.publish("[8]", job="flaky", id="f-8")
        monkeypatch.setattr(sqs, "send_message", refuse)
        # When it runs and dies
        reply = entry.invoke(entry.event())
        # Then it is reported and kept in its queue (hidden), nothing in the DLQ
        assert len(reply["batchItemFailures"]) == 1
        assert entry.depth(entry.queue.url) == 1
        assert entry.depth(entry.queue.dlq_url) == 0
        # And once the DLQ takes messages again, its next delivery (its row dead: not run again) moves the envelope
        monkeypatch.undo()
        frozen.tick(3600)
        assert entry.invoke(entry.event()) == {"batchItemFailures": []}
    assert RAN == [("flaky", 8)]
    [dead] = entry.messages(entry.queue.dlq_url)
    assert json.loads(dead["Body"])["id"] == "f-8"
    assert entry.depth(entry.queue.url) == 0


def test_a_bare_message_sqs_dead_lettered_itself_is_redriven_as_its_envelope(entry: Entry) -> None:
    # Given a bare message (no id attribute) that SQS moved to the DLQ after maxReceiveCount receives
    def max_receive_count(count: int) -> None:
        policy = {"deadLetterTargetArn": entry.queue.dlq_arn, "maxReceiveCount": str(count)}
        entry.aws.sqs.set_queue_attributes(QueueUrl=entry.queue.url, Attributes={"RedrivePolicy": json.dumps(policy)})

    max_receive_count(1)
    entry.publish('["eve"]', job="greet")
    [received] = entry.event()["Records"]
    entry.aws.sqs.change_message_visibility(
        QueueUrl=entry.queue.url, ReceiptHandle=received["receiptHandle"], VisibilityTimeout=0
    )
    assert entry.event()["Records"] == []  # the second receive moved it
    [dead] = entry.messages(entry.queue.dlq_url)
    assert dead["MessageAttributes"]["job"]["StringValue"] == "greet"  # bare, as published
    # When it is redriven
    max_receive_count(100)
    moved = entry.admin().redrive("greet")
    # Then it was read as the runner wraps it (id: its message id) and sent back as an envelope, not bare
    assert (moved.done, moved.unreadable) == ([dead["MessageId"]], 0)
    [back] = entry.messages(entry.queue.url)
    assert "MessageAttributes" not in back
    assert json.loads(back["Body"])["id"] == received["messageId"] == dead["MessageId"]
    assert entry.invoke(entry.event()) == {"batchItemFailures": []}
    assert RAN == [("greet", "eve")]


def test_a_bare_message_that_cannot_be_wrapped_stays_in_the_dlq_as_unreadable(entry: Entry) -> None:
    entry.publish("not json", job="greet", id="g-bad")
    entry.invoke(entry.event())
    [dead] = entry.messages(entry.queue.dlq_url)
    assert dead["Body"] == "not json"  # the malformed message itself, with its attributes
    moved = entry.admin().redrive("greet")
    assert (moved.done, moved.unreadable) == ([], 1)
    assert entry.depth(entry.queue.dlq_url) == 1
