"""The eager mode: enqueued jobs run inline, with the runner's envelope, retries, states and unique keys, and no AWS.

    from sqsloops.jobs.testing import eager

    def test_welcome_email() -> None:
        with eager() as jobs:
            handle = send_welcome_email.enqueue(42)
        assert handle.status().state == "succeeded"
        assert handle.result() == {"sent": True}

Every enqueue builds the same Envelope a producer sends and hands its JSON to the same JobExecutor the loop uses
(jobs/execution.py): the same decision after a failure, the same states in the same order, against
`MemoryJobStore`, which holds the Jobs table's rules (jobs/states.py transitions, attempts that only go up, key
claims) in memory. Between attempts time passes on the eager mode's clock (a ManualClock by default): a job that
fails twice with a ("10s", "1m") backoff succeeds 70 s later on that clock, at once on the wall clock. Delayed jobs
(`delay=`, `run_at=`) run at once too, their clock moved to their due time. Timeouts are real (SIGALRM): a stuck
job is stopped after its timeout, as in the loop.

A dead job does not raise (its handle says `dead`, with its error) unless `propagate=True`, which re-raises the
job's last exception from `enqueue`, as Celery's `task_eager_propagates` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqsloops.clock import SYSTEM_CLOCK, Clock, ManualClock
from sqsloops.jobs.context import Enqueuer, set_enqueuer
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.durations import DurationLike
from sqsloops.jobs.envelope import Envelope, resolve_run_at
from sqsloops.jobs.errors import JobError, UnknownJobError
from sqsloops.jobs.execution import HELD, RETRY, JobExecutor, Verdict, with_next_attempt
from sqsloops.jobs.handle import UntrackedJobError
from sqsloops.jobs.runner import MAX_DELAY_SECONDS, JobsSource, load_jobs
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
from sqsloops.jobs.store import (
    DEFAULT_DEAD_TTL_S,
    DEFAULT_TTL_S,
    MAX_ERROR_BYTES,
    MAX_RESULT_BYTES,
    MAX_TRACEBACK_BYTES,
    JobNotFoundError,
    JobRecord,
    KeyClaim,
    KeyScope,
    NotCancellableError,
    Refused,
    cap_head,
    cap_tail,
)

MAX_DELIVERIES = 10_000  # one enqueue delivers at most this often: a job held for ever is a bug to report


class EagerJobFailedError(JobError):
    """The job has no result: it is dead or cancelled (`record` says why)."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__(f"job {record.id} ({record.job}) is {record.state.value}: {record.last_error or 'no result'}")
        self.record = record


