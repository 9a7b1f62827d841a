"""The Jobs table: a job's status row, unique keys' claims and cron ticks, each write one conditional request.

Status rows follow jobs/states.py: every state change is a single UpdateItem whose condition is "the row is in one
of the states this target may be reached from", and returns the row as written (ReturnValues ALL_NEW) or, when it
is refused, as found (ReturnValuesOnConditionCheckFailure ALL_OLD; a backend that ignores it costs one read, on the
refused path only). A refused state change is not an error: it comes back as `Refused`, carrying the row it found,
so the runner can skip a cancelled or finished job. Only `cancel()`, which a person asks for, raises.

The success path is three writes, each one request: `create` (queued, at enqueue), `mark_running`, `mark_succeeded`.
Two is possible: a producer that writes no row (a bare SNS message, or an enqueuer told not to) leaves
`mark_running` to create it (an UpdateItem creates a missing item), so the job's status starts at running; the
price is that nobody can see or cancel the job before it starts. A unique job adds its key claim (a PutItem) and,
for until_started / until_done, its release (a DeleteItem).

A write that botocore retries after a lost response may find its own first attempt: every write carries a random
`write_id`, and a refusal whose row holds ours is reported as the success it was.

Every write sets `updated_at` and `expires_at` (DynamoDB TTL: now + ttl_s, or the job's due time + ttl_s for a job
that waits, so a job scheduled 30 days out is not purged before it runs; a dead job's row is kept at least as long
as SQS may keep its message in the DLQ) and keeps the index's `state_at` in step with `state` (see jobs/schema.py
for the keys and the index).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import dataclasses
import heapq
import itertools
import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError, SqsloopsError
from sqsloops.jobs import schema
from sqsloops.jobs.states import (
    CANCELLABLE,
    CANCELLED,
    DEAD,
    FINAL,
    INITIAL,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    JobState,
    sources,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_TTL_S = 7 * 24 * 3600  # how long a job's row (and an until_* key claim, as a backstop) outlives its last write
DEFAULT_DEAD_TTL_S = 14 * 24 * 3600  # a dead job's row outlives its message in the DLQ (SQS keeps one 14 days at most)
DEFAULT_TICK_TTL_S = 30 * 24 * 3600  # how long "did the 02:00 run happen?" can be answered
MAX_RESULT_BYTES = 64 * 1024  # a larger result is stored as its size and a truncation flag, not the JSON
MAX_TRACEBACK_BYTES = 16 * 1024  # a longer traceback keeps its end (the innermost frames and the error)
MAX_ERROR_BYTES = 4 * 1024  # a longer last error keeps its beginning
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 1000
_MAX_PK_BYTES = 2048  # DynamoDB's limit on a partition key
_TRUNCATED = "...[truncated from {size} bytes]"

# The states each write may start from: a subset of jobs/states.py's table, checked at import below.
RECEIPT_ATTRIBUTES = ("receipt_deadline", "receipt_queue_url", "receipt_handle", "receipt")
_REDRIVE_FROM = frozenset({DEAD, QUEUED})  # queued too, so a redrive run twice changes nothing
if not _REDRIVE_FROM.issubset(sources(QUEUED)):  # pragma: no cover - a guard on the states table
    raise AssertionError("redrive must follow the transition table")

_WRITE_ERRORS = ("ConditionalCheckFailedException",)
BATCH_WRITE_MAX = 25  # DynamoDB BatchWriteItem's limit per request
BATCH_GET_MAX = 100  # DynamoDB BatchGetItem's limit per request
BATCH_WRITE_ATTEMPTS = 6  # the first request and five resends of what DynamoDB left unprocessed
BATCH_WRITE_FIRST_PAUSE_S = 0.05
BATCH_WRITE_MAX_PAUSE_S = 1.0


class JobNotFoundError(SqsloopsError):
    """No job has this id: it was never written, or its row was purged by its TTL."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no such job: {job_id}")
        self.job_id = job_id


