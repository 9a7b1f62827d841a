"""The eager mode (sqsloops.jobs.testing): jobs run inline with the runner's envelope, retries and states, no AWS."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import pytest

from sqsloops.jobs import JobArgsError, JobTimeoutError, Retry, UnknownJobError, current_job, job
from sqsloops.jobs.handle import UntrackedJobError
from sqsloops.jobs.states import DEAD, SUCCEEDED
from sqsloops.jobs.testing import EagerJobFailedError, EagerJobs, eager

CALLS: dict[str, list[int]] = defaultdict(list)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()


def _attempt() -> int:
    context = current_job()
    CALLS[context.job].append(context.attempt)
    return context.attempt


@job
def greet(name: str) -> dict[str, str]:
    _attempt()
    return {"hello": name}


@job(retries=4, backoff=("10s", "1m"))
def flaky() -> str:
    if _attempt() < 3:
        raise ConnectionError("not yet")
    return "third time"


@job(retries=2, backoff=("1s",))
def hopeless() -> None:
    _attempt()
    raise RuntimeError("never")


@job(retries=3, non_retryable=KeyError)
def missing() -> None:
    _attempt()
    raise KeyError("gone")


@job(retries=1)
def later() -> int:
    if _attempt() == 1:
        raise Retry(in_s="2m")
    return 2


@job(track=False, retries=2, backoff=("1h",))
def untracked() -> None:
    if _attempt() < 3:
        raise RuntimeError("again")


@job(unique="until_done", key="k-{n}")
def unique_done(n: int, nested: bool = False) -> bool | None:
    _attempt()
    if nested:
        return bool(unique_done.enqueue(n).duplicate)  # its own key is still held while it runs
    return None


@job(unique="until_started", key="k-{n}")
def unique_started(n: int, nested: bool = False) -> bool | None:
    _attempt()
    if nested:
        return bool(unique_started.enqueue(n).duplicate)  # released when it started
    return None


@job(timeout="1s", retries=0)
def swallows_timeouts() -> None:
    _attempt()
    for _ in range(2):  # a job that ignores the first alarm is stopped by the next, and still timed out
        with contextlib.suppress(JobTimeoutError):
            time.sleep(5)


def test_a_job_runs_inline_and_its_result_is_kept() -> None:
    with eager():
        handle = greet.enqueue("ada")
    assert (handle.status().state, handle.result()) == (SUCCEEDED, {"hello": "ada"})
    assert CALLS["greet"] == [1]


def test_retries_follow_the_backoff_on_the_eager_clock() -> None:
    with eager() as jobs:
        start = jobs.clock.now()
        handle = flaky.enqueue()
    record = handle.record()
    assert record is not None
    assert (record.state, record.attempts, handle.result()) == (SUCCEEDED, 3, "third time")
    assert [v.delay_s for v in jobs.attempts(handle.id)][:2] == [10, 60]
    assert jobs.clock.now() - start == pytest.approx(70)


def test_the_last_retry_makes_the_job_dead_with_its_error_and_traceback() -> None:
    with eager():
        handle = hopeless.enqueue()
    record = handle.record()
    assert record is not None
    assert (record.state, record.attempts, record.last_error) == (DEAD, 3, "RuntimeError: never")
    assert "raise RuntimeError" in (record.traceback or "")
    with pytest.raises(EagerJobFailedError, match="is dead"):
        handle.result()


def test_a_non_retryable_error_is_dead_at_once_and_propagate_reraises_it() -> None:
    with eager():
        assert missing.enqueue().status().state is DEAD
    assert CALLS["missing"] == [1]
    with eager(propagate=True), pytest.raises(KeyError):
        missing.enqueue()


def test_retry_in_s_wins_over_the_backoff() -> None:
    with eager() as jobs:
        handle = later.enqueue()
    assert [v.delay_s for v in jobs.attempts(handle.id)] == [120, None]
    assert handle.result() == 2


def test_an_untracked_job_carries_its_attempts_in_the_envelope() -> None:
    with eager() as jobs:
        handle = untracked.enqueue()
    with pytest.raises(UntrackedJobError):  # no row, as in the loop
        handle.status()
    assert CALLS["untracked"] == [1, 2, 3]
    assert [v.envelope.attempt for v in jobs.attempts(handle.id) if v.envelope] == [0, 1, 2]


def test_unique_scopes_hold_and_release_the_key_as_the_runner_does() -> None:
    with eager():
        assert unique_done.enqueue(1, nested=True).result() is True
        assert unique_done.enqueue(1).duplicate is False  # free again once the first is done
        assert unique_started.enqueue(2, nested=True).result() is False
    assert CALLS["unique_started"] == [1, 1]


def test_a_job_that_swallows_its_timeout_is_still_stopped_and_failed() -> None:
    with eager():
        handle = swallows_timeouts.enqueue()
    record = handle.record()
    assert record is not None
    assert record.state is DEAD
    assert "JobTimeoutError" in (record.last_error or "")


def test_bad_input_is_refused_and_nothing_runs() -> None:
    with eager(greet) as jobs:
        with pytest.raises(JobArgsError):
            greet.enqueue("ada", "extra")
        with pytest.raises(UnknownJobError):
            jobs.enqueue("nobody", [], {})
        assert jobs.enqueue("greet", ["bob"], {}).result() == {"hello": "bob"}
    assert CALLS["greet"] == [1]
    assert jobs.store.records()[0].job == "greet"


def test_leaving_the_block_restores_the_previous_enqueuer() -> None:
    outer = EagerJobs()
    with outer, eager():
        pass
    with outer:
        assert greet.enqueue("x").duplicate is False
    assert [r.job for r in outer.store.records()] == ["greet"]
