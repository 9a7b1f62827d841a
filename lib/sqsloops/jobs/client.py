"""JobClient: sends jobs now, after a delay or at a time, unique or with an id of the caller's choosing.

The order of an enqueue is fixed so that bad input writes nothing and a failed send leaves nothing behind:

1. Check everything that needs no AWS: the job is known (in code or in the catalog), the arguments fit its
   signature and are JSON, the message fits, the time is not in the past, the key and the id are well formed.
2. Claim the unique key (a duplicate returns the first job's handle, flagged, and writes nothing more).
3. Write the status row (queued, or scheduled; a tracked job only). An id already taken is a duplicate too.
4. Send: SendMessage (now, or DelaySeconds up to 15 minutes on a standard queue), or a one-time EventBridge
   Scheduler schedule for a longer delay or any delay on a FIFO queue (FIFO queues refuse DelaySeconds).
   If the send fails, the row is taken back (`JobStore.forget`) and the key released, and the error raised.

A process that dies between 3 and 4 leaves a queued row with no message; its TTL purges it. A schedule's target
input is the envelope; `ActionAfterCompletion: DELETE` removes the schedule once it has delivered, and
`cancel()` deletes it before. Schedules are named `prefix + job id` (`envelope.schedule_name`), so a cancel in
another process finds the schedule from the id alone.

FIFO job queues are sent a MessageDeduplicationId (the job id) directly; Scheduler's SQS target has no such
parameter, so a FIFO job queue needs ContentBasedDeduplication for its delayed jobs (`jobs apply` sets it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.jobs import context
from sqsloops.jobs.catalog import CatalogEntry, CatalogReader
from sqsloops.jobs.definition import MAX_GROUP_ID_LEN, JobFunction, render_key_template
from sqsloops.jobs.durations import DurationLike
from sqsloops.jobs.envelope import (
    MAX_KEY_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_SNS_MESSAGE_BYTES,
    Envelope,
    check_job_id,
    check_job_name,
    new_job_id,
    resolve_run_at,
    schedule_name,
)
from sqsloops.jobs.errors import (
    EnqueueTimeError,
    JobArgsError,
    JobError,
    JobNotFoundError,
    NotCancellableError,
    UnknownJobError,
)
from sqsloops.jobs.handle import JobHandle
from sqsloops.jobs.states import QUEUED, SCHEDULED
from sqsloops.jobs.store import BATCH_WRITE_MAX, JobRecord, JobStore, KeyScope
from sqsloops.jobs.store import JobNotFoundError as StoreJobNotFoundError
from sqsloops.jobs.store import NotCancellableError as StoreNotCancellableError
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds: 15 minutes; longer delays go through Scheduler
MAX_BATCH_ENTRIES = 10  # SendMessageBatch
# Scheduler's target input: its documented limit is not found; we hold it to EventBridge's 256 KiB event size, the
# smaller of the two candidates, so a delayed job never fails at delivery time for its size.
MAX_SCHEDULED_INPUT_BYTES = MAX_SNS_MESSAGE_BYTES
SCHEDULE_TIMEZONE = "UTC"
AT_FORMAT = "%Y-%m-%dT%H:%M:%S"  # at(yyyy-mm-ddThh:mm:ss): whole seconds in ScheduleExpressionTimezone
DEFAULT_SCHEDULE_PREFIX = "job-"
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
THROTTLE_FIRST_PAUSE_S = 0.25
THROTTLE_MAX_PAUSE_S = 8.0
THROTTLE_MAX_WAITS = 8  # after botocore's own retries: ~30 s of pauses at most, then the item fails


class JobNotAppliedError(JobError, ConfigError):
    """The job is declared in code, but no queue is known for it: `jobs apply` has not run (or no URL was given)."""

    def __init__(self, job: str) -> None:
        super().__init__(
            f"job {job!r} has no queue yet: run `sqsloops jobs apply` for its module, or give the JobClient its"
            " queue URL (queue_urls=)"
        )
        self.job = job


class SendFailedError(JobError):
    """SQS refused one entry of a SendMessageBatch; nothing of that job was kept."""

    def __init__(self, job_id: str, code: str, message: str) -> None:
        super().__init__(f"job {job_id} was not sent: {code}: {message}")
        self.job_id = job_id
        self.code = code


@dataclass(frozen=True)
class JobCall:
    """One job to send with `enqueue_many`: the job (declared, or by name), its arguments and options."""

    job: JobFunction[..., Any] | str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    delay: DurationLike | None = None
    run_at: datetime | None = None
    key: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    """The outcome of one JobCall of `enqueue_many`: a handle, or the error that kept it from being sent."""

    index: int
    handle: JobHandle | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Target:
    """Where a job goes and the options that shape its message: from its declaration, else from the catalog."""

    job: str
    queue_url: str
    queue_arn: str | None
    track: bool
    unique: str | None
    window_s: float | None
    key_template: str | None
    group_by: str | None
    result_ttl_s: float | None
    fn: JobFunction[..., Any] | None

    @property
    def fifo(self) -> bool:
        return self.queue_url.endswith(".fifo")


@dataclass
class _Prepared:
    """A checked call, ready to commit and send."""

    target: _Target
    envelope: Envelope
    now_s: float
    group: str | None
    delay_seconds: int  # DelaySeconds when sent to the queue (0: now)
    schedule: str | None  # the schedule's name when Scheduler delivers it
    claimed_key: bool = False

    @property
    def job_id(self) -> str:
        return self.envelope.id

    @property
    def run_at_s(self) -> float | None:
        return None if self.envelope.run_at is None else self.envelope.run_at.timestamp()


class JobClient:
    """Sends jobs to their queues (and Scheduler), writes their status rows, and reads them back through handles.

    `jobs`: the declarations this process knows (by name); `queue_urls`: job name (or queue name) -> queue URL,
    ahead of the catalog; `catalog`: how every other job name is found. Built by the composition root with its
    clients; `install()` makes it the enqueuer `fn.enqueue()` and `sqsloops.jobs.enqueue` use.
    """

    def __init__(
        self,
        *,
        sqs: SQSClient,
        scheduler: EventBridgeSchedulerClient,
        store: JobStore,
        schedule_group: str,
        scheduler_role_arn: str,
        catalog: CatalogReader | None = None,
        jobs: Iterable[JobFunction[..., Any]] = (),
        queue_urls: Mapping[str, str] | None = None,
        schedule_prefix: str = DEFAULT_SCHEDULE_PREFIX,
        schedule_dlq_arn: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_batch_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        schedule_name(schedule_prefix, "x")  # ConfigError now for a prefix no schedule name could carry
        if not schedule_group or not scheduler_role_arn:
            raise ConfigError("a JobClient needs the stack's schedule group and the role Scheduler sends with")
        self._sqs = sqs
        self._scheduler = scheduler
        self._store = store
        self._catalog = catalog
        self._jobs = {fn.name: fn for fn in jobs}
        self._queue_urls = dict(queue_urls or {})
        self._group = schedule_group
        self._role_arn = scheduler_role_arn
        self._prefix = schedule_prefix
        self._dlq_arn = schedule_dlq_arn
        self.clock = clock
        self._max_message_bytes = max_message_bytes
        self._max_batch_bytes = max_batch_bytes
        self._queue_arns: dict[str, str] = {}

    def install(self) -> context.Enqueuer | None:
        """Make this client the process's enqueuer; returns the previous one."""
        return context.set_enqueuer(self)

    # --- enqueue --------------------------------------------------------------------------------------------

    def enqueue(
        self,
        job: JobFunction[..., Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        delay: DurationLike | None = None,
        run_at: datetime | None = None,
        key: str | None = None,
        id: str | None = None,
    ) -> JobHandle:
        """Send one job; its handle (flagged `duplicate` when its unique key or id was taken: nothing sent).

        UnknownJobError, JobArgsError, EnqueueTimeError, JobNotAppliedError: nothing was written. An AWS error
        from the send: the row and key written for it were taken back, and the error is raised.
        """
        prepared = self._prepare(JobCall(job, args, kwargs or {}, delay, run_at, key, id))
        duplicate = self._commit(prepared)
        if duplicate is not None:
            return duplicate
        try:
            if prepared.schedule is not None:
                conflict = self._create_schedule(prepared)
                if conflict is not None:
                    return conflict
            else:
                self._sqs.send_message(**self._send_request(prepared))
        except BaseException:
            self._undo(prepared)
            raise
        return self._handle(prepared)

    def enqueue_many(self, calls: Iterable[JobCall]) -> list[EnqueueResult]:
        """Send many jobs: those due now (or within 15 min on a standard queue) in SendMessageBatch requests of up to
        10 entries and `max_batch_bytes`, per queue; the others as one-time schedules, pacing CreateSchedule when it
        is throttled. One result per call, in order; a bad call fails alone and writes nothing."""
        results: dict[int, EnqueueResult] = {}
        committed: list[tuple[int, _Prepared]] = []
        fresh: list[tuple[int, _Prepared]] = []  # tracked, no key, an id of our own: rows written in batches
        for index, call in enumerate(calls):
            try:
                prepared = self._prepare(call)
                if call.id is None and prepared.target.track and prepared.target.unique is None:
                    fresh.append((index, prepared))
                    continue
                duplicate = self._commit(prepared)
            except Exception as exc:  # one bad call fails alone: reported in its result
                results[index] = EnqueueResult(index, error=exc)
                continue
            if duplicate is not None:
                results[index] = EnqueueResult(index, handle=duplicate)
            else:
                committed.append((index, prepared))
        for start in range(0, len(fresh), BATCH_WRITE_MAX):
            chunk = fresh[start : start + BATCH_WRITE_MAX]
            try:
                self._store.create_many([self._new_row(prepared) for _, prepared in chunk])
            except Exception as exc:
                for index, prepared in chunk:
                    self._undo(prepared)
                    results[index] = EnqueueResult(index, error=exc)
                continue
            committed += chunk
        committed.sort(key=lambda item: item[0])
        to_send = [(i, p) for i, p in committed if p.schedule is None]
        to_schedule = [(i, p) for i, p in committed if p.schedule is not None]
        for batch in self._batches(to_send):
            results.update(self._send_batch(batch))
        pause_s = THROTTLE_FIRST_PAUSE_S
        for index, prepared in to_schedule:
            try:
                conflict, pause_s = self._paced(functools.partial(self._create_schedule, prepared), pause_s)
            except Exception as exc:
                self._undo(prepared)
                results[index] = EnqueueResult(index, error=exc)
                continue
            results[index] = EnqueueResult(index, handle=conflict or self._handle(prepared))
        return [results[index] for index in sorted(results)]

    # --- status and cancel ----------------------------------------------------------------------------------

    def handle(self, job_id: str, *, job: str | None = None) -> JobHandle:
        """A handle for a job enqueued earlier (anywhere): its row names the job when `job` is not given."""
        if job is None:
            job = self.status(job_id).job
        return JobHandle(id=job_id, job=job, client=self)

    def status(self, job_id: str) -> JobRecord:
        """The job's row; JobNotFoundError when there is none."""
        record = self.store_get(job_id)
        if record is None:
            raise JobNotFoundError(job_id)
        return record

    def store_get(self, job_id: str) -> JobRecord | None:
        try:
            check_job_id(job_id)
        except ConfigError:
            return None
        return self._store.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job that has not started (scheduled, queued, retrying): its row says cancelled (the runner skips
        it), its one-time schedule is deleted, its until_started / until_done key is freed.

        JobNotFoundError for an unknown id; NotCancellableError (with the state) once it runs or has ended."""
        try:
            check_job_id(job_id)
        except ConfigError:
            raise JobNotFoundError(job_id) from None
        try:
            record = self._store.cancel(job_id)
        except StoreJobNotFoundError:
            raise JobNotFoundError(job_id) from None
        except StoreNotCancellableError as exc:
            raise NotCancellableError(job_id, exc.state.value) from None
        if record.schedule_name is not None:
            self._delete_schedule(record.schedule_name)
        if record.key is not None and self._releases_on_cancel(record.job):
            self._store.release_key(record.job, record.key, job_id=job_id)
        return record

    # --- preparing ------------------------------------------------------------------------------------------

    def _prepare(self, call: JobCall) -> _Prepared:
        target = self._target(call.job)
        name = target.job
        args: Sequence[Any] = call.args
        kwargs: Mapping[str, Any] = call.kwargs
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise JobArgsError(name, f"args must be a list of positional arguments, got {type(args).__name__}")
        if not isinstance(kwargs, Mapping):
            raise JobArgsError(name, f"kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
        if target.fn is not None:
            args, kwargs = target.fn.bind(*args, **kwargs)
        key = self._key(target, args, kwargs, call.key)
        if call.id is not None:
            try:
                check_job_id(call.id)
            except ConfigError as exc:
                raise JobArgsError(name, str(exc)) from None
        now_s = self.clock.now()
        now = datetime.fromtimestamp(now_s, UTC)
        due = resolve_run_at(delay=call.delay, run_at=call.run_at, now=now)
        job_id = call.id if call.id is not None else new_job_id()
        envelope = Envelope.create(
            name, args, kwargs, now=now, id=job_id, key=key, run_at=due, max_bytes=self._max_message_bytes
        )
        group = self._group_of(target, args, kwargs)
        delay_s = 0.0 if due is None else due.timestamp() - now_s
        if delay_s <= 0:
            return _Prepared(target, envelope, now_s, group, 0, None)
        if not target.fifo and math.ceil(delay_s) <= MAX_DELAY_SECONDS:
            return _Prepared(target, envelope, now_s, group, math.ceil(delay_s), None)
        envelope.check_size(MAX_SCHEDULED_INPUT_BYTES)
        return _Prepared(target, envelope, now_s, group, 0, schedule_name(self._prefix, job_id))

    def _target(self, job: JobFunction[..., Any] | str) -> _Target:
        fn: JobFunction[..., Any] | None
        if isinstance(job, JobFunction):
            name, fn = job.name, job
        else:
            try:
                name = check_job_name(job)
            except ConfigError:
                raise UnknownJobError(str(job)) from None
            fn = self._jobs.get(name)
        url = self._queue_urls.get(name)
        if url is None and fn is not None:
            url = self._queue_urls.get(fn.options.queue_name) or self._queue_urls.get(fn.options.queue)
        entry = self._catalog.get(name) if url is None and self._catalog is not None else None
        if fn is None and entry is None:
            if url is None:
                raise UnknownJobError(name)
            raise JobNotAppliedError(name)  # a URL for a job nobody declared: nothing says how to shape it
        if fn is not None:
            if url is None:
                if entry is None:
                    raise JobNotAppliedError(name)
                url = entry.queue_url
            options = fn.options
            return _Target(
                job=name,
                queue_url=url,
                queue_arn=entry.queue_arn if entry is not None and entry.queue_url == url else None,
                track=options.track,
                unique=options.unique,
                window_s=options.unique_window_s,
                key_template=options.key,
                group_by=options.group_by,
                result_ttl_s=options.result_ttl_s if options.track else None,
                fn=fn,
            )
        return _from_entry(cast(CatalogEntry, entry))

    def _key(self, target: _Target, args: Sequence[Any], kwargs: Mapping[str, Any], given: str | None) -> str | None:
        if given is not None:
            if target.unique is None:
                raise JobArgsError(target.job, "key= is for unique jobs; declare the job with unique=...")
            if not isinstance(given, str) or not given or len(given.encode()) > MAX_KEY_BYTES:
                raise JobArgsError(target.job, f"key must be a non-empty string of at most {MAX_KEY_BYTES} bytes")
            return given
        if target.unique is None:
            return None
        if target.fn is not None:
            return target.fn.render_key(args, kwargs)
        if target.key_template is None:
            raise JobArgsError(
                target.job,
                "its unique key is derived from all its bound arguments, which only its declaration can bind:"
                " enqueue it from code, or pass key=",
            )
        try:
            return render_key_template(target.key_template, kwargs)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise JobArgsError(
                target.job, f"key {target.key_template!r} needs keyword arguments by name when sent by name: {exc}"
            ) from None

    def _group_of(self, target: _Target, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        if target.fn is not None:
            group = target.fn.group_of(args, kwargs)
        elif target.group_by is not None:
            if target.group_by not in kwargs:
                raise JobArgsError(target.job, f"pass {target.group_by!r} by name: it picks the message group")
            group = _group_id(kwargs[target.group_by])
        else:
            group = None
        return group if group is not None or not target.fifo else target.job  # a FIFO queue needs a group

    # --- committing and sending -----------------------------------------------------------------------------

    def _commit(self, prepared: _Prepared) -> JobHandle | None:
        """Claim the key and write the row: a handle when this is a duplicate (nothing more written), else None."""
        target, envelope = prepared.target, prepared.envelope
        if target.unique is not None and envelope.key is not None:
            claim = self._store.claim_key(
                target.job,
                envelope.key,
                job_id=envelope.id,
                scope=KeyScope(target.unique),
                window_s=target.window_s if target.unique == KeyScope.WINDOW else None,
            )
            if claim.duplicate:
                return JobHandle(id=claim.job_id, job=target.job, client=self, duplicate=True)
            prepared.claimed_key = True
        if not target.track:
            return None
        try:
            created = self._store.create(
                envelope.id,
                target.job,
                state=SCHEDULED if prepared.schedule is not None else QUEUED,
                enqueued_at=prepared.now_s,
                run_at=prepared.run_at_s,
                key=envelope.key,
                ttl_s=target.result_ttl_s,
                schedule_name=prepared.schedule,
            )
        except BaseException:
            self._release(prepared)
            raise
        if not created:  # the id is taken: the same job enqueued again (its key, if any, is that job's too)
            existing = self._store.get(envelope.id)
            return JobHandle(
                id=envelope.id,
                job=existing.job if existing is not None else target.job,
                client=self,
                duplicate=True,
                schedule_name=existing.schedule_name if existing is not None else None,
            )
        return None

    def _new_row(self, prepared: _Prepared) -> JobRecord:
        """The row `_commit` would write for a job with no key and an id of our own."""
        return self._store.new_record(
            prepared.envelope.id,
            prepared.target.job,
            state=SCHEDULED if prepared.schedule is not None else QUEUED,
            enqueued_at=prepared.now_s,
            run_at=prepared.run_at_s,
            ttl_s=prepared.target.result_ttl_s,
            schedule_name=prepared.schedule,
        )

    def _send_request(self, prepared: _Prepared) -> dict[str, Any]:
        request: dict[str, Any] = {"QueueUrl": prepared.target.queue_url, "MessageBody": prepared.envelope.to_json()}
        request.update(self._message_options(prepared))
        return request

    @staticmethod
    def _message_options(prepared: _Prepared) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if prepared.delay_seconds:
            options["DelaySeconds"] = prepared.delay_seconds
        if prepared.group is not None:
            options["MessageGroupId"] = prepared.group
        if prepared.target.fifo:
            options["MessageDeduplicationId"] = prepared.job_id
        return options

    def _batches(self, items: list[tuple[int, _Prepared]]) -> Iterable[list[tuple[int, _Prepared]]]:
        by_queue: dict[str, list[tuple[int, _Prepared]]] = {}
        for item in items:
            by_queue.setdefault(item[1].target.queue_url, []).append(item)
        for queued in by_queue.values():
            batch: list[tuple[int, _Prepared]] = []
            size = 0
            for item in queued:
                item_size = item[1].envelope.size_bytes()
                if batch and (len(batch) == MAX_BATCH_ENTRIES or size + item_size > self._max_batch_bytes):
                    yield batch
                    batch, size = [], 0
                batch.append(item)
                size += item_size
            if batch:
                yield batch

    def _send_batch(self, batch: list[tuple[int, _Prepared]]) -> dict[int, EnqueueResult]:
        entries = [
            {"Id": str(index), "MessageBody": prepared.envelope.to_json(), **self._message_options(prepared)}
            for index, prepared in batch
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=batch[0][1].target.queue_url, Entries=cast(Any, entries))
        except Exception as exc:
            for _, prepared in batch:
                self._undo(prepared)
            return {index: EnqueueResult(index, error=exc) for index, _ in batch}
        failed = {entry["Id"]: entry for entry in response.get("Failed", [])}
        results: dict[int, EnqueueResult] = {}
        for index, prepared in batch:
            failure = failed.get(str(index))
            if failure is None:
                results[index] = EnqueueResult(index, handle=self._handle(prepared))
                continue
            self._undo(prepared)
            error = SendFailedError(prepared.job_id, failure.get("Code", "?"), failure.get("Message", ""))
            results[index] = EnqueueResult(index, error=error)
        return results

    def _create_schedule(self, prepared: _Prepared) -> JobHandle | None:
        """Create the one-time schedule; a handle flagged duplicate if a schedule of that name exists (an untracked
        job enqueued again with its id), else None."""
        target = prepared.target
        due_s = math.ceil(cast(float, prepared.run_at_s))  # at() has whole seconds: never fire early
        schedule_target: dict[str, Any] = {
            "Arn": self._queue_arn(target),
            "RoleArn": self._role_arn,
            "Input": prepared.envelope.for_schedule().to_json(),
        }
        if target.fifo:
            schedule_target["SqsParameters"] = {"MessageGroupId": cast(str, prepared.group)}
        if self._dlq_arn is not None:
            schedule_target["DeadLetterConfig"] = {"Arn": self._dlq_arn}
        try:
            self._scheduler.create_schedule(
                Name=cast(str, prepared.schedule),
                GroupName=self._group,
                ScheduleExpression=f"at({datetime.fromtimestamp(due_s, UTC).strftime(AT_FORMAT)})",
                ScheduleExpressionTimezone=SCHEDULE_TIMEZONE,
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                State="ENABLED",
                Description=f"sqsloops job {target.job} {prepared.job_id}",
                Target=cast(Any, schedule_target),
            )
        except ClientError as exc:
            if _code(exc) == "ConflictException" and not target.track:
                return JobHandle(
                    id=prepared.job_id, job=target.job, client=self, duplicate=True, tracked=False,
                    schedule_name=prepared.schedule,
                )  # fmt: skip
            raise
        return None

    def _paced(self, create: Callable[[], T], pause_s: float) -> tuple[T, float]:
        """`create()`, waiting and trying again when Scheduler still throttles after botocore's own retries (a
        long-delay batch over the account's CreateSchedule rate); the pause doubles per throttle and eases back
        after a success, and the pace carries over to the next item."""
        for waits in range(THROTTLE_MAX_WAITS + 1):
            try:
                result = create()
            except ClientError as exc:
                if _code(exc) not in THROTTLE_CODES or waits == THROTTLE_MAX_WAITS:
                    raise
                logger.warning("CreateSchedule throttled; slowing down", extra={"pause_s": pause_s})
                self.clock.sleep(pause_s)
                pause_s = min(pause_s * 2, THROTTLE_MAX_PAUSE_S)
                continue
            return result, max(THROTTLE_FIRST_PAUSE_S, pause_s / 2)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete_schedule(self, name: str) -> None:
        try:
            self._scheduler.delete_schedule(Name=name, GroupName=self._group)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":  # it fired already: the runner skips the cancelled job
                raise

    def _queue_arn(self, target: _Target) -> str:
        if target.queue_arn is not None:
            return target.queue_arn
        arn = self._queue_arns.get(target.queue_url)
        if arn is None:
            attributes = self._sqs.get_queue_attributes(QueueUrl=target.queue_url, AttributeNames=["QueueArn"])
            arn = self._queue_arns[target.queue_url] = attributes["Attributes"]["QueueArn"]
        return arn

    def _handle(self, prepared: _Prepared) -> JobHandle:
        return JobHandle(
            id=prepared.job_id,
            job=prepared.target.job,
            client=self,
            tracked=prepared.target.track,
            schedule_name=prepared.schedule,
        )

    def _undo(self, prepared: _Prepared) -> None:
        """Take back what `_commit` wrote for a job that was not sent; never masks the error being raised."""
        try:
            if prepared.target.track:
                self._store.forget(prepared.job_id)
        except Exception:
            logger.exception("could not take back an unsent job's row", extra={"job_id": prepared.job_id})
        self._release(prepared)

    def _release(self, prepared: _Prepared) -> None:
        if not prepared.claimed_key or prepared.envelope.key is None:
            return
        try:
            self._store.release_key(prepared.target.job, prepared.envelope.key, job_id=prepared.job_id)
        except Exception:
            logger.exception("could not release the key of a job that was not sent", extra={"job_id": prepared.job_id})
        prepared.claimed_key = False

    def _releases_on_cancel(self, job: str) -> bool:
        """A cancelled job frees an until_started / until_done key; a window key runs its course."""
        fn = self._jobs.get(job)
        if fn is not None:
            return fn.options.unique in (KeyScope.UNTIL_STARTED, KeyScope.UNTIL_DONE)
        entry = self._catalog.get(job) if self._catalog is not None else None
        return entry is None or entry.unique != KeyScope.WINDOW  # unknown now: free it rather than block it


def _group_id(value: Any) -> str:
    """A `group_by` value as a MessageGroupId, as `JobFunction.group_of` makes it (so producers by name and by code
    agree): text as is, anything else as canonical JSON, hashed when SQS could not carry it."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if not text or len(text) > MAX_GROUP_ID_LEN or not text.isascii() or not text.isprintable():
        return "h-" + hashlib.sha256(text.encode()).hexdigest()
    return text


def _from_entry(entry: CatalogEntry) -> _Target:
    return _Target(
        job=entry.job,
        queue_url=entry.queue_url,
        queue_arn=entry.queue_arn,
        track=entry.track,
        unique=entry.unique,
        window_s=entry.unique_window_s,
        key_template=entry.key,
        group_by=entry.group_by,
        result_ttl_s=entry.result_ttl_s,
        fn=None,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


__all__ = [
    "EnqueueResult",
    "EnqueueTimeError",
    "JobCall",
    "JobClient",
    "JobNotAppliedError",
    "SendFailedError",
]
