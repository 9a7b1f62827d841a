"""The demo's jobs: one per behaviour `sqsloops demo jobs` checks, each observable through its result or its row.

`sqsloops jobs apply app.jobs` creates their queues, registrations, alarms and the cron schedule; the process
function runs them through the `jobs:app.jobs` registrations. Results are small JSON documents that say what
happened (attempt numbers, wall-clock start and end times), so a driver can compare expected and observed.

The poison job reads its fix flag from the stack's Jobs table (an `app#` item beside the job rows): the process
function may read that table on AWS as well as on the embedded AWS, and `set_poison_fixed` flips it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from sqsloops.jobs import current_job, job

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

JOBS_TABLE_ENV = "SQSLOOPS_JOBS_TABLE"  # what the template gives the process function (settings.FIELDS)
POISON_FLAG_PK = "app#poison_fixed"  # its own prefix: never a job row, key claim, tick or the catalog
SERIAL_WORK_S = 0.2  # how long one serial job holds its slot: long enough for an overlap to show


class PoisonError(RuntimeError):
    """The poison job's failure while its fix flag is off."""


@job
def hello(name: str) -> dict[str, Any]:
    """An immediate job: returns its greeting and the attempt it ran in."""
    return {"greeting": f"hello {name}", "attempt": current_job().attempt}


@job(timeout="30s")
def later(note: str) -> dict[str, Any]:
    """A job for long delays (enqueued with delay="1h": a one-time Scheduler schedule delivers it)."""
    return {"note": note, "ran_at": time.time()}


@job(cron="* * * * *", tz="Europe/Paris")
def minutely() -> dict[str, Any]:
    """A cron job every minute in a zone that is not UTC; its id is `minutely@<scheduled time>`."""
    return {"id": current_job().id, "ran_at": time.time()}


@job(unique="until_done", key="order-{order_id}")
def charge_once(order_id: int, amount: int = 0) -> dict[str, Any]:
    """A unique job: a second enqueue with the same order_id before this one is done is a duplicate."""
    return {"order_id": order_id, "amount": amount}


@job(retries=3, backoff=("1s", "1s", "1s"))
def flaky(tag: str) -> dict[str, Any]:
    """Fails on its first two attempts, succeeds on its third."""
    attempt = current_job().attempt
    if attempt < 3:
        raise RuntimeError(f"flaky {tag}: attempt {attempt} fails on purpose")
    return {"tag": tag, "attempt": attempt}


@job(retries=1, backoff=("1s",))
def poison(item: str) -> dict[str, Any]:
    """Fails until the fix flag is set (then dead after its retries); once fixed, a redrive makes it succeed."""
    if not poison_fixed():
        raise PoisonError(f"poison {item}: not fixed yet")
    return {"item": item, "attempt": current_job().attempt}


@job(concurrency=1, timeout="10s")
def one_at_a_time(n: int) -> dict[str, Any]:
    """concurrency=1: never two at once. Records its start and end so overlaps can be measured from the results."""
    started_at = time.time()
    time.sleep(SERIAL_WORK_S)
    return {"n": n, "started_at": started_at, "finished_at": time.time()}


@job(rate="5/s")
def limited(n: int) -> dict[str, Any]:
    """rate="5/s" across its loops: the run times in the results give the measured rate."""
    return {"n": n, "ran_at": time.time()}


# --- the poison job's fix flag ------------------------------------------------------------------------------------


def _dynamodb() -> DynamoDBClient:
    import boto3  # the Lambda runtime's; imported on use, so declaring the jobs imports no AWS SDK

    return boto3.client("dynamodb")


def poison_fixed(dynamodb: DynamoDBClient | None = None, *, table: str | None = None) -> bool:
    """Whether the poison job's fix flag is set (in the Jobs table named by SQSLOOPS_JOBS_TABLE)."""
    name = table or os.environ.get(JOBS_TABLE_ENV, "")
    if not name:
        return False
    item = (dynamodb or _dynamodb()).get_item(TableName=name, Key={"pk": {"S": POISON_FLAG_PK}}, ConsistentRead=True)
    return bool(item.get("Item", {}).get("fixed", {}).get("BOOL", False))


def set_poison_fixed(dynamodb: DynamoDBClient, *, table: str, fixed: bool = True) -> None:
    """Flip the poison job's fix flag (the demo driver does, between the dead run and the redrive)."""
    dynamodb.put_item(TableName=table, Item={"pk": {"S": POISON_FLAG_PK}, "fixed": {"BOOL": fixed}})
