"""A stack with the job layer on moto (tables, topics, schedule group, scheduler role) and JobsApply over it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import botocore.client
import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs import job
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.schema import create_jobs_table
from sqsloops.ops.jobs_apply import JobsApply, Plan
from sqsloops.ops.root import OpsRoot
from sqsloops.settings import Settings
from tests.conftest import ACCOUNT, Clients

STACK = "sqsloops-test"
MODULE = "tests.functional.jobs.apply_app"
GROUP = f"{STACK}-jobs"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-scheduler"
READ_PREFIXES = ("Get", "List", "Describe", "Receive", "Query", "Scan", "BatchGet")


@job
def send_email(user_id: int) -> None:
    return None


@job(concurrency=2, min_loops=1, timeout="20s", rate="5/s")
def resize(image: str) -> None:
    return None


@job(cron="0 9 * * MON-FRI", tz="Europe/Paris")
def digest() -> None:
    return None


@job(group_by="customer_id")
def charge(customer_id: str, amount: int) -> None:
    return None


APP: dict[str, JobFunction[..., Any]] = {fn.name: fn for fn in (send_email, resize, digest, charge)}


@dataclass
class JobStack:
    aws: Clients
    settings: Settings
    root: OpsRoot
    apply: JobsApply
    clock: ManualClock

    def plan(self, jobs: dict[str, JobFunction[..., Any]] | None = None, **options: Any) -> Plan:
        return self.apply.plan(MODULE, APP if jobs is None else jobs, **options)

    def run(self, jobs: dict[str, JobFunction[..., Any]] | None = None, **options: Any) -> Plan:
        plan = self.plan(jobs, **options)
        self.apply.apply(plan)
        return plan

    def url(self, name: str) -> str:
        return str(self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def attributes(self, name: str) -> dict[str, str]:
        return dict(self.aws.sqs.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["All"])["Attributes"])

    def queue_names(self) -> list[str]:
        urls = self.aws.sqs.list_queues(QueueNamePrefix=STACK).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def send(self, name: str, body: str = "{}", **options: Any) -> None:
        self.aws.sqs.send_message(QueueUrl=self.url(name), MessageBody=body, **options)

    def schedule(self, name: str) -> dict[str, Any]:
        return dict(self.aws.scheduler.get_schedule(Name=name, GroupName=GROUP))


def job_stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    jobs_table = f"{STACK}-jobs"
    create_jobs_table(aws.dynamodb, table_name=jobs_table)
    aws.scheduler.create_schedule_group(Name=GROUP)
    dlq_url = aws.sqs.create_queue(QueueName=f"{STACK}-schedules-dlq")["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    full = replace(
        settings,
        jobs_table=jobs_table,
        schedule_group=GROUP,
        scheduler_role_arn=ROLE_ARN,
        schedule_dlq_arn=dlq_arn,
        alerts_topic_arn=aws.sns.create_topic(Name=f"{STACK}-alerts")["TopicArn"],
    )
    root = OpsRoot(full, clients=aws, clock=clock, check_handlers=False)
    return JobStack(aws, full, root, JobsApply.for_root(root), clock)


class WriteCounter:
    """AWS requests that change something (anything but Get*, List*, Describe*, Receive*, Query, Scan)."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.counting = False

    @contextlib.contextmanager
    def on(self) -> Iterator[list[str]]:
        self.writes, self.counting = [], True
        try:
            yield self.writes
        finally:
            self.counting = False


def count_writes(monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    """Count the write requests every botocore client makes while `counter.on()` (test modules wrap it in a fixture)."""
    counter = WriteCounter()
    original = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if counter.counting and not operation.startswith(READ_PREFIXES):
            counter.writes.append(f"{client.meta.service_model.service_name}:{operation}")
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    return counter


def redrive(attributes: dict[str, str]) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(attributes["RedrivePolicy"])
    return policy


@job(name="send_email", group_by="user_id")
def send_email_serial(user_id: int) -> None:
    """send_email declared again with per-user serial ordering: its queue becomes a FIFO queue."""
    return None


@job(name="resize", concurrency=2, min_loops=1, timeout="40s", rate="5/s")
def resize_slower(image: str) -> None:
    """resize with a longer timeout: its queue's visibility and its registration change, nothing else."""
    return None
