"""The jobs tests/e2e/test_dashboard_browser.py applies to the package's embedded stack (shipped to the process
function in the test handlers' layer, tests/e2e/conftest.py): a burst-able job, a job that dies until fixed, a cron.

`dash_fragile` reads its fix flag from the stack's Jobs table (a `test#` item, never a job row), as app/jobs.py's
poison job does: the test flips it between the death and the redrive.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqsloops.jobs import current_job, job

JOBS_TABLE_ENV = "SQSLOOPS_JOBS_TABLE"
FIX_FLAG_PREFIX = "test#dashboard-fixed#"
WORK_S = 0.1  # one burst job's run: long enough that a burst keeps several loops busy


@job(concurrency=4)
def dash_work(n: int) -> dict[str, Any]:
    """A unit of a burst: four loops at most."""
    time.sleep(WORK_S)
    return {"n": n}


# min_loops=1: a loop stays up between the death and the redrive. Scaled down to zero, the queue's next loop would
# wait for its retired slot's grace (minutes), which is the scaler's business, not the dashboard's.
@job(retries=1, backoff=("1s",), min_loops=1)
def dash_fragile(item: str) -> dict[str, Any]:
    """Fails (then dies after its retry) until its item's fix flag is set; a redrive then succeeds."""
    if not is_fixed(item):
        raise RuntimeError(f"dash_fragile {item}: not fixed yet")
    return {"item": item, "attempt": current_job().attempt}


@job(cron="30 3 * * *", tz="Asia/Tokyo")
def dash_nightly() -> None:
    """A cron in a zone of its own, for the crons page (03:30 in Tokyo)."""


def is_fixed(item: str, dynamodb: Any = None, *, table: str | None = None) -> bool:
    import boto3  # the Lambda runtime's

    client = dynamodb or boto3.client("dynamodb")
    name = table or os.environ[JOBS_TABLE_ENV]
    found = client.get_item(TableName=name, Key={"pk": {"S": FIX_FLAG_PREFIX + item}}, ConsistentRead=True)
    return "Item" in found


def fix(item: str, dynamodb: Any, *, table: str) -> None:
    dynamodb.put_item(TableName=table, Item={"pk": {"S": FIX_FLAG_PREFIX + item}})
