"""One delivery of a job message, start to verdict: the rules the loop runner, a per-job Lambda and the eager mode
share (each only maps the `Verdict` onto its own transport).

    parse the envelope -> find the job -> not due yet? -> a bare unique one (jobs/entry.py): claim its key ->
    tracked: gate on the row, mark running, release an until_started key -> call with the timeout -> store the
    result / decide with the retry policy -> verdict

**An attempt is spent only when the job ran and failed.** What a delivery that did not run the job returns is a
`held` verdict (hand the message back, nothing counted): not due yet, another runner holds the job, the Jobs table
cannot be reached, too little invocation time left for the job's timeout.

Where the attempt count lives (an SQS message body cannot change when its visibility does):
- tracked jobs: the Jobs table's `attempts` (runs started). A first delivery (ApproximateReceiveCount 1) starts
  attempt `envelope.attempt + 1` with no read, its conditional `mark_running` refusing a stale guess; a redelivery
  first reads the row (one consistent GetItem, not a write) to continue from the attempts recorded. The retry is
  the same message, hidden for the delay. Attempts only go up, and only in `mark_running`, which runs just before
  the call: a hand-back (limit, throttle, lost invocation before the start) changes nothing.
- untracked jobs on a standard queue: the envelope. A retry is a new message with `attempt + 1` (sent first, then
  the old one deleted), so each copy carries its own count and none is spent twice; if the delete is lost, the old
  copy runs once more with its old count (at-least-once, never a double spend). A delay over SQS's 15 min
  DelaySeconds rides in `run_at`, and the copy is held until then.
- untracked jobs on a FIFO queue: a re-sent copy would jump behind its group, so the message is hidden instead and
  the attempt is `envelope.attempt + ApproximateReceiveCount`: there a lost invocation does spend one (the only
  case; there is no other hand-back for an untracked job, which touches no table).
ApproximateReceiveCount alone would spend an attempt on every hand-back, which is what the native SQS trigger
gets wrong; it is used only where nothing else can carry the count.

Writes for a tracked job's success: `queued` (at enqueue), `running`, `succeeded`: three, one request each; a unique
job adds its claim and, for until_started / until_done, its release.
"""

from __future__ import annotations

import json
import random
import threading
import traceback as tracebacks
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import describe
from sqsloops.jobs import metrics as m
from sqsloops.jobs.current import JobContext, running_as
from sqsloops.jobs.entry import bare_message, entry_key
from sqsloops.jobs.envelope import RUN_AT_PAST_TOLERANCE_S, Envelope, json_safe
from sqsloops.jobs.errors import JobArgsError, MalformedEnvelopeError
from sqsloops.jobs.retry_policy import MAX_RETRY_DELAY_S, Decision
from sqsloops.jobs.states import CANCELLED, DEAD, RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobRecord, JobStore, KeyClaim, KeyScope, Refused
from sqsloops.jobs.timeout import call_with_timeout
from sqsloops.log import logger

if TYPE_CHECKING:
    from sqsloops.jobs.definition import JobFunction
    from sqsloops.jobs.entry import BareMessage
    from sqsloops.jobs.metrics import JobMetrics

Action = Literal["succeeded", "skipped", "held", "retry", "dead"]
SUCCEEDED_ACTION: Action = "succeeded"
SKIPPED: Action = "skipped"  # nothing to run (cancelled, already finished): the message is done with
HELD: Action = "held"  # not run, nothing spent: hand the message back
RETRY: Action = "retry"
DEAD_ACTION: Action = "dead"

STORE_UNAVAILABLE_HOLD_S = None  # a hand-back for a Jobs table error waits the queue's own backoff
RUNNING_ELSEWHERE_MARGIN_S = 1.0
# A job read before its batch ran (Prefetched) is started without a write of its own: a job that returns within
# this is written once, started and succeeded together (JobStore.mark_ran); one still running after it is marked
# running then, so a status read, the dashboard and a duplicate delivery see it running.
RUNNING_MARK_AFTER_S = 1.0
_LOG_KEYS = ("job_id", "job", "attempt")