class MemoryJobStore:
    """The Jobs table's rules in memory: what the executor, the eager mode and its handles call of JobStore."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.RLock()
        self._rows: dict[str, JobRecord] = {}
        self._keys: dict[tuple[str, str], tuple[str, int]] = {}  # (job, key) -> (owner id, expires_at)

    def records(self) -> list[JobRecord]:
        with self._lock:
            return list(self._rows.values())

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
        initial = JobState(state)
        if initial not in INITIAL:
            raise ValueError(f"a job starts queued or scheduled, not {initial.value}")
        with self._lock:
            now = self._clock.now()
            existing = self._rows.get(job_id)
            if existing is not None and existing.expires_at >= now:
                return False
            self._rows[job_id] = JobRecord(
                id=job_id,
                job=job,
                state=initial,
                enqueued_at=enqueued_at,
                run_at=run_at,
                updated_at=now,
                key=key,
                schedule_name=schedule_name,
                expires_at=self._expires(now, ttl_s, run_at),
            )
            return True

    def get(self, job_id: str, *, consistent: bool = True) -> JobRecord | None:
        with self._lock:
            return self._rows.get(job_id)

    def mark_running(
        self, job_id: str, *, job: str, attempt: int, enqueued_at: float | None = None, ttl_s: float | None = None
    ) -> JobRecord | Refused:
        with self._lock:
            now = self._clock.now()
            row = self._rows.get(job_id)
            if row is None:
                row = JobRecord(id=job_id, job=job, state=RUNNING, enqueued_at=enqueued_at)
            elif row.job != job:
                return self._refused(job_id, RUNNING, row, f"id {job_id} belongs to job {row.job}")
            elif row.state not in sources(RUNNING):
                return self._refused(job_id, RUNNING, row, f"job is {row.state.value}")
            elif row.attempts > attempt:
                return self._refused(job_id, RUNNING, row, f"attempt {attempt} is older than {row.attempts}")
            return self._write(row, RUNNING, now, ttl_s, attempts=attempt, started_at=now)

    def mark_succeeded(
        self, job_id: str, *, result_json: str | None, ttl_s: float | None = None
    ) -> JobRecord | Refused:
        with self._lock:
            now = self._clock.now()
            row = self._rows.get(job_id)
            if row is None or row.state not in sources(SUCCEEDED):
                return self._refused(job_id, SUCCEEDED, row, _state_of(row))
            size = None if result_json is None else len(result_json.encode())
            fits = size is not None and size <= MAX_RESULT_BYTES
            return self._write(
                row,
                SUCCEEDED,
                now,
                ttl_s,
                finished_at=now,
                run_at=None,
                traceback=None,
                result=result_json if fits else None,
                result_bytes=size,
                result_truncated=size is not None and not fits,
            )

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
        with self._lock:
            now = self._clock.now()
            row = self._rows.get(job_id)
            if row is None or row.state not in sources(RETRYING) or row.attempts > attempts:
                return self._refused(job_id, RETRYING, row, _state_of(row))
            return self._write(row, RETRYING, now, ttl_s, run_at=next_run_at, **_failure(attempts, error, traceback))

    def mark_dead(
        self, job_id: str, *, attempts: int, error: str, traceback: str | None = None, ttl_s: float | None = None
    ) -> JobRecord | Refused:
        with self._lock:
            now = self._clock.now()
            row = self._rows.get(job_id)
            if row is None or row.state not in sources(DEAD) or row.attempts > attempts:
                return self._refused(job_id, DEAD, row, _state_of(row))
            ttl = max(self._ttl_s, DEFAULT_DEAD_TTL_S) if ttl_s is None else ttl_s
            return self._write(
                row, DEAD, now, ttl, finished_at=now, run_at=None, **_failure(attempts, error, traceback)
            )

    def cancel(self, job_id: str, *, ttl_s: float | None = None) -> JobRecord:
        with self._lock:
            row = self._rows.get(job_id)
            if row is None:
                raise JobNotFoundError(job_id)
            if row.state not in CANCELLABLE:
                raise NotCancellableError(job_id, row.state)
            now = self._clock.now()
            return self._write(row, CANCELLED, now, ttl_s, finished_at=now)

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
        kind = KeyScope(scope)
        with self._lock:
            now = self._clock.now()
            held = self._keys.get((job, key))
            if held is not None and held[1] >= now:
                return KeyClaim(claimed=held[0] == job_id, job_id=held[0], expires_at=held[1])
            if kind is KeyScope.WINDOW:
                if window_s is None:
                    raise ValueError("a window claim needs window_s")
                expires_at = math.ceil(now + window_s)
            else:
                expires_at = self._expires(now, ttl_s, None)
            self._keys[(job, key)] = (job_id, expires_at)
            return KeyClaim(claimed=True, job_id=job_id, expires_at=expires_at)

    def release_key(self, job: str, key: str, *, job_id: str) -> bool:
        with self._lock:
            held = self._keys.get((job, key))
            if held is None or held[0] != job_id:
                return False
            del self._keys[(job, key)]
            return True

    def _expires(self, now: float, ttl_s: float | None, due_at: float | None) -> int:
        return math.ceil(max(now, due_at or now) + (self._ttl_s if ttl_s is None else ttl_s))

    def _write(self, row: JobRecord, state: JobState, now: float, ttl_s: float | None, **changes: Any) -> JobRecord:
        due = changes.get("run_at", row.run_at)
        written = dataclasses.replace(
            row, state=state, updated_at=now, expires_at=self._expires(now, ttl_s, due), **changes
        )
        self._rows[row.id] = written
        return written

    @staticmethod
    def _refused(job_id: str, target: JobState, row: JobRecord | None, detail: str) -> Refused:
        return Refused(job_id=job_id, target=target, current=row, detail=detail)


def _state_of(row: JobRecord | None) -> str:
    return "no such job" if row is None else f"job is {row.state.value}"


def _failure(attempts: int, error: str, traceback: str | None) -> dict[str, Any]:
    return {
        "attempts": attempts,
        "last_error": cap_head(error, MAX_ERROR_BYTES),
        "traceback": None if traceback is None else cap_tail(traceback, MAX_TRACEBACK_BYTES),
    }


@dataclasses.dataclass(frozen=True)
class EagerHandle:
    """What an eager enqueue returns: the job's id, whether it was a duplicate, and its status and result."""

    jobs: EagerJobs
    id: str
    job: str
    duplicate: bool = False
    tracked: bool = True

    def record(self) -> JobRecord | None:
        return self.jobs.store.get(self.id)

    def status(self) -> JobRecord:
        """The job's row, as the real handle's status() returns it (state, attempts, times, last error, result).

        UntrackedJobError for a track=False job and JobNotFoundError without a row, as the real handle raises."""
        if not self.tracked:
            raise UntrackedJobError(self.job, self.id)
        record = self.record()
        if record is None:
            raise JobNotFoundError(self.id)
        return record

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value (as JSON carried it); EagerJobFailedError if it is dead or cancelled.

        `timeout` is accepted for the real handle's signature: an eager job has finished when enqueue returns."""
        record = self.record()
        if record is None:
            raise JobError(f"job {self.id} is not tracked (track=False): it has no stored result")
        if record.state is SUCCEEDED:
            return None if record.result is None else json.loads(record.result)
        if record.state in FINAL:
            raise EagerJobFailedError(record)
        raise JobError(f"job {self.id} is {record.state.value}: it has no result yet")

    def cancel(self) -> JobRecord:
        return self.jobs.store.cancel(self.id)