class UnprocessedWritesError(SqsloopsError):
    """DynamoDB kept leaving rows of a batch unprocessed (throttling): those jobs are not sent."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} job row(s) left unprocessed by DynamoDB after retries (throttled); not sent")
        self.count = count


class NotCancellableError(SqsloopsError):
    """The job has started or finished, so it can no longer be cancelled; `state` is the state it is in."""

    def __init__(self, job_id: str, state: JobState) -> None:
        super().__init__(f"job {job_id} is {state.value}: only a scheduled, queued or retrying job can be cancelled")
        self.job_id = job_id
        self.state = state


class KeyScope(StrEnum):
    """How long a unique job's key stays claimed."""

    UNTIL_STARTED = "until_started"  # released when the job starts running
    UNTIL_DONE = "until_done"  # released when the job reaches a final state
    WINDOW = "window"  # held for window_s after the claim, then free (never released early)


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """A job's status row, as the Jobs table holds it. Times are epoch seconds."""

    id: str
    job: str
    state: JobState
    attempts: int = 0  # runs started (a redrive resets it to 0)
    enqueued_at: float | None = None
    run_at: float | None = None  # when it is due: a scheduled job's time, or a retrying job's next attempt
    started_at: float | None = None  # the latest attempt's start
    finished_at: float | None = None
    updated_at: float = 0.0
    last_error: str | None = None  # capped at MAX_ERROR_BYTES
    traceback: str | None = None  # capped at MAX_TRACEBACK_BYTES; None in listings (read it with get())
    result: str | None = None  # the result's JSON; None if none, too large (result_truncated) or in a listing
    result_bytes: int | None = None  # the result's size in UTF-8 bytes, kept when it was too large to store
    result_truncated: bool = False
    key: str | None = None  # a unique job's rendered key
    schedule_name: str | None = None  # the Scheduler schedule that delivers a scheduled job
    expires_at: int = 0  # DynamoDB TTL: epoch seconds
    # An http: job whose endpoint answered 202 Accepted waits, `running`, for its receipt (jobs/http.py): until
    # receipt_deadline; the message's queue and latest receipt handle, so the receipt route can make it visible;
    # `receipt` is "failed" once a failed receipt came (a succeeded one moves the row to succeeded at once).
    receipt_deadline: float | None = None
    receipt_queue_url: str | None = None
    receipt_handle: str | None = None
    receipt: str | None = None

    @property
    def waiting_for_receipt(self) -> bool:
        return self.state is RUNNING and self.receipt_deadline is not None

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def cancellable(self) -> bool:
        return self.state in CANCELLABLE

    def to_item(self) -> dict[str, Any]:
        """The table item (with its key and its index key), leaving out what is None."""
        values: dict[str, Any] = {
            schema.PK: schema.job_pk(self.id),
            "job_id": self.id,
            "job": self.job,
            "state": self.state.value,
            schema.INDEX_SK: schema.state_sort_key(self.state, self.updated_at),
            "attempts": self.attempts,
            "enqueued_at": self.enqueued_at,
            "run_at": self.run_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
            "last_error": self.last_error,
            "traceback": self.traceback,
            "result": self.result,
            "result_bytes": self.result_bytes,
            "result_truncated": self.result_truncated or None,
            "key": self.key,
            "schedule_name": self.schedule_name,
            schema.TTL_ATTRIBUTE: self.expires_at,
            "receipt_deadline": self.receipt_deadline,
            "receipt_queue_url": self.receipt_queue_url,
            "receipt_handle": self.receipt_handle,
            "receipt": self.receipt,
        }
        return {name: _attr(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> JobRecord:
        job_id = _str(item, "job_id") or item[schema.PK]["S"].removeprefix(schema.JOB_PREFIX)
        return cls(
            id=job_id,
            job=item["job"]["S"],
            state=JobState(item["state"]["S"]),
            attempts=_int(item, "attempts") or 0,
            enqueued_at=_float(item, "enqueued_at"),
            run_at=_float(item, "run_at"),
            started_at=_float(item, "started_at"),
            finished_at=_float(item, "finished_at"),
            updated_at=_float(item, "updated_at") or 0.0,
            last_error=_str(item, "last_error"),
            traceback=_str(item, "traceback"),
            result=_str(item, "result"),
            result_bytes=_int(item, "result_bytes"),
            result_truncated=bool(item.get("result_truncated", {}).get("BOOL", False)),
            key=_str(item, "key"),
            schedule_name=_str(item, "schedule_name"),
            expires_at=_int(item, schema.TTL_ATTRIBUTE) or 0,
            receipt_deadline=_float(item, "receipt_deadline"),
            receipt_queue_url=_str(item, "receipt_queue_url"),
            receipt_handle=_str(item, "receipt_handle"),
            receipt=_str(item, "receipt"),
        )


@dataclass(frozen=True, kw_only=True)
class Refused:
    """A state change the row's current state does not allow: nothing was written. Not an error for the runner."""

    job_id: str
    target: JobState
    current: JobRecord | None  # the row as found; None when there is no row
    detail: str

    @property
    def state(self) -> JobState | None:
        return self.current.state if self.current is not None else None


@dataclass(frozen=True, kw_only=True)
class KeyClaim:
    """The answer to claiming a unique key: ours, or the job that holds it (a duplicate, which is not an error)."""

    claimed: bool
    job_id: str  # the owner: the claimer's own id when claimed, the first job's when a duplicate
    expires_at: int

    @property
    def duplicate(self) -> bool:
        return not self.claimed


@dataclass(frozen=True, kw_only=True)
class Tick:
    """One cron firing: the job it enqueued, or why it was skipped."""

    job: str
    scheduled_at: float
    recorded_at: float
    job_id: str | None
    skipped_reason: str | None
    expires_at: int

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Tick:
        return cls(
            job=item["job"]["S"],
            scheduled_at=_float(item, "scheduled_at") or 0.0,
            recorded_at=_float(item, "recorded_at") or 0.0,
            job_id=_str(item, "job_id"),
            skipped_reason=_str(item, "skipped_reason"),
            expires_at=_int(item, schema.TTL_ATTRIBUTE) or 0,
        )


class JobStore:
    """Reads and writes the Jobs table: job status rows, unique key claims and cron ticks."""

    def __init__(
        self,
        *,
        table_name: str,
        dynamodb: DynamoDBClient,
        clock: Clock = SYSTEM_CLOCK,
        ttl_s: float = DEFAULT_TTL_S,
        tick_ttl_s: float = DEFAULT_TICK_TTL_S,
    ) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._clock = clock
        self._ttl_s = _positive("ttl_s", ttl_s)
        self._tick_ttl_s = _positive("tick_ttl_s", tick_ttl_s)

    # --- job rows ---------------------------------------------------------------------------------------------

    def create(
        self,
        job_id: str,
        job: str,
        *,
        state: JobState | str = QUEUED,
        enqueued_at: float,
        run_at: float | None = None,
        key: str | None = None,
        ttl_s: float | None = None,
        schedule_name: str | None = None,
    ) -> bool:
        """Write a new job's row, queued (or scheduled, due at run_at). False if the id exists: not an error.

        A duplicate id is how a repeated enqueue (same explicit id, a cron tick delivered twice) stays one job; the
        caller reads the existing row with get(). A row past its own expires_at counts as gone (TTL deletes late).
        """
        now = self._clock.now()
        record = self.new_record(
            job_id,
            job,
            state=state,
            enqueued_at=enqueued_at,
            run_at=run_at,
            key=key,
            ttl_s=ttl_s,
            schedule_name=schedule_name,
            now=now,
        )
        write_id = uuid.uuid4().hex
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={**record.to_item(), "write_id": {"S": write_id}},
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                ExpressionAttributeNames={"#pk": schema.PK, "#exp": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues={":now": _attr(now)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return _write_id(_old_item(exc)) == write_id  # ours, when a retry followed a lost response
        return True

    def new_record(
        self,
        job_id: str,
        job: str,
        *,
        state: JobState | str = QUEUED,
        enqueued_at: float,
        run_at: float | None = None,
        key: str | None = None,
        ttl_s: float | None = None,
        schedule_name: str | None = None,
        now: float | None = None,
    ) -> JobRecord:
        """A new job's row as `create` writes it (checked, not written): for `create_many`."""
        _check_id(job_id)
        _check_job(job)
        initial = JobState(state)
        if initial not in INITIAL:
            raise ConfigError(f"a job starts queued or scheduled, not {initial.value}")
        if initial is SCHEDULED and run_at is None:
            raise ConfigError("a scheduled job needs run_at")
        now = self._clock.now() if now is None else now
        return JobRecord(
            id=job_id,
            job=job,
            state=initial,
            enqueued_at=enqueued_at,
            run_at=run_at,
            updated_at=now,
            key=key,
            schedule_name=schedule_name,
            expires_at=self._expires_at(now, ttl_s, due_at=run_at),
        )

    def create_many(self, records: Sequence[JobRecord]) -> None:
        """Write new rows in BatchWriteItem requests of 25, unconditionally: only for ids nobody else can hold (the
        client's own fresh ids, never a caller's id or a cron tick's), where `create`'s condition is moot. One request
        per 25 jobs instead of one each. Unprocessed items are sent again with backoff; what still is not written
        after that raises (the caller sends none of those jobs)."""
        self._batch_put([r.to_item() for r in records])

    def _batch_put(self, items: Sequence[dict[str, Any]]) -> None:
        """PutItem requests, 25 a BatchWriteItem, what DynamoDB leaves unprocessed sent again with backoff."""
        for start in range(0, len(items), BATCH_WRITE_MAX):
            requests: list[Any] = [
                {"PutRequest": {"Item": {**item, "write_id": {"S": uuid.uuid4().hex}}}}
                for item in items[start : start + BATCH_WRITE_MAX]
            ]

            def write(pending: list[Any]) -> list[Any]:
                unprocessed = self._ddb.batch_write_item(RequestItems={self._table: pending}).get("UnprocessedItems")
                return list((unprocessed or {}).get(self._table, []))

            self._until_processed(requests, write)

    def get(self, job_id: str, *, consistent: bool = True) -> JobRecord | None:
        """A job's row; None if there is none."""
        _check_id(job_id)
        item = self._ddb.get_item(
            TableName=self._table, Key=_key(schema.job_pk(job_id)), ConsistentRead=consistent
        ).get("Item")
        return JobRecord.from_item(cast(dict[str, Any], item)) if item else None

    def mark_running(
        self,
        job_id: str,
        *,
        job: str,
        attempt: int,
        enqueued_at: float | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused:
        """The runner starts attempt `attempt` (1 for the first run): Refused means skip the job.

        Allowed from scheduled, queued, retrying and running (a duplicate delivery, or a re-run after a lost loop);
        refused when the job is cancelled or final, when `attempt` is older than the attempts already recorded (a
        stale duplicate), or when the id belongs to another job. A missing row (a producer that wrote none, or one
        purged by its TTL) is created here, in the same request, so the job is tracked from its first run: hence
        `job` (the row's name and index key) and the optional `enqueued_at` from the envelope.
        """
        _check_id(job_id)
        _check_job(job)
        _check_count("attempt", attempt)
        now = self._clock.now()
        write = _Write()
        write.set("job_id", job_id)
        write.set("job", job)
        self._set_state(write, RUNNING, now, ttl_s=ttl_s)
        write.set("attempts", attempt)
        write.set("started_at", now)
        for name in RECEIPT_ATTRIBUTES:  # a new attempt waits for no earlier attempt's receipt
            write.remove(name)
        if enqueued_at is not None:
            write.set_if_absent("enqueued_at", enqueued_at)
        condition = (
            f"attribute_not_exists({write.name(schema.PK)}) OR ({write.state_in(sources(RUNNING))}"
            f" AND {write.name('job')} = {write.value(job)} AND {write.name('attempts')} <= {write.value(attempt)})"
        )

        def why(current: JobRecord | None) -> str:
            if current is None:
                return "no such job"
            if current.job != job:
                return f"id {job_id} belongs to job {current.job}"
            if current.state not in sources(RUNNING):
                return f"job is {current.state.value}"
            return f"attempt {attempt} is older than attempt {current.attempts}, already recorded"

        return self._transition(job_id, RUNNING, write, condition, why)

    def mark_succeeded(
        self, job_id: str, *, result_json: str | None, ttl_s: float | None = None, attempt: int | None = None
    ) -> JobRecord | Refused:
        """A running job returned: keep its result (JSON text; over MAX_RESULT_BYTES only its size is kept).

        The traceback of an earlier attempt is dropped; its last error stays, as history.
        """
        _check_id(job_id)
        now = self._clock.now()
        write = _Write()
        self._set_succeeded(write, now, result_json=result_json, ttl_s=ttl_s)
        condition = self._from_states(write, SUCCEEDED)
        if attempt is not None:  # a receipt names the attempt it reports on (jobs/http.py)
            condition += f" AND {write.name('attempts')} = {write.value(attempt)}"
        for name in ("receipt_deadline", "receipt_handle", "receipt_queue_url"):
            write.remove(name)
        return self._transition(job_id, SUCCEEDED, write, condition, _state_refusal)

    def mark_ran(
        self,
        job_id: str,
        *,
        job: str,
        attempt: int,
        started_at: float,
        result_json: str | None,
        before: JobRecord | None,
        enqueued_at: float | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused:
        """A job that started and returned before its start was written: both in one write, the path
        scheduled / queued / retrying / running -> running -> succeeded, checked as `mark_running` checks a start.

        Why: a tracked job then costs its row two writes (enqueue, this), not three, and a fast job no write before
        it runs; `running` is still written for a job that runs long enough to be seen running (jobs/execution.py
        RUNNING_MARK_AFTER_S). The write is a conditional PutItem of the whole row: `before` is the row as read
        before the job started (`get_many`), None if there was none (no producer row, or purged: created here);
        what the condition allows to have changed since (a duplicate delivery's start) this success supersedes.
        """
        record = self.ran_record(
            job_id,
            job=job,
            attempt=attempt,
            started_at=started_at,
            result_json=result_json,
            before=before,
            enqueued_at=enqueued_at,
            ttl_s=ttl_s,
        )
        write_id = uuid.uuid4().hex
        allowed = sorted(state.value for state in sources(RUNNING))
        values = {f":s{i}": _attr(state) for i, state in enumerate(allowed)}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={**record.to_item(), "write_id": {"S": write_id}},
                ConditionExpression=(
                    f"attribute_not_exists(#pk) OR (#state IN ({', '.join(values)}) AND #job = :job"
                    " AND #attempts <= :attempt)"
                ),
                ExpressionAttributeNames={"#pk": schema.PK, "#state": "state", "#job": "job", "#attempts": "attempts"},
                ExpressionAttributeValues={**values, ":job": _attr(job), ":attempt": _attr(attempt)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old = _old_item(exc) or self._get_item(schema.job_pk(job_id))
            if old is not None and _write_id(old) == write_id:
                return record  # ours, found by botocore's retry after a lost response
            current = JobRecord.from_item(old) if old is not None else None
            return Refused(job_id=job_id, target=SUCCEEDED, current=current, detail=_state_refusal(current))
        return record

    def put_ran(self, records: Sequence[JobRecord]) -> None:
        """Write the rows of a batch's jobs that ran and returned (`ran_record`), 25 a BatchWriteItem request.

        The one kind of write here without a condition, and why that holds: each row was read before its job ran
        (`get_many`) and the job was run only from a state that may move to running; what can have changed since,
        in the milliseconds the batch took, is a cancel that came too late (the job did run) or a duplicate
        delivery's start or end: "it ran and succeeded" is the truth either way, and a success is final. One
        request per batch instead of one per job. UnprocessedWritesError if DynamoDB keeps some back (the caller
        writes those one by one, with `mark_ran`'s condition)."""
        self._batch_put([record.to_item() for record in records])

    def ran_record(
        self,
        job_id: str,
        *,
        job: str,
        attempt: int,
        started_at: float,
        result_json: str | None,
        before: JobRecord | None,
        enqueued_at: float | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord:
        """The row of a job that started and returned: `before` (None: a new row) moved to succeeded."""
        _check_id(job_id)
        _check_job(job)
        _check_count("attempt", attempt)
        now = self._clock.now()
        result, result_bytes, truncated = _result_fields(result_json)
        base = before if before is not None else JobRecord(id=job_id, job=job, state=QUEUED, enqueued_at=enqueued_at)
        return dataclasses.replace(
            base,
            state=SUCCEEDED,
            attempts=attempt,
            enqueued_at=base.enqueued_at if base.enqueued_at is not None else enqueued_at,
            run_at=None,
            started_at=started_at,
            finished_at=now,
            updated_at=now,
            traceback=None,
            result=result,
            result_bytes=result_bytes,
            result_truncated=truncated,
            expires_at=self._expires_at(now, ttl_s),
            receipt_deadline=None,
            receipt_queue_url=None,
            receipt_handle=None,
            receipt=None,
        )

    def get_many(self, job_ids: Iterable[str]) -> dict[str, JobRecord]:
        """The rows of these jobs that exist (strongly consistent), in BatchGetItem requests of 100: what a batch's
        deliveries read before they run, in one request instead of one each."""
        wanted = sorted(set(job_ids))
        for job_id in wanted:
            _check_id(job_id)
        found: dict[str, JobRecord] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys: list[Any] = [_key(schema.job_pk(job_id)) for job_id in wanted[start : start + BATCH_GET_MAX]]

            def read(pending: list[Any]) -> list[Any]:
                response: Any = self._ddb.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    record = JobRecord.from_item(cast(dict[str, Any], item))
                    found[record.id] = record
                return list(response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", []))

            self._until_processed(keys, read)
        return found

    def _until_processed(self, pending: list[Any], send: Callable[[list[Any]], list[Any]]) -> None:
        """`send` a batch request, then what DynamoDB left unprocessed, with backoff; UnprocessedWritesError (the
        count left) when some is still left after BATCH_WRITE_ATTEMPTS requests."""
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            if attempt:
                self._clock.sleep(min(BATCH_WRITE_MAX_PAUSE_S, BATCH_WRITE_FIRST_PAUSE_S * 2 ** (attempt - 1)))
            pending = send(pending)
            if not pending:
                return
        raise UnprocessedWritesError(len(pending))

    def _set_succeeded(self, write: _Write, now: float, *, result_json: str | None, ttl_s: float | None) -> None:
        """What a success writes: the state, the end, the result (over MAX_RESULT_BYTES only its size); no
        traceback of an earlier attempt, no receipt left waiting."""
        self._set_state(write, SUCCEEDED, now, ttl_s=ttl_s)
        write.set("finished_at", now)
        write.remove("run_at")
        write.remove("traceback")
        for name, value in zip(
            ("result", "result_bytes", "result_truncated"), _result_fields(result_json), strict=True
        ):
            if value is None or value is False:
                write.remove(name)
            else:
                write.set(name, value)

    def mark_retrying(
        self,
        job_id: str,
        *,
        attempts: int,
        error: str,
        next_run_at: float,
        traceback: str | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused:
        """A running job failed and will run again at next_run_at; `attempts` (runs so far) never goes down."""
        _check_id(job_id)
        _check_count("attempts", attempts)
        now = self._clock.now()
        write = _Write()
        self._set_state(write, RETRYING, now, ttl_s=ttl_s, due_at=next_run_at)
        self._set_failure(write, attempts=attempts, error=error, traceback=traceback)
        write.set("run_at", next_run_at)
        condition = f"{self._from_states(write, RETRYING)} AND {write.name('attempts')} <= {write.value(attempts)}"
        return self._transition(job_id, RETRYING, write, condition, _attempts_refusal(RETRYING, attempts))

    def mark_dead(
        self,
        job_id: str,
        *,
        attempts: int,
        error: str,
        traceback: str | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused:
        """A job failed for good (retries spent, or a non-retryable error): it stays dead until a redrive.

        Its row is kept for ttl_s, by default the longer of the store's TTL and DEFAULT_DEAD_TTL_S, so that
        `jobs dead NAME` lists every job whose message is still in the DLQ.
        """
        _check_id(job_id)
        _check_count("attempts", attempts)
        now = self._clock.now()
        write = _Write()
        self._set_state(write, DEAD, now, ttl_s=max(self._ttl_s, DEFAULT_DEAD_TTL_S) if ttl_s is None else ttl_s)
        self._set_failure(write, attempts=attempts, error=error, traceback=traceback)
        write.set("finished_at", now)
        write.remove("run_at")
        condition = f"{self._from_states(write, DEAD)} AND {write.name('attempts')} <= {write.value(attempts)}"
        return self._transition(job_id, DEAD, write, condition, _attempts_refusal(DEAD, attempts))

    # -- http: jobs (jobs/http.py): waiting for a receipt, and handing a start back -------------------------------

    def wait_for_receipt(
        self, job_id: str, *, attempt: int, deadline: float, queue_url: str, receipt_handle: str
    ) -> JobRecord | Refused:
        """Attempt `attempt` was accepted (202) and runs elsewhere: it stays running until `deadline`.

        Refused when the row moved on (a receipt came first: succeeded, or `receipt` set; another attempt started).
        """
        _check_id(job_id)
        now = self._clock.now()
        write = _Write()
        write.set("updated_at", now)
        write.set("receipt_deadline", deadline)
        write.set("receipt_queue_url", queue_url)
        write.set("receipt_handle", receipt_handle)
        write.set(schema.TTL_ATTRIBUTE, self._expires_at(now, None, due_at=deadline))
        write.set("write_id", uuid.uuid4().hex)
        condition = (
            f"{write.state_in([RUNNING])} AND {write.name('attempts')} = {write.value(attempt)}"
            f" AND attribute_not_exists({write.name('receipt')})"
        )
        return self._transition(job_id, RUNNING, write, condition, _attempt_refusal(attempt))

    def renew_receipt_handle(self, job_id: str, *, attempt: int, receipt_handle: str) -> JobRecord | Refused:
        """A waiting job's message was received again: keep the newest handle (the old one no longer works)."""
        _check_id(job_id)
        write = _Write()
        write.set("receipt_handle", receipt_handle)
        write.set("write_id", uuid.uuid4().hex)
        condition = (
            f"{write.state_in([RUNNING])} AND {write.name('attempts')} = {write.value(attempt)}"
            f" AND attribute_exists({write.name('receipt_deadline')})"
        )
        return self._transition(job_id, RUNNING, write, condition, _attempt_refusal(attempt))

    def record_receipt(
        self,
        job_id: str,
        *,
        succeeded: bool,
        result_json: str | None = None,
        error: str | None = None,
        attempt: int | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused:
        """The web app's receipt for a running http: job (attempt `attempt`, or the current one when None).

        succeeded: the row becomes succeeded with its result, as mark_succeeded. failed: the row stays running with
        `receipt` = "failed" and the error; the loop that next sees the message applies the retry policy (it holds
        the job's options). Refused when the job is not running (already settled, cancelled) or on another attempt.
        """
        if succeeded:
            return self.mark_succeeded(job_id, result_json=result_json, ttl_s=ttl_s, attempt=attempt)
        _check_id(job_id)
        now = self._clock.now()
        write = _Write()
        write.set("updated_at", now)
        write.set("receipt", "failed")
        write.set("last_error", cap_head(error or "the web app reported a failure", MAX_ERROR_BYTES))
        write.set("write_id", uuid.uuid4().hex)
        condition = write.state_in([RUNNING])
        if attempt is not None:
            condition += f" AND {write.name('attempts')} = {write.value(attempt)}"
        return self._transition(job_id, RUNNING, write, condition, _state_refusal)

    def hand_back(self, job_id: str, *, attempt: int, error: str, next_run_at: float) -> JobRecord | Refused:
        """Attempt `attempt` was marked running but did not run (an http: endpoint answered 429/408, or the request
        could not be sent): retrying again, with the attempt given back (attempts = attempt - 1). Only from that
        very attempt, so a hand-back never undoes another runner's start."""
        _check_id(job_id)
        _check_count("attempt", attempt)
        now = self._clock.now()
        write = _Write()
        self._set_state(write, RETRYING, now, ttl_s=None, due_at=next_run_at)
        write.set("attempts", max(0, attempt - 1))
        write.set("last_error", cap_head(error, MAX_ERROR_BYTES))
        write.set("run_at", next_run_at)
        for name in RECEIPT_ATTRIBUTES:
            write.remove(name)
        condition = f"{write.state_in([RUNNING])} AND {write.name('attempts')} = {write.value(attempt)}"
        return self._transition(job_id, RETRYING, write, condition, _attempt_refusal(attempt))

    def cancel(self, job_id: str, *, ttl_s: float | None = None) -> JobRecord:
        """Cancel a job that has not started (scheduled, queued) or waits for its next attempt (retrying).

        JobNotFoundError if there is no such job; NotCancellableError (with the state) if it is running or final,
        cancelled included: a caller that wants a repeated cancel to succeed checks `exc.state is CANCELLED`.
        Deleting a scheduled job's schedule and releasing its unique key are the caller's.
        """
        _check_id(job_id)
        now = self._clock.now()
        write = _Write()
        self._set_state(write, CANCELLED, now, ttl_s=ttl_s)
        write.set("finished_at", now)
        try:
            return self._update(job_id, write, self._from_states(write, CANCELLED))
        except _ConflictError as conflict:
            if conflict.current is None:
                raise JobNotFoundError(job_id) from conflict.cause
            raise NotCancellableError(job_id, conflict.current.state) from conflict.cause

    def forget(self, job_id: str) -> bool:
        """Delete a job's row while it is still queued or scheduled: the enqueuer takes back the row of a job whose
        message or schedule could not be sent, so a failed enqueue leaves nothing behind (and the id is free again).
        False when there is no such row or it has moved on (a runner saw the job after all): it is kept."""
        _check_id(job_id)
        listed = {f":s{index}": _attr(state.value) for index, state in enumerate(sorted(INITIAL))}
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key=_key(schema.job_pk(job_id)),
                ConditionExpression=f"#state IN ({', '.join(listed)})",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=listed,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def requeue_for_redrive(self, job_id: str, *, ttl_s: float | None = None) -> JobRecord | Refused:
        """Before its message is moved back from the DLQ: dead -> queued, attempts reset to 0.

        A queued job is requeued again (attempts reset again), so a redrive interrupted halfway can be run again.
        Refused when the job is in any other state, or has no row (its message can be moved all the same: the
        runner recreates the row when it starts the job). Its last error and traceback stay until the next attempt.
        """
        _check_id(job_id)
        now = self._clock.now()
        write = _Write()
        self._set_state(write, QUEUED, now, ttl_s=ttl_s)
        write.set("attempts", 0)
        for name in ("started_at", "finished_at", "run_at"):
            write.remove(name)
        condition = f"attribute_exists({write.name(schema.PK)}) AND {write.state_in(_REDRIVE_FROM)}"
        return self._transition(job_id, QUEUED, write, condition, _state_refusal)

    # --- unique keys ------------------------------------------------------------------------------------------

    def claim_key(
        self,
        job: str,
        key: str,
        *,
        job_id: str,
        scope: KeyScope | str,
        window_s: float | None = None,
        ttl_s: float | None = None,
    ) -> KeyClaim:
        """Claim a unique job's key for `job_id`: claimed, or a duplicate carrying the first job's id.

        A window claim expires window_s after it is made (to the next whole second). until_started / until_done
        claims are released by release_key(); they also expire after ttl_s (default: the store's), a backstop so a
        claim whose release was lost frees itself. A claim past its own expires_at is free even while DynamoDB has
        not deleted it yet. Claiming again for the same job id is claimed (a retried enqueue), and changes nothing.
        """
        _check_job(job)
        _check_id(job_id)
        if not isinstance(key, str) or not key:
            raise ConfigError(f"a unique key is a non-empty string, got {key!r}")
        pk = schema.key_pk(job, key)
        _check_pk(pk)
        try:
            kind = KeyScope(scope)
        except ValueError as exc:
            raise ConfigError(f"unique scope must be one of {', '.join(KeyScope)}, got {scope!r}") from exc
        now = self._clock.now()
        if kind is KeyScope.WINDOW:
            if window_s is None:
                raise ConfigError("a window claim needs window_s")
            expires_at = math.ceil(now + _positive("window_s", window_s))
        else:
            if window_s is not None:
                raise ConfigError(f"window_s applies to window claims, not {kind.value}")
            expires_at = self._expires_at(now, ttl_s)
        item = {
            schema.PK: _attr(pk),
            "job": _attr(job),
            "key": _attr(key),
            "job_id": _attr(job_id),
            "scope": _attr(kind.value),
            "claimed_at": _attr(now),
            schema.TTL_ATTRIBUTE: _attr(expires_at),
        }
        for _ in range(3):  # a claim that expires or is released between our write and our read: write again
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
                    ExpressionAttributeNames={"#pk": schema.PK, "#exp": schema.TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":now": _attr(now)},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise
                held = _old_item(exc) or self._get_item(pk)
                if held is None:
                    continue
                owner = held["job_id"]["S"]
                return KeyClaim(claimed=owner == job_id, job_id=owner, expires_at=_int(held, schema.TTL_ATTRIBUTE) or 0)
            return KeyClaim(claimed=True, job_id=job_id, expires_at=expires_at)
        raise SqsloopsError(f"unique key {key!r} of {job} kept changing hands while it was claimed")

    def release_key(self, job: str, key: str, *, job_id: str) -> bool:
        """Free a key that `job_id` holds (until_started at start, until_done at a final state).

        False if the key is free already or another job holds it (its window passed and it was claimed again).
        """
        _check_job(job)
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key=_key(schema.key_pk(job, key)),
                ConditionExpression="job_id = :mine",
                ExpressionAttributeValues={":mine": _attr(job_id)},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    # --- cron ticks -------------------------------------------------------------------------------------------

    def record_tick(
        self,
        job: str,
        scheduled_at: float,
        *,
        job_id: str | None = None,
        skipped_reason: str | None = None,
    ) -> bool:
        """Record one cron firing: the job it enqueued, or why it was skipped (at least one of the two).

        False if this firing is recorded already: a duplicate Scheduler delivery, which must not run again.
        """
        _check_job(job)
        if job_id is None and skipped_reason is None:
            raise ConfigError("a tick records the job it enqueued or why it was skipped")
        pk = schema.tick_pk(job, scheduled_at)
        now = self._clock.now()
        write_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            schema.PK: pk,
            "job": job,
            schema.INDEX_SK: schema.tick_sort_key(scheduled_at),
            "scheduled_at": scheduled_at,
            "recorded_at": now,
            "job_id": job_id,
            "skipped_reason": skipped_reason,
            schema.TTL_ATTRIBUTE: math.ceil(max(now, scheduled_at) + self._tick_ttl_s),
            "write_id": write_id,
        }
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={name: _attr(value) for name, value in values.items() if value is not None},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": schema.PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return _write_id(_old_item(exc) or self._get_item(pk)) == write_id
        return True

    def ticks(self, job: str, *, since: float, limit: int = DEFAULT_LIST_LIMIT) -> builtins.list[Tick]:
        """A job's recorded firings scheduled at or after `since`, newest first (one Query of the index)."""
        _check_job(job)
        _check_limit(limit)
        names = {"#job": schema.INDEX_PK, "#sk": schema.INDEX_SK}
        values = {
            ":job": _attr(job),
            ":lo": _attr(schema.tick_sort_key(since)),
            ":hi": _attr(schema.TICK_SORT_END),
        }
        items, _ = self._query_index("#job = :job AND #sk BETWEEN :lo AND :hi", names, values, limit, None)
        return [Tick.from_item(item) for item in items]

    def list(
        self,
        job: str,
        *,
        state: JobState | str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        start: str | None = None,
    ) -> tuple[builtins.list[JobRecord], str | None]:
        """A job's rows in one state, or in all (state None), newest change first; and the next page's token.

        Queries the index, never scans: one state is one Query; all states query each state's partition and merge
        them (up to seven Queries a page: listing is for people, and a second index would cost a write on every
        state change). Records come from the index, so `result` and `traceback` are None (get() reads them).
        A job that changes state between two pages may show on both, or on neither.
        """
        _check_job(job)
        _check_limit(limit)
        wanted = [JobState(state)] if state is not None else builtins.list(JobState)
        cursors = _decode_token(start, job, wanted) if start else {s: None for s in wanted}
        pages: dict[JobState, tuple[builtins.list[dict[str, Any]], dict[str, Any] | None]] = {}
        for current, cursor in cursors.items():
            names = {"#job": schema.INDEX_PK, "#sk": schema.INDEX_SK}
            values = {":job": _attr(job), ":state": _attr(schema.state_sort_prefix(current))}
            condition = "#job = :job AND begins_with(#sk, :state)"
            pages[current] = self._query_index(condition, names, values, limit, _start_key(job, cursor))

        # Each state's page is newest first and holds `limit` rows unless its state has no more: merging them and
        # taking `limit` rows is exact, and what is taken from each state is a prefix of its page.
        streams = [[(_sort_time(item), state, item) for item in items] for state, (items, _) in pages.items()]
        taken = builtins.list(itertools.islice(heapq.merge(*streams, key=lambda entry: entry[0], reverse=True), limit))
        used = {current: 0 for current in pages}
        for _, current, _item in taken:
            used[current] += 1
        following: dict[JobState, tuple[str, str] | None] = {}
        for current, (items, more) in pages.items():
            count = used[current]
            if count < len(items):
                following[current] = _cursor(items[count - 1]) if count else cursors[current]
            elif more is not None:
                following[current] = _cursor(items[-1]) if items else _cursor(more)
        records = [JobRecord.from_item(item) for _, _, item in taken]
        return records, _encode_token(job, following) if following else None

    def count(self, job: str, state: JobState | str, *, cap: int = MAX_LIST_LIMIT) -> int:
        """How many of a job's rows are in `state`, at most `cap` (the dashboard shows "cap+" past it).

        Queries the state's partition of the index with Select COUNT: no item comes back, but each page still reads
        up to 1 MB of the index, so the cap bounds what a count may cost.
        """
        _check_job(job)
        _check_limit(cap)
        names = {"#job": schema.INDEX_PK, "#sk": schema.INDEX_SK}
        values = {":job": _attr(job), ":state": _attr(schema.state_sort_prefix(JobState(state)))}
        counted = 0
        start_key: dict[str, Any] | None = None
        while counted < cap:
            options: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
            page = self._ddb.query(
                TableName=self._table,
                IndexName=schema.INDEX_NAME,
                KeyConditionExpression="#job = :job AND begins_with(#sk, :state)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                Select="COUNT",
                Limit=cap - counted,
                **options,
            )
            counted += int(page.get("Count", 0))
            start_key = cast(dict[str, Any] | None, page.get("LastEvaluatedKey"))
            if start_key is None:
                break
        return min(counted, cap)

    # --- helpers ----------------------------------------------------------------------------------------------

    def _expires_at(self, now: float, ttl_s: float | None, *, due_at: float | None = None) -> int:
        ttl = self._ttl_s if ttl_s is None else _positive("ttl_s", ttl_s)
        return math.ceil(max(now, due_at if due_at is not None else now) + ttl)

    def _set_state(
        self, write: _Write, state: JobState, now: float, *, ttl_s: float | None, due_at: float | None = None
    ) -> None:
        write.set("state", state.value)
        write.set(schema.INDEX_SK, schema.state_sort_key(state, now))
        write.set("updated_at", now)
        write.set(schema.TTL_ATTRIBUTE, self._expires_at(now, ttl_s, due_at=due_at))
        write.set("write_id", uuid.uuid4().hex)

    @staticmethod
    def _set_failure(write: _Write, *, attempts: int, error: str, traceback: str | None) -> None:
        write.set("attempts", attempts)
        write.set("last_error", cap_head(error, MAX_ERROR_BYTES))
        write.set("traceback", cap_tail(traceback, MAX_TRACEBACK_BYTES) if traceback is not None else None)

    @staticmethod
    def _from_states(write: _Write, target: JobState) -> str:
        return f"attribute_exists({write.name(schema.PK)}) AND {write.state_in(sources(target))}"

    def _transition(
        self, job_id: str, target: JobState, write: _Write, condition: str, why: _Why
    ) -> JobRecord | Refused:
        try:
            return self._update(job_id, write, condition)
        except _ConflictError as conflict:
            return Refused(job_id=job_id, target=target, current=conflict.current, detail=why(conflict.current))

    def _update(self, job_id: str, write: _Write, condition: str) -> JobRecord:
        """One conditional UpdateItem of a job row: the row as written, or _ConflictError with the row as found."""
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key=_key(schema.job_pk(job_id)),
                UpdateExpression=write.expression(),
                ConditionExpression=condition,
                ExpressionAttributeNames=write.names,
                ExpressionAttributeValues=write.values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            item = _old_item(exc) or self._get_item(schema.job_pk(job_id))
            if item is None:
                raise _ConflictError(None, exc) from exc
            if _write_id(item) == write.write_id:
                return JobRecord.from_item(item)  # our own write, found by botocore's retry after a lost response
            raise _ConflictError(JobRecord.from_item(item), exc) from exc
        return JobRecord.from_item(cast(dict[str, Any], response["Attributes"]))

    def _get_item(self, pk: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(TableName=self._table, Key=_key(pk), ConsistentRead=True).get("Item")
        return cast(dict[str, Any], item) if item else None

    def _query_index(
        self,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        limit: int,
        start_key: dict[str, Any] | None,
    ) -> tuple[builtins.list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` index items newest first, across DynamoDB's 1 MB pages; and where more would start."""
        items: builtins.list[dict[str, Any]] = []
        while True:
            options: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
            page = self._ddb.query(
                TableName=self._table,
                IndexName=schema.INDEX_NAME,
                KeyConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=limit - len(items),
                **options,
            )
            items.extend(cast(builtins.list[dict[str, Any]], page.get("Items", [])))
            start_key = cast(dict[str, Any] | None, page.get("LastEvaluatedKey"))
            if start_key is None or len(items) >= limit:
                return items, start_key


# --- the pieces of an UpdateItem ----------------------------------------------------------------------------------


class _Write:
    """One UpdateItem's expressions, every name through a placeholder (state, key, result... are reserved words)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._placeholders: dict[str, str] = {}
        self._sets: builtins.list[str] = []
        self._removes: builtins.list[str] = []
        self.write_id: str | None = None

    def name(self, attribute: str) -> str:
        placeholder = self._placeholders.get(attribute)
        if placeholder is None:
            placeholder = self._placeholders[attribute] = f"#n{len(self._placeholders)}"
            self.names[placeholder] = attribute
        return placeholder

    def value(self, value: str | float | bool) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _attr(value)
        return placeholder

    def set(self, attribute: str, value: str | float | bool | None) -> None:
        """SET the attribute, or REMOVE it when value is None."""
        if value is None:
            self.remove(attribute)
            return
        if attribute == "write_id":
            self.write_id = cast(str, value)
        self._sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: str | float) -> None:
        placeholder = self.name(attribute)
        self._sets.append(f"{placeholder} = if_not_exists({placeholder}, {self.value(value)})")

    def remove(self, attribute: str) -> None:
        self._removes.append(self.name(attribute))

    def state_in(self, states: Iterable[JobState]) -> str:
        listed = ", ".join(self.value(state.value) for state in sorted(states))
        return f"{self.name('state')} IN ({listed})"

    def expression(self) -> str:
        parts = [f"SET {', '.join(self._sets)}"] if self._sets else []
        if self._removes:
            parts.append(f"REMOVE {', '.join(self._removes)}")
        return " ".join(parts)


# --- refusal details -----------------------------------------------------------------------------------------------


_Why = Callable[[JobRecord | None], str]  # says why a state change was refused, from the row found


class _ConflictError(Exception):
    """A job row's write condition failed: `current` is the row as found (None: no row), `cause` the ClientError."""

    def __init__(self, current: JobRecord | None, cause: ClientError) -> None:
        super().__init__(cause)
        self.current = current
        self.cause = cause


def _state_refusal(current: JobRecord | None) -> str:
    return "no such job" if current is None else f"job is {current.state.value}"


def _attempt_refusal(attempt: int) -> _Why:
    def why(current: JobRecord | None) -> str:
        if current is None:
            return "no such job"
        if current.state is not RUNNING:
            return f"job is {current.state.value}"
        if current.attempts != attempt:
            return f"attempt {attempt} is not the current one ({current.attempts})"
        return "a receipt came already" if current.receipt else "the job is not waiting for a receipt"

    return why


def _attempts_refusal(target: JobState, attempts: int) -> _Why:
    def why(current: JobRecord | None) -> str:
        if current is not None and current.state in sources(target) and current.attempts > attempts:
            return f"attempt {attempts} is older than attempt {current.attempts}, already recorded"
        return _state_refusal(current)

    return why


# --- capping text --------------------------------------------------------------------------------------------------


def cap_head(text: str, max_bytes: int) -> str:
    """`text` if it fits in max_bytes of UTF-8; else its beginning and a marker with its size, within max_bytes."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = _TRUNCATED.format(size=len(data))
    keep = max(max_bytes - len(marker), 0)
    return data[:keep].decode("utf-8", "ignore") + marker


def cap_tail(text: str, max_bytes: int) -> str:
    """`text` if it fits in max_bytes of UTF-8; else a marker with its size and its end, within max_bytes."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = _TRUNCATED.format(size=len(data)) + "\n"
    keep = max(max_bytes - len(marker), 0)
    return marker + (data[len(data) - keep :].decode("utf-8", "ignore") if keep else "")


# --- items -----------------------------------------------------------------------------------------------------------


def _attr(value: str | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot store {value!r} in the Jobs table")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    raise TypeError(f"cannot store {type(value).__name__} in the Jobs table")


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def _float(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return float(value) if value is not None else None


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return int(float(value)) if value is not None else None


def _key(pk: str) -> dict[str, Any]:
    return {schema.PK: {"S": pk}}


def _write_id(item: dict[str, Any] | None) -> str | None:
    return _str(item, "write_id") if item else None


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _WRITE_ERRORS


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a refused write found (ReturnValuesOnConditionCheckFailure ALL_OLD); None if none came back."""
    item = cast(dict[str, Any], exc.response).get("Item")
    return cast(dict[str, Any], item) if item else None


def _sort_time(item: dict[str, Any]) -> str:
    return str(item[schema.INDEX_SK]["S"]).split("#", 1)[1]


# --- page tokens: per state, the index key of the last row handed out (or None: from the newest) ----------------


def _cursor(item: dict[str, Any]) -> tuple[str, str]:
    return str(item[schema.PK]["S"]), str(item[schema.INDEX_SK]["S"])


def _start_key(job: str, cursor: tuple[str, str] | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    pk, sort_key = cursor
    return {schema.PK: _attr(pk), schema.INDEX_PK: _attr(job), schema.INDEX_SK: _attr(sort_key)}


def _encode_token(job: str, cursors: dict[JobState, tuple[str, str] | None]) -> str:
    body = {"v": 1, "job": job, "states": {state.value: cursor for state, cursor in cursors.items()}}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, job: str, wanted: builtins.list[JobState]) -> dict[JobState, tuple[str, str] | None]:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body.get("v") != 1 or body.get("job") != job:
            raise ValueError("the token is for another listing")
        cursors: dict[JobState, tuple[str, str] | None] = {}
        for name, cursor in body["states"].items():
            state = JobState(name)
            if state not in wanted:
                raise ValueError("the token is for another listing")
            cursors[state] = None if cursor is None else (str(cursor[0]), str(cursor[1]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, binascii.Error) as exc:
        raise ConfigError(f"not a page token of this listing: {token!r}") from exc
    return cursors


# --- argument checks -------------------------------------------------------------------------------------------------


def _check_id(job_id: str) -> None:
    if not isinstance(job_id, str) or not job_id:
        raise ConfigError(f"a job id is a non-empty string, got {job_id!r}")
    _check_pk(schema.job_pk(job_id))


def _check_job(job: str) -> None:
    if not isinstance(job, str) or not job or "#" in job:
        raise ConfigError(f"a job name is a non-empty string without '#', got {job!r}")


def _check_pk(pk: str) -> None:
    if len(pk.encode("utf-8")) > _MAX_PK_BYTES:
        raise ConfigError(f"a key may be at most {_MAX_PK_BYTES} bytes, got {pk[:80]!r}...")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ConfigError(f"limit must be a whole number between 1 and {MAX_LIST_LIMIT}, got {limit!r}")


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _result_fields(result_json: str | None) -> tuple[str | None, int | None, bool]:
    """(result, result_bytes, result_truncated) as a row keeps a result: over MAX_RESULT_BYTES only its size."""
    if result_json is None:
        return None, None, False
    size = len(result_json.encode("utf-8"))
    return (result_json, size, False) if size <= MAX_RESULT_BYTES else (None, size, True)
