"""Counting a job's rows in one state through the index (what the dashboard's per-state counts read)."""

from __future__ import annotations

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs.states import DEAD, QUEUED, RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobStore
from tests.functional.jobs.kit import JOB, settled


def test_count_counts_each_state_of_one_job_only(store: JobStore, clock: ManualClock) -> None:
    for n in range(5):
        store.create(f"q{n}", JOB, enqueued_at=clock.now())
        clock.advance(1)
    for job_id in ("q0", "q1"):
        settled(store.mark_running(job_id, job=JOB, attempt=1))
    settled(store.mark_succeeded("q0", result_json="1"))
    store.create("other-1", "another_job", enqueued_at=clock.now())

    assert store.count(JOB, QUEUED) == 3
    assert store.count(JOB, RUNNING) == 1
    assert store.count(JOB, "succeeded") == 1
    assert store.count(JOB, DEAD) == 0
    assert store.count("another_job", QUEUED) == 1


def test_count_stops_at_its_cap_across_pages(store: JobStore, clock: ManualClock) -> None:
    for n in range(7):
        store.create(f"j{n}", JOB, enqueued_at=clock.now())
        clock.advance(1)
    assert store.count(JOB, QUEUED, cap=3) == 3
    assert store.count(JOB, QUEUED, cap=7) == 7
    assert store.count(JOB, SUCCEEDED, cap=3) == 0


def test_count_refuses_a_bad_state_or_cap(store: JobStore) -> None:
    with pytest.raises(ValueError, match="nope"):
        store.count(JOB, "nope")
    with pytest.raises(ConfigError):
        store.count(JOB, QUEUED, cap=0)