@dataclass
class Prefetched:
    """The rows of a batch's tracked jobs, read in one request before any of them ran (JobStore.get_many): each
    delivery decides from its row and writes its start only if it runs long (RUNNING_MARK_AFTER_S); the rows of
    those that returned are written together once the batch has run (`flush`, before the batch is settled)."""

    store: JobStore
    rows: Mapping[str, JobRecord]
    ran: dict[str, JobRecord] = field(default_factory=dict)  # job id -> its succeeded row, not yet written

    def flush(self) -> None:
        """Write the rows of the jobs that ran: one BatchWriteItem (JobStore.put_ran), else each with mark_ran's
        condition. Never raises: a row that cannot be written is logged (the job ran; its message is settled)."""
        ran, self.ran = list(self.ran.values()), {}
        if not ran:
            return
        try:
            self.store.put_ran(ran)
            return
        except Exception as exc:  # throttled for good, or refused: one by one, each with its condition
            logger.warning("cannot write the batch's job rows at once; one by one", extra={"error": describe(exc)})
        for record in ran:
            try:
                written = self.store.mark_ran(
                    record.id,
                    job=record.job,
                    attempt=record.attempts,
                    started_at=record.started_at or record.updated_at,
                    result_json=record.result,
                    before=self.rows.get(record.id),
                    enqueued_at=record.enqueued_at,
                )
            except Exception as exc:
                logger.error(
                    "cannot record the job as succeeded; its row is stale",
                    extra={"job_id": record.id, "job": record.job, "error": describe(exc)},
                )
                continue
            if isinstance(written, Refused):
                logger.warning(
                    "the Jobs table refused succeeded", extra={"job_id": record.id, "detail": written.detail}
                )


