"""A JobClient on moto: job queues, the stack's schedule group, and reading back what an enqueue left in AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqsloops.clock import ManualClock
from sqsloops.jobs import job
from sqsloops.jobs.catalog import CatalogReader
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.store import JobStore
from tests.conftest import ACCOUNT, Clients

GROUP = "sqsloops-test"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sqsloops-test-scheduler"


@job
def send_email(user_id: int, template: str = "welcome") -> dict[str, Any]:
    return {"sent": user_id, "template": template}


@job(unique="until_done", key="order-{order_id}")
def charge(order_id: int, amount: int = 0) -> None:
    return None


@job(group_by="customer_id")
def serial(customer_id: str, step: int) -> None:
    return None


@job(track=False)
def firehose(n: int) -> None:
    return None


JOBS = (send_email, charge, serial, firehose)


@dataclass
class World:
    aws: Clients
    clock: ManualClock
    store: JobStore
    client: JobClient
    urls: dict[str, str]
    dlq_arn: str

    def messages(self, job_name: str) -> list[dict[str, Any]]:
        """Every message on the job's queue (delays ignored: moto's delays follow the real clock), as envelopes with
        the SQS attributes that matter beside them."""
        url = self.urls[job_name]
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(20):
            batch = self.aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                if message["MessageId"] in seen:
                    continue
                seen.add(message["MessageId"])
                found.append({"body": json.loads(message["Body"]), "attributes": message.get("Attributes", {})})
        return found

    def queue_count(self, job_name: str) -> int:
        attributes = self.aws.sqs.get_queue_attributes(
            QueueUrl=self.urls[job_name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])

    def schedules(self) -> list[dict[str, Any]]:
        names = [s["Name"] for s in self.aws.scheduler.list_schedules(GroupName=GROUP)["Schedules"]]
        return [dict(self.aws.scheduler.get_schedule(Name=name, GroupName=GROUP)) for name in names]

    def rows(self) -> list[dict[str, Any]]:
        return self.aws.dynamodb.scan(TableName=self.store._table)["Items"]


def make_world(aws: Clients, store: JobStore, clock: ManualClock, *, catalog: CatalogReader | None = None) -> World:
    urls: dict[str, str] = {}
    for fn in JOBS:
        name = fn.options.queue_name
        attributes: Any = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fn.options.fifo else {}
        urls[fn.name] = aws.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    dlq_url = aws.sqs.create_queue(QueueName="sqsloops-test-scheduler-dlq")["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.scheduler.create_schedule_group(Name=GROUP)
    client = JobClient(
        sqs=aws.sqs,
        scheduler=aws.scheduler,
        store=store,
        schedule_group=GROUP,
        scheduler_role_arn=ROLE_ARN,
        catalog=catalog,
        jobs=JOBS,
        queue_urls=urls,
        schedule_dlq_arn=dlq_arn,
        clock=clock,
    )
    return World(aws, clock, store, client, urls, dlq_arn)
