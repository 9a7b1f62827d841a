"""The composition root builds the job client from the stack's settings, and `fn.enqueue` then reaches SQS."""

from __future__ import annotations

import json

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs import context
from sqsloops.jobs.catalog import CatalogEntry, write_catalog
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.store import JobStore
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.functional.jobs.client_kit import GROUP, ROLE_ARN, send_email


def settings(**jobs: str) -> Settings:
    return Settings(queues_table="queues", loops_table="loops", **jobs)


@pytest.fixture(autouse=True)
def no_enqueuer_left_behind() -> object:
    previous = context.set_enqueuer(None)
    yield
    context.set_enqueuer(previous)


def test_a_stack_without_the_job_layer_says_what_is_missing(aws: Clients) -> None:
    root = JobsRoot(settings(), clients=aws)
    with pytest.raises(ConfigError, match="SQSLOOPS_JOBS_TABLE, SQSLOOPS_SCHEDULE_GROUP, SQSLOOPS_SCHEDULER_ROLE_ARN"):
        _ = root.job_client


def test_the_roots_job_client_enqueues_through_the_catalog_and_is_the_process_enqueuer(
    aws: Clients, jobs_table: str, store: JobStore, clock: ManualClock
) -> None:
    # Given a stack whose catalog (as `jobs apply` writes it) maps send_email to its queue
    url = aws.sqs.create_queue(QueueName="sqsloops-test-send_email")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    entry = CatalogEntry.for_job(send_email, queue_url=url, queue_arn=arn)
    write_catalog(aws.dynamodb, table_name=jobs_table, entries={entry.job: entry}, expected_version=0, clock=clock)
    root = JobsRoot(
        settings(jobs_table=jobs_table, schedule_group=GROUP, scheduler_role_arn=ROLE_ARN), clients=aws, clock=clock
    )

    # When the root's client is built, then a job is enqueued the way user code does it
    client = root.job_client
    handle = send_email.enqueue(7)

    # Then that client is the one .enqueue() used, the job is queued, and its message is on the catalog's queue
    assert context.current_enqueuer() is client
    assert handle.status().state == "queued"
    body = json.loads(aws.sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert (body["id"], body["job"], body["args"]) == (handle.id, "send_email", [7])