class Tracker(Protocol):
    """What the runner asks of the Jobs table (jobs/store.py JobStore; the eager mode's MemoryJobStore)."""

    def get(self, job_id: str, *, consistent: bool = True) -> JobRecord | None: ...

    def mark_running(
        self, job_id: str, *, job: str, attempt: int, enqueued_at: float | None = None, ttl_s: float | None = None
    ) -> JobRecord | Refused: ...

    def mark_succeeded(
        self, job_id: str, *, result_json: str | None, ttl_s: float | None = None
    ) -> JobRecord | Refused: ...

    def mark_retrying(
        self,
        job_id: str,
        *,
        attempts: int,
        error: str,
        next_run_at: float,
        traceback: str | None = None,
        ttl_s: float | None = None,
    ) -> JobRecord | Refused: ...

    def mark_dead(
        self, job_id: str, *, attempts: int, error: str, traceback: str | None = None, ttl_s: float | None = None
    ) -> JobRecord | Refused: ...

    def claim_key(
        self,
        job: str,
        key: str,
        *,
        job_id: str,
        scope: KeyScope | str,
        window_s: float | None = None,
        ttl_s: float | None = None,
    ) -> KeyClaim: ...

    def release_key(self, job: str, key: str, *, job_id: str) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What became of one delivery, and what its transport is to do with the message.

    succeeded / skipped: done with it (delete). held: hand it back after `delay_s` (None: the queue's backoff),
    nothing spent. retry: it ran and failed; run again after `delay_s`, `attempt` attempts now spent. dead: to the
    DLQ with `reason`.
    """

    action: Action
    reason: str
    envelope: Envelope | None = None
    tracked: bool = True
    attempt: int = 0
    delay_s: float | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    exception: BaseException | None = None
    hand_over: bool = False  # held because this invocation has too little time left: the loop should hand over

    @property
    def job(self) -> str | None:
        return self.envelope.job if self.envelope is not None else None


class JobExecutor:
    """Runs job messages for the jobs it is given, by name, with one store (None when no job of them is tracked)."""

    def __init__(
        self,
        jobs: Mapping[str, JobFunction[..., Any]],
        *,
        store: Tracker | None,
        source: str,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.jobs = dict(jobs)
        self._store = store
        self._source = source  # where the jobs come from, for "unknown job" reasons: "jobs:app.jobs"
        self._clock = clock
        self._rng = rng

    def run(
        self,
        body: str,
        *,
        receive_count: int = 1,
        fifo: bool = False,
        time_left_s: float | None = None,
        work_total_s: float | None = None,
        metrics: JobMetrics | None = None,
        entry: BareMessage | None = None,
        prefetched: Prefetched | None = None,
    ) -> Verdict:
        """One delivery of `body` (or of `entry`, a bare entry-topic message: jobs/entry.py wraps it). Never raises
        for what the message or the job does; only for a bug here."""
        try:
            envelope = entry.wrap(now=self._clock.now()) if entry is not None else Envelope.parse(body)
        except MalformedEnvelopeError as exc:
            logger.error("malformed job message; to the dead-letter queue", extra={"reason": exc.reason})
            _count(metrics, "(malformed)", m.DEAD)
            return Verdict(action=DEAD_ACTION, reason=str(exc))
        fn = self.jobs.get(envelope.job)
        if fn is not None and entry is not None:
            try:
                envelope = replace(envelope, key=entry_key(fn, envelope))
            except JobArgsError as exc:
                logger.error("entry-topic message has no usable key; to the dead-letter queue", extra={"job": fn.name})
                _count(metrics, envelope.job, m.DEAD)
                return Verdict(action=DEAD_ACTION, reason=str(exc), envelope=envelope)
        if fn is None:
            known = ", ".join(sorted(self.jobs)) or "none"
            reason = f"unknown job {envelope.job!r}: {self._source} declares {known} (renamed or removed?)"
            logger.error("unknown job; to the dead-letter queue", extra={"job_id": envelope.id, "job": envelope.job})
            _count(metrics, envelope.job, m.DEAD)
            return Verdict(action=DEAD_ACTION, reason=reason, envelope=envelope)
        logger.append_keys(job_id=envelope.id, job=envelope.job)
        try:
            return _Delivery(
                self,
                fn,
                envelope,
                claim_key=entry is not None and fn.options.unique is not None,
                receive_count=receive_count,
                fifo=fifo,
                time_left_s=time_left_s,
                work_total_s=work_total_s,
                metrics=metrics,
                prefetched=prefetched if fn.options.track else None,
            ).run()
        finally:
            logger.remove_keys(list(_LOG_KEYS))

    def tracked_id(self, record: Mapping[str, Any]) -> str | None:
        """The job id of a Lambda-shaped SQS record whose job is known here and tracked, else None (what a batch
        reads the rows of before it runs: JobsDispatcher)."""
        entry = bare_message(record)
        try:
            envelope = (
                entry.wrap(now=self._clock.now()) if entry is not None else Envelope.parse(record.get("body", ""))
            )
        except MalformedEnvelopeError:
            return None
        fn = self.jobs.get(envelope.job)
        return envelope.id if fn is not None and fn.options.track else None

    # what _Delivery reads
    @property
    def store(self) -> Tracker | None:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def rng(self) -> random.Random | None:
        return self._rng


class _Delivery:
    """One message of one job through the rules in the module doc."""

    def __init__(
        self,
        executor: JobExecutor,
        fn: JobFunction[..., Any],
        envelope: Envelope,
        *,
        claim_key: bool = False,
        receive_count: int,
        fifo: bool,
        time_left_s: float | None,
        work_total_s: float | None,
        metrics: JobMetrics | None,
        prefetched: Prefetched | None = None,
    ) -> None:
        self.fn = fn
        self.prefetched = prefetched
        self.lazy = False  # started without a write (from the prefetched row): see RUNNING_MARK_AFTER_S
        self.marked = False  # its start was written after all (it ran long, or it failed)
        self.started_at = 0.0
        self.claim_key = claim_key  # a unique job from the entry topic: no enqueue claimed its key
        self.options = fn.options
        self.envelope = envelope
        self.receive_count = max(receive_count, 1)
        self.fifo = fifo
        self.time_left_s = time_left_s
        self.work_total_s = work_total_s
        self.metrics = metrics
        self.clock = executor.clock
        self.rng = executor.rng
        self.store = executor.store if fn.options.track else None
        self.name = fn.name

    def verdict(self, action: Action, reason: str, **fields: Any) -> Verdict:
        return Verdict(action=action, reason=reason, envelope=self.envelope, tracked=self.options.track, **fields)

    def run(self) -> Verdict:
        now = self.clock.now()
        due = self.envelope.run_at.timestamp() if self.envelope.run_at is not None else None
        if due is not None and due > now + RUN_AT_PAST_TOLERANCE_S and not self.envelope.scheduled:
            return self.verdict(HELD, "not due yet", delay_s=min(due - now, MAX_RETRY_DELAY_S))
        if self.time_left_s is not None and self.time_left_s < self.options.timeout_s:
            if self.work_total_s is None or self.options.timeout_s <= self.work_total_s:
                return self.verdict(
                    HELD,
                    f"{self.time_left_s:.0f} s left in this invocation, under the job's {self.options.timeout_s:g} s"
                    " timeout: not started, handed to the next invocation",
                    delay_s=0.0,
                    hand_over=True,
                )
            # Not even a fresh invocation has that long (only a time-compressed local stack: on AWS `@job` refuses a
            # timeout the process function cannot fit): holding would hold forever, so it runs.
            logger.warning(
                "the job's timeout is longer than this function's invocations; running it anyway",
                extra={"timeout_s": self.options.timeout_s, "invocation_work_s": round(self.work_total_s, 1)},
            )
        if self.store is None:
            attempt = self.envelope.attempt + (self.receive_count if self.fifo else 1)
        else:
            if self.claim_key:
                refused = self.claim_entry_key()
                if refused is not None:
                    return refused
            started = self.start_prefetched(self.prefetched) if self.prefetched is not None else self.start_tracked()
            if isinstance(started, Verdict):
                return started
            attempt = started
        logger.append_keys(attempt=attempt)
        if attempt == 1 and self.metrics is not None:
            since = max(self.envelope.enqueued_at.timestamp(), due or 0.0)
            self.metrics.start_latency(self.name, max(0.0, now - since))  # a schedule may deliver "early" locally
        if self.store is not None and self.options.unique == "until_started":
            self.release_key()
        return self.attempt(attempt)

    # -- starting a tracked job ---------------------------------------------------------------------------------

    def claim_entry_key(self) -> Verdict | None:
        """Claim a bare unique job's key as `enqueue` would have (jobs/entry.py): None to run on, else the verdict
        (a duplicate: skipped; the Jobs table cannot be reached: held). A job id that has a row was accepted before
        (a retry, a redelivery, an SNS duplicate of its `id`): it never claims again, its row decides."""
        assert self.store is not None
        key = self.envelope.key
        assert key is not None
        assert self.options.unique is not None
        scope = KeyScope(self.options.unique)
        try:
            if self.store.get(self.envelope.id) is not None:
                return None
            claim = self.store.claim_key(
                self.name,
                key,
                job_id=self.envelope.id,
                scope=scope,
                window_s=self.options.unique_window_s if scope is KeyScope.WINDOW else None,
            )
        except Exception as exc:  # nothing ran, nothing is spent: the claim is tried again on the next delivery
            logger.warning(
                "cannot claim the unique key: Jobs table error; handing it back", extra={"error": describe(exc)}
            )
            return self.verdict(HELD, f"Jobs table error before the start: {describe(exc)}", delay_s=None)
        if claim.duplicate:
            logger.info(
                "duplicate of a unique job (its key is held); skipping it", extra={"key": key, "held_by": claim.job_id}
            )
            _count(self.metrics, self.name, m.DUPLICATE)
            return self.verdict(SKIPPED, f"duplicate: key {key!r} is held by job {claim.job_id}")
        return None

    def start_tracked(self) -> int | Verdict:
        """The attempt number now started (row marked running), or the verdict of a delivery that must not run."""
        assert self.store is not None
        store = self.store
        row: JobRecord | None = None
        try:
            if self.receive_count > 1:  # a redelivery: continue from the attempts recorded
                row = store.get(self.envelope.id)
                gate = self.gate(row) if row is not None else None
                if gate is not None:
                    return gate
            attempt = max(self.envelope.attempt, row.attempts if row is not None else 0) + 1
            for _ in range(3):
                marked = store.mark_running(
                    self.envelope.id,
                    job=self.name,
                    attempt=attempt,
                    enqueued_at=self.envelope.enqueued_at.timestamp(),
                    ttl_s=self.options.result_ttl_s,
                )
                if isinstance(marked, JobRecord):
                    return attempt
                current = marked.current
                if current is not None and current.job != self.name:
                    return self.dead_now(f"job id {self.envelope.id} belongs to job {current.job}, not {self.name}")
                gate = self.gate(current) if current is not None else None
                if gate is not None:
                    return gate
                if current is None or current.attempts < attempt:
                    break  # refused for a reason the gate does not know: hand back rather than guess
                attempt = current.attempts + 1  # our guess was stale: the row has run further
        except Exception as exc:  # the Jobs table is throttled or down: nothing ran, nothing is spent
            logger.warning("cannot start the job: Jobs table error; handing it back", extra={"error": describe(exc)})
            return self.verdict(HELD, f"Jobs table error before the start: {describe(exc)}", delay_s=None)
        return self.verdict(HELD, "the Jobs table refused the start; handing it back", delay_s=None)

    def start_prefetched(self, prefetched: Prefetched) -> int | Verdict:
        """start_tracked decided from the row read with the batch: no write before the job runs."""
        row = prefetched.rows.get(self.envelope.id)
        if row is not None and row.job != self.name:
            return self.dead_now(f"job id {self.envelope.id} belongs to job {row.job}, not {self.name}")
        gate = self.gate(row) if row is not None else None
        if gate is not None:
            return gate
        self.lazy = True
        return max(self.envelope.attempt, row.attempts if row is not None else 0) + 1

    def gate(self, row: JobRecord) -> Verdict | None:
        """What to do instead of running, given the row; None: run it."""
        if row.state is CANCELLED:
            logger.info("job was cancelled; skipping it")
            if self.options.unique in ("until_started", "until_done"):
                self.release_key()
            return self.verdict(SKIPPED, "cancelled")
        if row.state is SUCCEEDED:
            logger.info("job succeeded already (a duplicate delivery); skipping it")
            return self.verdict(SKIPPED, "succeeded already")
        if row.state is DEAD:  # a duplicate of a dead job, or a dead move that failed: keep it, in the DLQ
            logger.warning("job is dead already; this delivery goes to the dead-letter queue too")
            return self.verdict(DEAD_ACTION, f"job is dead already: {row.last_error or 'no error recorded'}")
        if row.state is RUNNING and row.started_at is not None:
            busy_until = row.started_at + self.options.timeout_s + RUNNING_ELSEWHERE_MARGIN_S
            left_s = busy_until - self.clock.now()
            if left_s > 0:
                logger.info("job is running elsewhere (a duplicate delivery); handing this one back")
                return self.verdict(HELD, f"attempt {row.attempts} is running elsewhere", delay_s=left_s)
        return None

    def release_key(self) -> None:
        assert self.store is not None
        key = self.envelope.key
        if key is None:
            try:
                key = self.fn.render_key(self.envelope.args, self.envelope.kwargs)
            except JobArgsError:
                key = None
        if key is None:
            return
        try:
            self.store.release_key(self.name, key, job_id=self.envelope.id)
        except Exception as exc:  # the claim's TTL frees it later
            logger.warning("cannot release the unique key; its TTL will", extra={"key": key, "error": describe(exc)})

    def dead_now(self, reason: str) -> Verdict:
        logger.error("job cannot run; to the dead-letter queue", extra={"reason": reason})
        _count(self.metrics, self.name, m.DEAD)
        return self.verdict(DEAD_ACTION, reason)

    # -- the attempt --------------------------------------------------------------------------------------------

    def attempt(self, attempt: int) -> Verdict:
        envelope = self.envelope
        try:
            self.fn.signature.bind(*envelope.args, **envelope.kwargs)
        except TypeError as exc:
            problem = JobArgsError(self.name, f"arguments do not fit its signature: {exc}")
            return self.failed(attempt, problem, Decision(dead=True, delay_s=0.0, reason="arguments do not fit"))
        context = JobContext(
            id=envelope.id,
            job=self.name,
            attempt=attempt,
            max_attempts=self.options.retry_policy.max_attempts,
            enqueued_at=envelope.enqueued_at,
            timeout_s=self.options.timeout_s,
            key=envelope.key,
            tracked=self.options.track,
        )
        started_s = self.clock.monotonic()
        self.started_at = self.clock.now()
        try:
            with running_as(context), self.late_start(attempt):
                value = call_with_timeout(lambda: self.fn.fn(*envelope.args, **envelope.kwargs), self.options.timeout_s)
        except (Exception, SystemExit) as exc:  # whatever the job raised (a timeout too) fails this attempt only
            self.duration(started_s)
            return self.failed(attempt, exc, None)
        self.duration(started_s)
        return self.succeeded(attempt, value)

    @contextmanager
    def late_start(self, attempt: int) -> Iterator[None]:
        """For a lazily started job: write `running` if it still runs after RUNNING_MARK_AFTER_S (a timer thread;
        the job is never waited on for it)."""
        if not self.lazy:
            yield
            return
        lock = threading.Lock()
        finished = False

        def mark() -> None:
            with lock:
                if not finished:
                    self.mark_started(attempt)

        timer = threading.Timer(RUNNING_MARK_AFTER_S, mark)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            with lock:
                finished = True
            timer.cancel()

    def mark_started(self, attempt: int) -> None:
        """Write the start of a lazily started job (it runs long, or it failed and its failure follows)."""
        assert self.store is not None
        if self.marked:
            return
        self.marked = True
        self.write(
            "running",
            lambda: cast(Tracker, self.store).mark_running(
                self.envelope.id,
                job=self.name,
                attempt=attempt,
                enqueued_at=self.envelope.enqueued_at.timestamp(),
                ttl_s=self.options.result_ttl_s,
            ),
        )

    def duration(self, started_s: float) -> None:
        if self.metrics is not None:
            self.metrics.duration(self.name, self.clock.monotonic() - started_s)

    def succeeded(self, attempt: int, value: Any) -> Verdict:
        result_json: str | None = None
        if value is not None:
            try:
                result_json = json.dumps(json_safe(value, path="result"), separators=(",", ":"), ensure_ascii=False)
            except ValueError as exc:  # it ran: re-running it for its return value would repeat its effects
                logger.warning(
                    "job result is not JSON; the job succeeded, its result is not kept", extra={"error": str(exc)}
                )
        store = self.store
        prefetched = self.prefetched
        if store is not None and prefetched is not None and self.lazy and not self.marked:
            prefetched.ran[self.envelope.id] = prefetched.store.ran_record(
                self.envelope.id,
                job=self.name,
                attempt=attempt,
                started_at=self.started_at,
                result_json=result_json,
                before=prefetched.rows.get(self.envelope.id),
                enqueued_at=self.envelope.enqueued_at.timestamp(),
                ttl_s=self.options.result_ttl_s,
            )
        elif store is not None:
            self.write(
                "succeeded",
                lambda: store.mark_succeeded(
                    self.envelope.id, result_json=result_json, ttl_s=self.options.result_ttl_s
                ),
            )
        if store is not None and self.options.unique == "until_done":
            self.release_key()
        _count(self.metrics, self.name, m.SUCCEEDED)
        logger.debug("job succeeded")
        return self.verdict(SUCCEEDED_ACTION, "succeeded", attempt=attempt, result=value)

    def failed(self, attempt: int, exc: BaseException, forced: Decision | None) -> Verdict:
        if self.lazy and self.store is not None:
            self.mark_started(attempt)  # a failure moves the job on from running, as the states table has it
        error = describe(exc)
        trace = "".join(tracebacks.format_exception(exc))
        decision = forced or self.options.retry_policy.decide(attempt, exc, rng=self.rng)
        _count(self.metrics, self.name, m.FAILED)
        fields: dict[str, Any] = {"attempt": attempt, "error": error, "traceback": trace, "exception": exc}
        store = self.store
        if decision.dead:
            if store is not None:
                self.write(
                    "dead", lambda: store.mark_dead(self.envelope.id, attempts=attempt, error=error, traceback=trace)
                )
                if self.options.unique == "until_done":
                    self.release_key()
            _count(self.metrics, self.name, m.DEAD)
            logger.error("job is dead; to the dead-letter queue", extra={"error": error, "decision": decision.reason})
            return self.verdict(DEAD_ACTION, f"{decision.reason}: {error}", **fields)
        delay_s = decision.delay_s
        if store is not None:
            next_run_at = self.clock.now() + delay_s
            self.write(
                "retrying",
                lambda: store.mark_retrying(
                    self.envelope.id,
                    attempts=attempt,
                    error=error,
                    next_run_at=next_run_at,
                    traceback=trace,
                    ttl_s=self.options.result_ttl_s,
                ),
            )
        _count(self.metrics, self.name, m.RETRIED)
        logger.warning(
            "job failed; it will be retried",
            extra={"error": error, "decision": decision.reason, "retry_in_s": delay_s},
        )
        return self.verdict(RETRY, decision.reason, delay_s=delay_s, **fields)

    def write(self, what: str, call: Callable[[], JobRecord | Refused]) -> None:
        """A final-state write after the job ran: its failure is logged, never turned into a re-run."""
        try:
            written = call()
        except Exception as exc:
            logger.error(f"cannot record the job as {what}; its row is stale", extra={"error": describe(exc)})
            return
        if isinstance(written, Refused):
            logger.warning(f"the Jobs table refused {what}", extra={"detail": written.detail})


def _count(metrics: JobMetrics | None, job: str, metric: str) -> None:
    if metrics is not None:
        metrics.count(job, metric)


def with_next_attempt(envelope: Envelope, attempt: int, delay_s: float, *, now: datetime, max_delay_s: int) -> Envelope:
    """The copy of an untracked job's envelope that carries its retry: `attempt` spent, due after delay_s (run_at
    set only when the delay is longer than the queue can hold a message back, `max_delay_s`)."""
    copy = envelope.with_attempt(attempt)
    if delay_s > max_delay_s:
        due = datetime.fromtimestamp(now.timestamp() + delay_s, tz=UTC)
        copy = replace(copy, run_at=due)
    return copy
