"""The Jobs table in moto, created from jobs/schema.py, and a store over it on a ManualClock."""

from __future__ import annotations

from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs.schema import create_jobs_table
from sqsloops.jobs.store import JobStore
from tests.conftest import Clients

JOBS_TABLE = "sqsloops-test-jobs"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def jobs_table(aws: Clients) -> str:
    create_jobs_table(aws.dynamodb, table_name=JOBS_TABLE)
    return JOBS_TABLE


@pytest.fixture
def store(aws: Clients, jobs_table: str, clock: ManualClock) -> JobStore:
    return JobStore(table_name=jobs_table, dynamodb=aws.dynamodb, clock=clock)


def raw_item(aws: Clients, pk: str) -> dict[str, Any] | None:
    """An item exactly as the table holds it (no store in between)."""
    item: dict[str, Any] | None = aws.dynamodb.get_item(
        TableName=JOBS_TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True
    ).get("Item")
    return item
