"""The job catalog: job name -> its queue and the options a producer needs, for producers that do not import the code.

`jobs apply` writes it; every enqueuer reads it (cached), so the CLI, the HTTP API and code that only knows a job's
name can validate the name and find the queue. It is one item of the Jobs table:

    pk = "catalog#jobs"   jobs = '{"send_email": {...}, ...}' (compact JSON)   version = N   updated_at = epoch s

One item, not one per job: a producer learns every name with one GetItem (cached for `ttl_s`), and `apply` replaces
the whole catalog with one conditional put on `version` (two applies racing: the second is told, not silently
merged). The `catalog#` prefix is apart from `job#`, `key#` and `tick#`, so no job id can land on it. A DynamoDB item
holds 400 KB: about a thousand jobs; past that `write_catalog` refuses with a clear error.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConcurrentUpdateError, ConfigError
from sqsloops.jobs import schema
from sqsloops.jobs.envelope import check_job_name

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from sqsloops.jobs.definition import JobFunction

CATALOG_PK = "catalog#jobs"
CATALOG_VERSION_FORMAT = 1  # the shape of one entry; a reader refuses a catalog written in a newer shape
MAX_CATALOG_BYTES = 350_000  # under DynamoDB's 400 KB item limit, with room for the item's other attributes
DEFAULT_CATALOG_TTL_S = 60.0  # how long a reader trusts its copy
MIN_REFRESH_S = 2.0  # an unknown name re-reads the catalog at most this often (a job applied a moment ago is found)
FIFO_SUFFIX = ".fifo"


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """What a producer needs to send one job by name: where it goes and the options that shape the message."""

    job: str
    queue_url: str
    queue_arn: str
    track: bool = True
    unique: str | None = None  # "until_started" | "until_done" | "window"
    unique_window_s: float | None = None
    key: str | None = None  # the key template over the call's arguments
    group_by: str | None = None
    result_ttl_s: float | None = None
    module: str | None = None  # where the job is declared, for messages
    # A cron job's schedule, for the missed-run sweep (jobs/missed.py), which runs where the code is not imported
    # (the restart function). Kept as declared and checked by the sweep, job by job: one entry a newer sqsloops
    # wrote (or a zone this runtime lacks) fails its own sweep, not the catalog's readers.
    cron: str | None = None  # the expression as declared (Unix five fields or Scheduler's cron(...))
    tz: str | None = None
    missed: str | None = None  # "skip" | "run_once" | "catch_up"
    catch_up_window_s: float | None = None

    def __post_init__(self) -> None:
        check_job_name(self.job)
        if not self.queue_url or not self.queue_arn:
            raise ConfigError(f"catalog entry {self.job!r}: queue_url and queue_arn are required")

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(FIFO_SUFFIX)

    @classmethod
    def for_job(cls, fn: JobFunction[..., Any], *, queue_url: str, queue_arn: str) -> CatalogEntry:
        """The entry `jobs apply` writes for a declared job whose queue it created."""
        options = fn.options
        cron = options.cron
        return cls(
            job=options.name,
            queue_url=queue_url,
            queue_arn=queue_arn,
            track=options.track,
            unique=options.unique,
            unique_window_s=options.unique_window_s,
            key=options.key,
            group_by=options.group_by,
            result_ttl_s=options.result_ttl_s,
            module=fn.fn.__module__,
            cron=None if cron is None else cron.source,
            tz=None if cron is None else options.tz,
            missed=None if cron is None else options.missed,
            catch_up_window_s=None if cron is None or options.missed != "catch_up" else options.catch_up_window_s,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogEntry:
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


@dataclass(frozen=True)
class Catalog:
    """The catalog as read: entries by job name, and the version a writer must name to replace it (0: none yet)."""

    entries: Mapping[str, CatalogEntry]
    version: int


def read_catalog(dynamodb: DynamoDBClient, *, table_name: str) -> Catalog:
    """The catalog as the table holds it now (strongly consistent); empty, version 0, if none was written."""
    item = dynamodb.get_item(TableName=table_name, Key={schema.PK: {"S": CATALOG_PK}}, ConsistentRead=True).get("Item")
    if not item:
        return Catalog({}, 0)
    fmt = int(item.get("format", {}).get("N", "1"))
    if fmt > CATALOG_VERSION_FORMAT:
        raise ConfigError(f"the job catalog has format {fmt}; this sqsloops reads {CATALOG_VERSION_FORMAT}: upgrade")
    raw = json.loads(item["jobs"]["S"])
    entries = {name: CatalogEntry.from_dict(data) for name, data in raw.items()}
    return Catalog(entries, int(item["version"]["N"]))


def write_catalog(
    dynamodb: DynamoDBClient,
    *,
    table_name: str,
    entries: Mapping[str, CatalogEntry],
    expected_version: int,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Replace the catalog with `entries` if it is still at `expected_version` (0: none yet); the new version.

    ConcurrentUpdateError when another writer got there first (re-read and plan again); ConfigError when the
    catalog would not fit in one item.
    """
    for name, entry in entries.items():
        if name != entry.job:
            raise ConfigError(f"catalog entry {entry.job!r} is filed under {name!r}")
    body = json.dumps(
        {name: entries[name].to_dict() for name in sorted(entries)}, separators=(",", ":"), ensure_ascii=False
    )
    if len(body.encode()) > MAX_CATALOG_BYTES:
        raise ConfigError(
            f"the job catalog would be {len(body.encode())} bytes, over {MAX_CATALOG_BYTES}: split the jobs across"
            " stacks"
        )
    version = expected_version + 1
    guard: dict[str, Any] = (
        {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": schema.PK}}
        if expected_version == 0
        else {
            "ConditionExpression": "#version = :expected",
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
        }
    )
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item={
                schema.PK: {"S": CATALOG_PK},
                "jobs": {"S": body},
                "format": {"N": str(CATALOG_VERSION_FORMAT)},
                "version": {"N": str(version)},
                "updated_at": {"N": repr(clock.now())},
            },
            **guard,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise ConcurrentUpdateError(
                f"the job catalog changed since version {expected_version} was read; read it again"
            ) from exc
        raise
    return version


class CatalogReader:
    """The catalog as a producer sees it: read once, trusted for `ttl_s`, re-read early (at most every
    MIN_REFRESH_S) when asked for a name it does not hold, so a job applied a moment ago is found."""

    def __init__(
        self,
        *,
        dynamodb: DynamoDBClient,
        table_name: str,
        clock: Clock = SYSTEM_CLOCK,
        ttl_s: float = DEFAULT_CATALOG_TTL_S,
    ) -> None:
        if not math.isfinite(ttl_s) or ttl_s < 0:
            raise ConfigError(f"catalog ttl_s must be a number of seconds >= 0, got {ttl_s!r}")
        self._ddb = dynamodb
        self._table = table_name
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: Catalog | None = None
        self._read_at = -math.inf

    def get(self, job: str) -> CatalogEntry | None:
        """The entry of `job`, or None when the catalog (re-read if stale, or if it lacks the name) has none."""
        with self._lock:
            age_s = self._clock.monotonic() - self._read_at
            stale = self._cached is None or age_s >= self._ttl_s
            if stale or (job not in cast(Catalog, self._cached).entries and age_s >= MIN_REFRESH_S):
                self._refresh()
            return cast(Catalog, self._cached).entries.get(job)

    def entries(self) -> Mapping[str, CatalogEntry]:
        with self._lock:
            if self._cached is None or self._clock.monotonic() - self._read_at >= self._ttl_s:
                self._refresh()
            return cast(Catalog, self._cached).entries

    def _refresh(self) -> None:
        self._cached = read_catalog(self._ddb, table_name=self._table)
        self._read_at = self._clock.monotonic()
