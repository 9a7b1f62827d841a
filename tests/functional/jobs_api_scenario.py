"""The jobs HTTP API's traced scenario for tests/functional/test_template_policies.py: every route, as its function
runs them on moto, so the test can check the JobsApi role allows exactly what these calls need.

Kept apart from the policies test (shared by every function's scenario): that module only hooks it in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from jobs_api import lambda_function as jobs_api_app
from sqsloops.clock import Clock
from sqsloops.jobs.api import JobsApi
from sqsloops.jobs.catalog import CatalogEntry, write_catalog
from sqsloops.jobs.http import sign
from sqsloops.jobs.root import JobsRoot
from sqsloops.settings import Settings
from tests.conftest import Clients


def scheduler_role_arn(account: str, stack: str) -> str:
    """The role ARN the policies test resolves `!GetAtt SchedulerRole.Arn` to."""
    return f"arn:aws:iam::{account}:role/{stack}-SchedulerRole"


def run_jobs_api(
    *,
    aws: Clients,
    settings: Settings,
    clock: Clock,
    stack: str,
    account: str,
    recording: Callable[[], contextlib.AbstractContextManager[None]],
    http_secret: str,
) -> None:
    """POST a job, a unique job twice, a delayed job and a batch; GET one; DELETE a scheduled and a unique one; an
    http: worker's receipt for a job waiting on it (signed with the stack's secret, `http_secret`)."""
    group = f"{stack}-jobs"
    aws.scheduler.create_schedule_group(Name=group)
    entries = {}
    for name, options in {"api_plain": {}, "api_unique": {"unique": "until_done", "key": "k-{n}"}}.items():
        url = aws.sqs.create_queue(QueueName=f"{stack}-{name}")["QueueUrl"]
        arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        entries[name] = CatalogEntry(job=name, queue_url=url, queue_arn=arn, **options)  # type: ignore[arg-type]
    write_catalog(aws.dynamodb, table_name=settings.jobs_table, entries=entries, expected_version=0, clock=clock)
    api_settings = dataclasses.replace(
        settings, schedule_group=group, scheduler_role_arn=scheduler_role_arn(account, stack)
    )
    root = JobsRoot(api_settings, clients=aws, clock=clock)
    api = JobsApi(root.job_client, receipts=root.receipt_desk)

    def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "version": "2.0",
            "rawPath": path,
            "headers": {"host": "api.example.com"},
            "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        }
        if body is not None:
            event["body"] = json.dumps(body)
        response = jobs_api_app.handle(event, None, lambda: api)
        assert response["statusCode"] < 300, response
        return dict(json.loads(response["body"]))

    with recording():
        plain = call("POST", "/jobs", {"job": "api_plain", "args": [1]})
        unique = call("POST", "/jobs", {"job": "api_unique", "kwargs": {"n": 1}})
        assert call("POST", "/jobs", {"job": "api_unique", "kwargs": {"n": 1}})["duplicate"] is True
        later = call("POST", "/jobs", {"job": "api_plain", "args": [2], "delay": "2h"})
        batch = call("POST", "/jobs/batch", {"jobs": [{"job": "api_plain", "args": [3]}, {"job": "nope"}]})
        assert [r["status"] for r in batch["results"]] == [201, 404]
        assert call("GET", f"/jobs/{plain['id']}")["state"] == "queued"
        assert call("DELETE", f"/jobs/{later['id']}")["state"] == "cancelled"  # deletes its schedule
        assert call("DELETE", f"/jobs/{unique['id']}")["state"] == "cancelled"  # frees its key
    receipt_for_a_waiting_job(
        aws, root, api, queue_url=entries["api_plain"].queue_url, secret=http_secret, recording=recording
    )


def receipt_for_a_waiting_job(
    aws: Clients,
    root: JobsRoot,
    api: JobsApi,
    *,
    queue_url: str,
    secret: str,
    recording: Callable[[], contextlib.AbstractContextManager[None]],
) -> None:
    """An http: job that got its 202 (as the loop leaves it: running, its message's handle in the row), then its
    receipt through the route: the secret read, the row read and settled, the message made visible."""
    store = root.job_store
    assert store is not None
    message = aws.sqs.receive_message(QueueUrl=queue_url)["Messages"][0]
    store.mark_running("http-1", job="api_plain", attempt=1)
    store.wait_for_receipt(
        "http-1",
        attempt=1,
        deadline=root.clock.now() + 600,
        queue_url=queue_url,
        receipt_handle=message["ReceiptHandle"],
    )
    body = json.dumps({"status": "succeeded"})
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": "/jobs/http-1/receipt",
        "headers": {"host": "api.example.com", **sign(body.encode(), secret)},
        "requestContext": {"http": {"method": "POST", "path": "/jobs/http-1/receipt"}, "stage": "$default"},
        "body": body,
    }
    with recording():
        response = jobs_api_app.handle(event, None, lambda: api)
    assert response["statusCode"] == 200, response