class EagerJobs:
    """Runs jobs inline (module doc). As a context manager it is the enqueuer `.enqueue()` uses, then restores the
    previous one. `deliveries` lists every verdict in order: what a test asserts attempts and delays on."""

    def __init__(
        self,
        *sources: JobsSource,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        propagate: bool = False,
    ) -> None:
        self.clock = clock if clock is not None else ManualClock(SYSTEM_CLOCK.now())
        self.store = MemoryJobStore(clock=self.clock)
        jobs: dict[str, JobFunction[..., Any]] = {}
        for source in sources:
            jobs.update(load_jobs(source))
        self._executor = JobExecutor(jobs, store=self.store, source="the eager mode", clock=self.clock, rng=rng)
        self.propagate = propagate
        self.deliveries: list[Verdict] = []
        self._previous: list[Enqueuer | None] = []

    def __enter__(self) -> EagerJobs:
        self._previous.append(set_enqueuer(self))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        set_enqueuer(self._previous.pop())

    def enqueue(
        self,
        job: JobFunction[..., Any] | str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        delay: DurationLike | None = None,
        run_at: datetime | None = None,
        key: str | None = None,
        id: str | None = None,
    ) -> EagerHandle:
        """Enqueue and run at once; a job by name must have been given to EagerJobs (or enqueued through its
        function before). The same refusals as a real enqueue: bad args, a bad time, an unknown name."""
        fn = self._job(job)
        kwargs = dict(kwargs or {})
        if key is None:
            key = fn.render_key(args, kwargs)
        now = datetime.fromtimestamp(self.clock.now(), tz=UTC)
        due = resolve_run_at(delay=delay, run_at=run_at, now=now)
        envelope = Envelope.create(fn.name, args, kwargs, now=now, id=id, key=key, run_at=due)
        options = fn.options
        if options.track:
            if options.unique is not None and key is not None:
                window = options.unique == "window"
                claim = self.store.claim_key(
                    fn.name,
                    key,
                    job_id=envelope.id,
                    scope=KeyScope.WINDOW if window else options.unique,
                    window_s=options.unique_window_s if window else None,
                )
                if claim.duplicate:
                    return EagerHandle(self, claim.job_id, fn.name, duplicate=True)
            created = self.store.create(
                envelope.id,
                fn.name,
                state=SCHEDULED if due is not None else QUEUED,
                enqueued_at=now.timestamp(),
                run_at=due.timestamp() if due is not None else None,
                key=key,
                ttl_s=options.result_ttl_s,
            )
            if not created:
                return EagerHandle(self, envelope.id, fn.name, duplicate=True)
        self._deliver(envelope)
        return EagerHandle(self, envelope.id, fn.name, tracked=options.track)

    def attempts(self, job_id: str) -> list[Verdict]:
        """The verdicts of the deliveries of one job that ran it (held ones left out)."""
        return [v for v in self.deliveries if v.envelope is not None and v.envelope.id == job_id and v.action != HELD]

    def _job(self, job: JobFunction[..., Any] | str) -> JobFunction[..., Any]:
        if isinstance(job, JobFunction):
            known = self._executor.jobs.setdefault(job.name, job)
            if known is not job:
                raise JobError(f"two different jobs are named {job.name!r}")
            return job
        found = self._executor.jobs.get(job)
        if found is None:
            raise UnknownJobError(job)
        return found

    def _deliver(self, envelope: Envelope) -> Verdict:
        """Deliver the message until it is done with, as the queue would: retries and holds wait on the clock."""
        body = envelope.to_json()
        receive_count = 0
        for _ in range(MAX_DELIVERIES):
            receive_count += 1
            verdict = self._executor.run(body, receive_count=receive_count)
            self.deliveries.append(verdict)
            if verdict.action == RETRY:
                delay_s = verdict.delay_s or 0.0
                if not verdict.tracked:  # the loop sends a copy carrying the attempt: so does the eager mode
                    now = datetime.fromtimestamp(self.clock.now(), tz=UTC)
                    copy = with_next_attempt(envelope, verdict.attempt, delay_s, now=now, max_delay_s=MAX_DELAY_SECONDS)
                    body, receive_count = copy.to_json(), 0
                self.clock.sleep(delay_s)
                continue
            if verdict.action == HELD:
                self.clock.sleep(verdict.delay_s if verdict.delay_s else 1.0)
                continue
            if verdict.action == "dead" and self.propagate and verdict.exception is not None:
                raise verdict.exception
            return verdict
        raise JobError(f"job {envelope.id} was delivered {MAX_DELIVERIES} times without finishing")


def eager(*sources: JobsSource, **options: Any) -> EagerJobs:
    """An EagerJobs to use as a context manager (`with eager(app.jobs) as jobs: ...`)."""
    return EagerJobs(*sources, **options)
