"""What `enqueue` returns: a job's id, and its status, result and cancellation through the Jobs table.

A handle is cheap (an id and a reference to the client): it can be rebuilt from an id alone with
`JobClient.handle(id)`, in another process, a day later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqsloops.jobs.errors import JobError
from sqsloops.jobs.states import CANCELLED, DEAD, SUCCEEDED
from sqsloops.jobs.store import JobRecord

if TYPE_CHECKING:
    from sqsloops.jobs.client import JobClient

FIRST_POLL_S = 0.05
MAX_POLL_S = 2.0


class UntrackedJobError(JobError):
    """The job was declared track=False: it has no status row to read, wait on or cancel."""

    def __init__(self, job: str, job_id: str) -> None:
        super().__init__(f"job {job!r} is not tracked (track=False): {job_id} has no status, result or cancel")
        self.job = job
        self.job_id = job_id


class JobFailedError(JobError):
    """`result()` of a job that ended dead or cancelled: there is no result, and `record` says why."""

    def __init__(self, record: JobRecord) -> None:
        reason = f": {record.last_error}" if record.state is DEAD and record.last_error else ""
        super().__init__(f"job {record.id} ({record.job}) is {record.state.value}{reason}")
        self.record = record


class ResultTimeoutError(JobError, TimeoutError):
    """`result(timeout=...)` gave up waiting; the job goes on (or waits) all the same."""

    def __init__(self, job_id: str, timeout_s: float, record: JobRecord | None) -> None:
        state = record.state.value if record is not None else "unknown"
        super().__init__(f"job {job_id} did not finish within {timeout_s:g} s (it is {state})")
        self.job_id = job_id
        self.record = record


class ResultNotKeptError(JobError):
    """The job succeeded but its result was larger than the Jobs table keeps; only its size is known."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__(f"job {record.id} succeeded, but its {record.result_bytes}-byte result was not kept")
        self.record = record


@dataclass(frozen=True)
class JobHandle:
    """One enqueued job. `duplicate`: this enqueue sent nothing, because the job (same unique key, or same id) was
    enqueued before; the handle is the first job's."""

    id: str
    job: str
    client: JobClient = field(repr=False, compare=False)
    duplicate: bool = False
    tracked: bool = True
    schedule_name: str | None = None  # set when a one-time Scheduler schedule delivers it

    def status(self) -> JobRecord:
        """The job's row as it is now (state, attempts, times, last error, result); JobNotFoundError if it has
        none (never tracked, or purged after its TTL)."""
        self._check_tracked()
        return self.client.status(self.id)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to finish and return its result (the function's return value, through JSON).

        Polls the Jobs table with a growing pause (FIRST_POLL_S doubling up to MAX_POLL_S); `timeout` in seconds,
        None waits as long as it takes. JobFailedError if it ends dead or cancelled, ResultTimeoutError when the
        time is up, ResultNotKeptError when the result was too large to keep.
        """
        self._check_tracked()
        if timeout is not None and (not math.isfinite(timeout) or timeout < 0):
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        clock = self.client.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        pause_s = FIRST_POLL_S
        while True:
            record = self.client.store_get(self.id)
            if record is not None and record.final:
                return _result_of(record)
            if deadline is not None:
                left_s = deadline - clock.monotonic()
                if left_s <= 0:
                    raise ResultTimeoutError(self.id, timeout or 0.0, record)
                pause_s = min(pause_s, left_s)
            clock.sleep(pause_s)
            pause_s = min(pause_s * 2, MAX_POLL_S)

    def cancel(self) -> JobRecord:
        """Cancel the job if it has not started (or waits between attempts); deletes its one-time schedule and
        frees its unique key. JobNotFoundError for an unknown id, NotCancellableError once it runs or has ended."""
        self._check_tracked()
        return self.client.cancel(self.id)

    def _check_tracked(self) -> None:
        if not self.tracked:
            raise UntrackedJobError(self.job, self.id)


def _result_of(record: JobRecord) -> Any:
    if record.state is SUCCEEDED:
        if record.result_truncated:
            raise ResultNotKeptError(record)
        return None if record.result is None else json.loads(record.result)
    if record.state in (DEAD, CANCELLED):
        raise JobFailedError(record)
    raise AssertionError(f"not a final state: {record.state}")  # pragma: no cover - FINAL is these three
