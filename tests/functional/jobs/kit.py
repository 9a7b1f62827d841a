"""Bringing a job to a given state through the store's own writes (what the tests start from)."""

from __future__ import annotations

from sqsloops.clock import ManualClock
from sqsloops.jobs.states import (
    CANCELLED,
    DEAD,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    JobState,
)
from sqsloops.jobs.store import JobRecord, JobStore, Refused

JOB = "send_email"


def settled(outcome: JobRecord | Refused) -> JobRecord:
    assert isinstance(outcome, JobRecord), outcome
    return outcome


def job_in(store: JobStore, clock: ManualClock, state: JobState, job_id: str = "j1", *, job: str = JOB) -> JobRecord:
    """A job row in `state`, reached the way the runner would reach it; the clock moves 1 s per write."""
    now = clock.now()
    if state is SCHEDULED:
        assert store.create(job_id, job, state=SCHEDULED, enqueued_at=now, run_at=now + 3600, schedule_name="s-1")
    else:
        assert store.create(job_id, job, enqueued_at=now)
    clock.advance(1)
    if state in (SCHEDULED, QUEUED):
        pass
    elif state is CANCELLED:
        store.cancel(job_id)
    else:
        settled(store.mark_running(job_id, job=job, attempt=1))
        clock.advance(1)
        if state is RETRYING:
            settled(store.mark_retrying(job_id, attempts=1, error="boom", next_run_at=clock.now() + 60))
        elif state is SUCCEEDED:
            settled(store.mark_succeeded(job_id, result_json='{"ok": true}'))
        elif state is DEAD:
            settled(store.mark_dead(job_id, attempts=1, error="boom", traceback="Traceback ...\nValueError: boom"))
        else:
            assert state is RUNNING
    clock.advance(1)
    record = store.get(job_id)
    assert record is not None
    assert record.state is state
    return record
