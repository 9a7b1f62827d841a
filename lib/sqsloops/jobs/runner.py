"""The `jobs:` handler kind: a registration `jobs:app.jobs` runs the @job functions of `app.jobs` in the loop.

The composition root plugs `JobsKind` into `Dispatchers` beside the core kinds (dispatch.py knows nothing of jobs).
Each message goes through jobs/execution.py, and its `Verdict` becomes what `sqsloops.settle` does with it:

    succeeded, skipped      delete
    held                    hide for the verdict's delay (None: the queue's backoff); nothing spent
    retry, tracked or FIFO  hide for the retry delay (Failure.retry_in_s): the Jobs table (or the receive count,
                            on FIFO) carries the attempt
    retry, untracked        send a copy with attempt + 1 (DelaySeconds up to 15 min, run_at beyond), then delete
                            this one; if the send fails, hide this one for the delay instead
    dead                    to the queue's DLQ (Failure.dead: settle sends, then deletes), with the reason; a bare
                            entry-topic message that was wrapped goes there as its envelope, sent here, then
                            deleted (below); if that send fails, it is hidden for the queue's backoff instead

No new settle hook is needed: a re-sent retry is a send made here, followed by an ordinary success.

A dead bare message (jobs/entry.py) is dead-lettered as the envelope it was wrapped into, not as itself: its job id
may be the delivery's SQS message id, which a copy to the DLQ would not keep, so a redrive would run it under a new
id (a second row, the dead one never settled). The envelope carries the id, the key and the args, and a redrive
moves it like any other. A bare message that could not be wrapped (malformed) goes as itself, with its reason.

On a FIFO queue a group's later messages in the batch do not run once an earlier one did not succeed (serial per
key): they are handed back at once, behind it.
"""

from __future__ import annotations

import base64
import importlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqsloops.budget import WorkBudget, current_budget
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Failure, Outcome, Record
from sqsloops.errors import HandlerError
from sqsloops.handlers import check_jobs_target
from sqsloops.jobs.definition import JobFunction, jobs_in
from sqsloops.jobs.entry import ENTRY_ATTRIBUTES, bare_message
from sqsloops.jobs.execution import (
    DEAD_ACTION,
    HELD,
    RETRY,
    JobExecutor,
    Prefetched,
    Tracker,
    Verdict,
    with_next_attempt,
)
from sqsloops.jobs.metrics import JobMetrics
from sqsloops.jobs.store import JobStore
from sqsloops.log import logger
from sqsloops.queues import queue_url_of, redrive_policy
from sqsloops.transient import call_aws

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

    from sqsloops.registry import QueueConfig

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds ceiling: longer retries of untracked jobs wait in run_at
JobsSource = str | ModuleType | JobFunction[..., Any] | Sequence[JobFunction[..., Any]]


