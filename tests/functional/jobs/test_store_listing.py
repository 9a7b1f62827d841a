"""Listing a job's rows through the index: one state or all, newest change first, page by page."""

from __future__ import annotations

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs.states import DEAD, QUEUED, RETRYING, RUNNING, SUCCEEDED, JobState
from sqsloops.jobs.store import JobRecord, JobStore
from tests.functional.jobs.kit import JOB, settled


def all_pages(store: JobStore, job: str, *, state: JobState | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        records, token = store.list(job, state=state, limit=limit, start=token)
        pages.append([r.id for r in records])
        if token is None:
            return pages
        assert len(pages) < 100, "the listing does not end"


@pytest.fixture
def mixed(store: JobStore, clock: ManualClock) -> list[str]:
    """Ten jobs whose last changes happened one second apart, in several states; newest first."""
    ids: list[str] = []
    for n in range(10):
        job_id = f"j{n}"
        store.create(job_id, JOB, enqueued_at=clock.now())
        ids.append(job_id)
        clock.advance(1)
    # move some on: their last change is now later than every queued one's
    for job_id in ("j1", "j4", "j7"):
        settled(store.mark_running(job_id, job=JOB, attempt=1))
        clock.advance(1)
    for job_id in ("j4",):
        settled(store.mark_succeeded(job_id, result_json='"big result"'))
        clock.advance(1)
    settled(store.mark_dead("j7", attempts=1, error="boom", traceback="tb"))
    clock.advance(1)
    # another job's rows never show
    store.create("other-1", "other_job", enqueued_at=clock.now())
    # newest change first: j7 (dead), j4 (succeeded), j1 (running), then the queued ones, newest first
    return ["j7", "j4", "j1", "j9", "j8", "j6", "j5", "j3", "j2", "j0"]


def test_one_state_is_listed_newest_first(store: JobStore, mixed: list[str]) -> None:
    queued, token = store.list(JOB, state=QUEUED)
    assert [r.id for r in queued] == ["j9", "j8", "j6", "j5", "j3", "j2", "j0"]
    assert token is None
    assert [r.id for r in store.list(JOB, state="running")[0]] == ["j1"]
    assert [r.id for r in store.list(JOB, state=DEAD)[0]] == ["j7"]
    assert store.list(JOB, state=RETRYING) == ([], None)


def test_a_state_change_moves_a_job_between_listings(store: JobStore, mixed: list[str], clock: ManualClock) -> None:
    settled(store.mark_running("j0", job=JOB, attempt=1))
    assert "j0" not in [r.id for r in store.list(JOB, state=QUEUED)[0]]
    assert [r.id for r in store.list(JOB, state=RUNNING)[0]] == ["j0", "j1"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 10, 50])
def test_one_state_pages_through_every_row_once(store: JobStore, mixed: list[str], limit: int) -> None:
    pages = all_pages(store, JOB, state=QUEUED, limit=limit)
    assert all(len(page) <= limit for page in pages)
    assert [job_id for page in pages for job_id in page] == ["j9", "j8", "j6", "j5", "j3", "j2", "j0"]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 9, 10, 11, 50])
def test_all_states_merge_newest_first_page_by_page(store: JobStore, mixed: list[str], limit: int) -> None:
    pages = all_pages(store, JOB, state=None, limit=limit)
    assert all(len(page) == limit for page in pages[:-1])
    assert [job_id for page in pages for job_id in page] == mixed


def test_rows_changed_at_the_same_instant_are_each_listed_once(store: JobStore, clock: ManualClock) -> None:
    # Given many rows written at one instant, in two states (the clock does not move)
    for n in range(12):
        store.create(f"t{n:02d}", JOB, enqueued_at=clock.now())
    for n in range(0, 12, 3):
        settled(store.mark_running(f"t{n:02d}", job=JOB, attempt=1))

    # When they are listed in small pages, per state and across states
    across = [job_id for page in all_pages(store, JOB, state=None, limit=5) for job_id in page]
    queued = [job_id for page in all_pages(store, JOB, state=QUEUED, limit=2) for job_id in page]

    # Then each shows exactly once
    assert sorted(across) == [f"t{n:02d}" for n in range(12)]
    assert sorted(queued) == [f"t{n:02d}" for n in range(12) if n % 3]


def test_a_listing_is_a_summary_without_result_or_traceback(store: JobStore, mixed: list[str]) -> None:
    [done] = store.list(JOB, state=SUCCEEDED)[0]
    [dead] = store.list(JOB, state=DEAD)[0]
    full_done, full_dead = store.get("j4"), store.get("j7")
    assert isinstance(full_done, JobRecord)
    assert isinstance(full_dead, JobRecord)
    assert (done.result, full_done.result) == (None, '"big result"')
    assert done.result_bytes == full_done.result_bytes == 12
    assert (dead.traceback, full_dead.traceback) == (None, "tb")
    assert dead.last_error == full_dead.last_error == "boom"
    assert done == JobRecord(**{**full_done.__dict__, "result": None})


def test_a_token_belongs_to_its_listing(store: JobStore, mixed: list[str]) -> None:
    _, token = store.list(JOB, state=QUEUED, limit=2)
    assert token is not None
    with pytest.raises(ConfigError):
        store.list("other_job", state=QUEUED, start=token)
    with pytest.raises(ConfigError):
        store.list(JOB, state=RUNNING, start=token)
    with pytest.raises(ConfigError):
        store.list(JOB, start="not-a-token")
    # an all-states token does not carry on a one-state listing either
    _, across = store.list(JOB, limit=2)
    assert across is not None
    with pytest.raises(ConfigError):
        store.list(JOB, state=QUEUED, start=across)


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_a_bad_limit_is_refused(store: JobStore, limit: int) -> None:
    with pytest.raises(ConfigError):
        store.list(JOB, limit=limit)
