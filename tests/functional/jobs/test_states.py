"""The states table: the transitions the design allows, and nothing else."""

from __future__ import annotations

import itertools

import pytest

from sqsloops.jobs.states import (
    CANCELLABLE,
    CANCELLED,
    DEAD,
    FINAL,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    TRANSITIONS,
    JobState,
    can_transition,
    is_final,
    sources,
)

# The design's moves, written out independently of the module, so a change to the table shows up here.
EXPECTED = {
    (SCHEDULED, QUEUED),
    (SCHEDULED, RUNNING),
    (SCHEDULED, CANCELLED),
    (QUEUED, RUNNING),
    (QUEUED, CANCELLED),
    (QUEUED, QUEUED),
    (RUNNING, SUCCEEDED),
    (RUNNING, RETRYING),
    (RUNNING, DEAD),
    (RUNNING, RUNNING),
    (RETRYING, RUNNING),
    (RETRYING, CANCELLED),
    (RETRYING, DEAD),
    (DEAD, QUEUED),
}


def test_there_are_the_seven_states_of_the_design() -> None:
    assert [s.value for s in JobState] == [
        "scheduled",
        "queued",
        "running",
        "succeeded",
        "retrying",
        "dead",
        "cancelled",
    ]
    assert set(TRANSITIONS) == set(JobState)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobState, JobState)))
def test_a_move_is_allowed_exactly_when_the_design_has_it(current: JobState, target: JobState) -> None:
    assert can_transition(current, target) is ((current, target) in EXPECTED)
    assert can_transition(current.value, target.value) is ((current, target) in EXPECTED)


def test_final_states_are_left_only_by_a_redrive() -> None:
    assert {SUCCEEDED, DEAD, CANCELLED} == FINAL
    assert all(is_final(s) for s in FINAL)
    assert not any(is_final(s) for s in set(JobState) - FINAL)
    assert TRANSITIONS[SUCCEEDED] == TRANSITIONS[CANCELLED] == frozenset()
    assert TRANSITIONS[DEAD] == {QUEUED}


def test_sources_read_the_table_backwards() -> None:
    assert sources(RUNNING) == {SCHEDULED, QUEUED, RUNNING, RETRYING}
    assert sources(SUCCEEDED) == {RUNNING}
    assert sources(DEAD) == {RUNNING, RETRYING}
    assert sources(QUEUED) == {SCHEDULED, QUEUED, DEAD}
    assert CANCELLABLE == sources(CANCELLED) == {SCHEDULED, QUEUED, RETRYING}


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="paused"):
        can_transition("queued", "paused")