def load_jobs(source: JobsSource) -> dict[str, JobFunction[..., Any]]:
    """The jobs of a module (by dotted name or imported), of one job function, or of several, by name.

    HandlerError when the module cannot be imported or declares no job; JobDefinitionError (a ConfigError) for a
    bad declaration.
    """
    if isinstance(source, JobFunction):
        return {source.name: source}
    if isinstance(source, str):
        check_jobs_target(source)
        try:
            source = importlib.import_module(source)
        except Exception as exc:  # an import can fail in any way the user's module does
            raise HandlerError(f"cannot import {source!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(source, ModuleType):
        jobs = jobs_in(source)
        if not jobs:
            raise HandlerError(f"{source.__name__!r} declares no @job function")
        return jobs
    found: dict[str, JobFunction[..., Any]] = {}
    for item in source:
        if not isinstance(item, JobFunction):
            raise HandlerError(f"not a job (decorate it with @job): {item!r}")
        found[item.name] = item
    return found


def describe_source(source: JobsSource) -> str:
    if isinstance(source, str):
        return f"jobs:{source}"
    if isinstance(source, ModuleType):
        return f"jobs:{source.__name__}"
    if isinstance(source, JobFunction):
        return f"job {source.name}"
    return "these jobs"


def executor_for(
    source: JobsSource,
    *,
    store: Callable[[], Tracker | None],
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
) -> JobExecutor:
    """An executor over the source's jobs; the store is asked for only when one of them is tracked.

    HandlerError when a job is tracked and there is no Jobs table: its messages then fail with that reason.
    """
    jobs = load_jobs(source)
    tracked = sorted(name for name, fn in jobs.items() if fn.options.track)
    tracker = store() if tracked else None
    if tracked and tracker is None:
        raise HandlerError(
            f"job(s) {', '.join(tracked)} are tracked, but this stack has no Jobs table: set SQSLOOPS_JOBS_TABLE"
            " (the stack's JobsTableName output), or declare them with track=False"
        )
    return JobExecutor(jobs, store=tracker, source=describe_source(source), clock=clock, rng=rng)


class JobsKind:
    """`jobs:package.module`: runs the @job functions that module declares, in the loop's process."""

    def __init__(
        self,
        *,
        sqs: SQSClient,
        store: Callable[[], Tracker | None],
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        metrics: bool = True,
    ) -> None:
        self._sqs = sqs
        self._store = store
        self._clock = clock
        self._rng = rng
        self._metrics = metrics

    def validate(self, target: str) -> None:
        check_jobs_target(target)

    def build(self, target: str, config: QueueConfig) -> JobsDispatcher:
        executor = executor_for(target, store=self._store, clock=self._clock, rng=self._rng)
        return JobsDispatcher(
            executor, sqs=self._sqs, queue_url=config.queue_url, clock=self._clock, metrics=self._metrics
        )


class JobsDispatcher:
    """Runs each message of a batch as a job and says how each is to be settled (module doc)."""

    def __init__(
        self,
        executor: JobExecutor,
        *,
        sqs: SQSClient,
        queue_url: str,
        clock: Clock = SYSTEM_CLOCK,
        metrics: bool = True,
        time_left_s: Callable[[], float] | None = None,
    ) -> None:
        self.executor = executor
        self._sqs = sqs
        self._queue_url = queue_url
        self._fifo = queue_url.endswith(".fifo")
        self._clock = clock
        self._metrics = metrics
        self._time_left_s = time_left_s
        self._dlq_url: str | None = None  # looked up when a bare message first dies

    def dispatch(self, records: list[Record]) -> Outcome:
        metrics = JobMetrics() if self._metrics else None
        outcome = Outcome()
        blocked_groups: set[str] = set()
        prefetched = self._prefetch(records)
        for record in records:
            group = _group_of(record) if self._fifo else None
            if group is not None and group in blocked_groups:
                reason = "an earlier message of its group did not succeed: kept behind it"
                outcome += Outcome(failed=(Failure(record["messageId"], reason, retry_in_s=0.0),))
                continue
            settled = self._one(record, metrics, prefetched)
            if group is not None and settled.failed:
                blocked_groups.add(group)
            outcome += settled
        if prefetched is not None:
            prefetched.flush()  # the rows of the jobs that ran, before their messages are deleted
        if metrics is not None:
            try:
                metrics.flush()
            except Exception as exc:  # metrics are never a reason to fail a batch
                logger.warning("cannot write job metrics", extra={"error": f"{type(exc).__name__}: {exc}"})
        return outcome

    def _prefetch(self, records: list[Record]) -> Prefetched | None:
        """The rows of the batch's tracked jobs in one BatchGetItem (JobStore.get_many), so that each job starts
        without a write of its own (execution.RUNNING_MARK_AFTER_S); None (each delivery reads and writes its own
        start, as without a batch) when there is no Jobs table or it cannot be read now."""
        store = self.executor.store
        if not isinstance(store, JobStore):
            return None
        ids = [job_id for record in records if (job_id := self.executor.tracked_id(record)) is not None]
        if not ids:
            return None
        try:
            return Prefetched(store=store, rows=store.get_many(ids))
        except Exception as exc:  # each delivery reads its own row, and is handed back if it cannot
            logger.warning("cannot read the batch's job rows at once", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None

    def _one(self, record: Record, metrics: JobMetrics | None, prefetched: Prefetched | None = None) -> Outcome:
        message_id = record["messageId"]
        try:
            budget = current_budget()
            verdict = self.executor.run(
                record.get("body", ""),
                receive_count=_receive_count(record),
                fifo=self._fifo,
                time_left_s=self._time_left_s() if self._time_left_s is not None else _left_s(budget),
                work_total_s=budget.total_s if budget is not None else None,
                metrics=metrics,
                entry=bare_message(record),
                prefetched=prefetched,
            )
        except Exception as exc:  # a bug in the runner: the message is retried with the queue's backoff
            logger.exception("job runner raised", extra={"message_id": message_id})
            return Outcome(failed=(Failure(message_id, f"job runner raised {type(exc).__name__}: {exc}"),))
        return self._settlement(record, verdict)

    def _settlement(self, record: Record, verdict: Verdict) -> Outcome:
        message_id = record["messageId"]
        envelope = verdict.envelope
        reason = f"job {envelope.job} {envelope.id}: {verdict.reason}" if envelope is not None else verdict.reason
        if verdict.action == DEAD_ACTION:
            if envelope is not None and not self._fifo and bare_message(record) is not None:
                if self._dead_letter_envelope(record, verdict, reason):
                    return Outcome(succeeded=(message_id,))
                return Outcome(failed=(Failure(message_id, f"{reason} (not moved to the DLQ yet: retried)"),))
            return Outcome(failed=(Failure(message_id, reason, dead=True),))
        if verdict.action == HELD:
            return Outcome(
                failed=(Failure(message_id, reason, retry_in_s=verdict.delay_s),), hand_over=verdict.hand_over
            )
        if verdict.action == RETRY:
            delay_s = verdict.delay_s or 0.0
            if verdict.tracked or self._fifo or not self._resend(record, verdict, delay_s):
                return Outcome(failed=(Failure(message_id, reason, retry_in_s=delay_s),))
        return Outcome(succeeded=(message_id,))

    def _dead_letter_envelope(self, record: Record, verdict: Verdict, reason: str) -> bool:
        """Send a dead bare message's envelope to the queue's DLQ (module doc); False if it could not be sent (no DLQ,
        a refused send): the message is then retried, so it is never in neither queue."""
        assert verdict.envelope is not None
        copy = verdict.envelope.with_attempt(verdict.attempt)
        request: dict[str, Any] = {"MessageBody": copy.to_json()}
        attributes = _non_entry_attributes(record)
        if attributes:
            request["MessageAttributes"] = attributes
        try:
            if self._dlq_url is None:
                policy = call_aws(lambda: redrive_policy(self._sqs, self._queue_url))
                if policy is None:
                    raise HandlerError("the queue has no dead-letter queue (no RedrivePolicy)")
                self._dlq_url = call_aws(lambda: queue_url_of(self._sqs, policy.dead_letter_arn))
            request["QueueUrl"] = self._dlq_url
            call_aws(lambda: self._sqs.send_message(**request))
        except Exception as exc:
            logger.warning(
                "cannot send a dead entry-topic job's envelope to the dead-letter queue; it will be retried instead",
                extra={"job_id": copy.id, "job": copy.job, "reason": reason, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        logger.warning(
            "message is dead; its envelope moved to the dead-letter queue",
            extra={
                "message_id": record["messageId"],
                "job_id": copy.id,
                "reason": reason,
                "dead_letter_queue": self._dlq_url,
            },
        )
        return True

    def _resend(self, record: Record, verdict: Verdict, delay_s: float) -> bool:
        """Send an untracked job's retry as a copy carrying its attempt count; False if it could not be sent."""
        assert verdict.envelope is not None
        now = datetime.fromtimestamp(self._clock.now(), tz=UTC)
        copy = with_next_attempt(verdict.envelope, verdict.attempt, delay_s, now=now, max_delay_s=MAX_DELAY_SECONDS)
        request: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MessageBody": copy.to_json(),
            "DelaySeconds": min(MAX_DELAY_SECONDS, math.ceil(delay_s)),
        }
        attributes = _non_entry_attributes(record)
        if attributes:
            request["MessageAttributes"] = attributes
        try:
            call_aws(lambda: self._sqs.send_message(**request))
        except Exception as exc:
            logger.warning(
                "cannot send the retry of an untracked job; hiding this message for the delay instead",
                extra={"job_id": copy.id, "job": copy.job, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        return True


def _non_entry_attributes(record: Record) -> dict[str, MessageAttributeValueTypeDef]:
    """The record's message attributes for a copy sent as an envelope: without the entry topic's (jobs/entry.py),
    which would make it read as a bare message."""
    return {
        name: value
        for name, value in sendable_attributes(record.get("messageAttributes", {})).items()
        if name not in ENTRY_ATTRIBUTES
    }


def _left_s(budget: WorkBudget | None) -> float | None:
    return budget.left_s() if budget is not None else None


def _receive_count(record: Record) -> int:
    try:
        return max(1, int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")))
    except (TypeError, ValueError):
        return 1


def _group_of(record: Record) -> str | None:
    group = record.get("attributes", {}).get("MessageGroupId")
    return str(group) if group else None


def sendable_attributes(attributes: Mapping[str, Any]) -> dict[str, MessageAttributeValueTypeDef]:
    """Message attributes of a Lambda-shaped record (lower camel, binary in base64) as SendMessage takes them."""
    sendable: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in attributes.items():
        entry: MessageAttributeValueTypeDef = {"DataType": value.get("dataType", "String")}
        if value.get("stringValue") is not None:
            entry["StringValue"] = value["stringValue"]
        if value.get("binaryValue") is not None:
            entry["BinaryValue"] = base64.b64decode(value["binaryValue"])
        sendable[name] = entry
    return sendable
