"""The Jobs table, defined once: what `create_table` takes, and what the template's AWS::DynamoDB::Table holds.

One table, one hash key `pk` (string), three kinds of item told apart by the key's prefix:

    job#<job id>                 a job's status row: job, state, attempts, timestamps, last error, result
    key#<job name>#<unique key>  a unique job's key claim: the owning job id, its scope, an expiry
    tick#<job name>#<time>       one cron firing (its scheduled time, ISO 8601 UTC): the job it enqueued, or why not

The design names the key `job_id`; it is `pk` because two of the three kinds are not jobs, and the prefix keeps a
caller-chosen job id (`enqueue(..., id=...)`) from ever landing on a key claim or a tick. Job names never contain
`#` (the store refuses them), so every key reads back one way. The plain job id is kept in `job_id`.

One sparse GSI, `by_job_state`, lists both job rows and ticks with Queries, never a Scan:

    partition `job`       the job name: never changes, so a write never has to read it back
    sort      `state_at`  "<state>#<updated_at>" for job rows, "tick#<scheduled_at>" for ticks: times as fixed-width
                          epoch seconds ("%017.6f"), so the string order is the time order

A job's rows in one state are `begins_with(state_at, "<state>#")`, newest first with ScanIndexForward=False; its
ticks since a time are `state_at BETWEEN "tick#<since>" AND "tick$"`. ("tick" is no state, so the two never mix.)
The sort key is built from values the writer has in hand (the state it writes, the time it writes at), which is
what lets every state change be one UpdateItem without knowing the job's name: DynamoDB cannot concatenate
strings in an update, so a "<job>#<state>" partition would cost a read before every write. Key claims carry no
`state_at` and stay out of the index.

The index projects what a listing shows (INCLUDE), not the result or the traceback (up to 64 KiB and 16 KiB):
index writes are billed by item size, and every state change rewrites a job's index entry. `JobStore.get()`
reads those from the table.

A job's listing partition is one index partition (about 1000 writes/s): a job run faster than that should not be
tracked (`track=False`).

TTL: `expires_at` (whole epoch seconds). DynamoDB deletes expired items lazily (up to about 48 h late), so every
read that matters (a unique key's claim) also checks `expires_at` itself.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqsloops.jobs.states import JobState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PK = "pk"
JOB_PREFIX = "job#"
KEY_PREFIX = "key#"
TICK_PREFIX = "tick#"

INDEX_NAME = "by_job_state"
INDEX_PK = "job"
INDEX_SK = "state_at"
TICK_SORT_PREFIX = "tick#"
TICK_SORT_END = "tick$"  # '$' follows '#': every "tick#..." sorts below it
TTL_ATTRIBUTE = "expires_at"

# The attributes a listing (JobStore.list, JobStore.ticks) reads from the index besides its keys.
INDEX_PROJECTED: tuple[str, ...] = (
    "job_id",
    "state",
    "attempts",
    "enqueued_at",
    "run_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_error",
    "key",
    "schedule_name",
    "expires_at",
    "result_bytes",
    "result_truncated",
    "scheduled_at",
    "recorded_at",
    "skipped_reason",
)

_MAX_EPOCH_S = 1e10  # "%017.6f" holds epoch seconds below this (the year 2286)
_ATTRIBUTE_DEFINITIONS = (
    {"AttributeName": PK, "AttributeType": "S"},
    {"AttributeName": INDEX_PK, "AttributeType": "S"},
    {"AttributeName": INDEX_SK, "AttributeType": "S"},
)
_KEY_SCHEMA = ({"AttributeName": PK, "KeyType": "HASH"},)
_INDEX_KEY_SCHEMA = (
    {"AttributeName": INDEX_PK, "KeyType": "HASH"},
    {"AttributeName": INDEX_SK, "KeyType": "RANGE"},
)


def _index() -> dict[str, Any]:
    return {
        "IndexName": INDEX_NAME,
        "KeySchema": [dict(k) for k in _INDEX_KEY_SCHEMA],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(INDEX_PROJECTED)},
    }


# `dynamodb.create_table(TableName=name, **JOBS_TABLE)`; TTL and point-in-time recovery are separate API calls
# there (see create_jobs_table), and part of the resource in CloudFormation (cloudformation_properties()).
JOBS_TABLE: MappingProxyType[str, Any] = MappingProxyType(
    {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [dict(a) for a in _ATTRIBUTE_DEFINITIONS],
        "KeySchema": [dict(k) for k in _KEY_SCHEMA],
        "GlobalSecondaryIndexes": [_index()],
        "SSESpecification": {"Enabled": True},
    }
)
TIME_TO_LIVE: MappingProxyType[str, Any] = MappingProxyType({"AttributeName": TTL_ATTRIBUTE, "Enabled": True})


def create_table_kwargs(table_name: str) -> dict[str, Any]:
    """A fresh copy of JOBS_TABLE with the name: what `create_table` takes (callers may not mutate the shared one)."""
    return {"TableName": table_name, **_deep_copy(dict(JOBS_TABLE))}


def cloudformation_properties() -> dict[str, Any]:
    """The AWS::DynamoDB::Table Properties of the Jobs table, all but TableName (the template names it)."""
    return {
        "BillingMode": JOBS_TABLE["BillingMode"],
        "AttributeDefinitions": [dict(a) for a in _ATTRIBUTE_DEFINITIONS],
        "KeySchema": [dict(k) for k in _KEY_SCHEMA],
        "GlobalSecondaryIndexes": [_index()],
        "SSESpecification": {"SSEEnabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": dict(TIME_TO_LIVE),
    }


def create_jobs_table(dynamodb: DynamoDBClient, *, table_name: str) -> None:
    """Create the Jobs table as the template does (tests and the embedded AWS): table, TTL, point-in-time recovery."""
    dynamodb.create_table(**create_table_kwargs(table_name))
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    dynamodb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    )
    dynamodb.update_continuous_backups(
        TableName=table_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


# --- keys --------------------------------------------------------------------------------------------------------


def job_pk(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}"


def key_pk(job: str, key: str) -> str:
    return f"{KEY_PREFIX}{job}#{key}"


def tick_pk(job: str, scheduled_at: float) -> str:
    return f"{TICK_PREFIX}{job}#{iso_utc(scheduled_at)}"


def sortable_time(at_s: float) -> str:
    """Epoch seconds as a fixed-width string whose order is the time order."""
    if not (math.isfinite(at_s) and 0 <= at_s < _MAX_EPOCH_S):
        raise ValueError(f"a time must be epoch seconds between 0 and {_MAX_EPOCH_S:g}, got {at_s!r}")
    return f"{at_s:017.6f}"


def state_sort_key(state: JobState, at_s: float) -> str:
    """The index sort key of a job row in `state`, last written at `at_s`."""
    return f"{JobState(state).value}#{sortable_time(at_s)}"


def state_sort_prefix(state: JobState) -> str:
    return f"{JobState(state).value}#"


def tick_sort_key(scheduled_at: float) -> str:
    return f"{TICK_SORT_PREFIX}{sortable_time(scheduled_at)}"


def iso_utc(at_s: float) -> str:
    """A time as ISO 8601 UTC, to the microsecond when it has any (Scheduler's times are whole seconds)."""
    sortable_time(at_s)  # the same bounds
    moment = datetime.fromtimestamp(round(at_s, 6), tz=UTC)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds").replace("+00:00", "Z")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
