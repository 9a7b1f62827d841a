"""A job's states and the one table of moves between them.

The rule: a job moves only along TRANSITIONS. Every write of the Jobs table (jobs/store.py) is one conditional
request whose condition is "the row's state is one of `sources(target)`", so writers that race (a duplicate SQS
delivery, a cancel while the runner starts, a late retry after a redrive) can never move a job along an edge this
table does not have; the loser gets a refusal that carries the state it found.

    scheduled  -> queued     the delay's schedule fired (or it was enqueued now after all)
               -> running    the schedule delivered straight to the queue: the runner sees it first
               -> cancelled
    queued     -> running
               -> cancelled
               -> queued     re-enqueued on redrive (a redrive that is run twice changes nothing)
    running    -> succeeded
               -> retrying   it ran and failed; another attempt is due at run_at
               -> dead       it ran and failed for the last time (or with a non-retryable error)
               -> running    a duplicate delivery, or a re-run after a lost loop (attempts only go up)
    retrying   -> running
               -> cancelled
               -> dead       given up on without running again (e.g. its retry could not be delivered)
    dead       -> queued     redrive (attempts reset to 0)
    succeeded, cancelled     nothing

FINAL states are succeeded, dead and cancelled: nothing runs a job in them. `dead` is final but not terminal: an
operator's redrive (and nothing else) takes it back to queued. A running job cannot be cancelled: nothing can stop
it mid-call, so cancelling is for jobs that have not started (or are waiting between attempts).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class JobState(StrEnum):
    """Where a job is in its life; the value is what the Jobs table stores."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"


SCHEDULED = JobState.SCHEDULED
QUEUED = JobState.QUEUED
RUNNING = JobState.RUNNING
SUCCEEDED = JobState.SUCCEEDED
RETRYING = JobState.RETRYING
DEAD = JobState.DEAD
CANCELLED = JobState.CANCELLED

# The one table: state -> the states it may move to. Everything else (store conditions, CANCELLABLE) derives from it.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        SCHEDULED: frozenset({QUEUED, RUNNING, CANCELLED}),
        QUEUED: frozenset({RUNNING, CANCELLED, QUEUED}),
        RUNNING: frozenset({SUCCEEDED, RETRYING, DEAD, RUNNING}),
        RETRYING: frozenset({RUNNING, CANCELLED, DEAD}),
        DEAD: frozenset({QUEUED}),
        SUCCEEDED: frozenset(),
        CANCELLED: frozenset(),
    }
)

FINAL: frozenset[JobState] = frozenset({SUCCEEDED, DEAD, CANCELLED})
INITIAL: frozenset[JobState] = frozenset({QUEUED, SCHEDULED})  # the states a job row may be created in


def can_transition(current: JobState | str, target: JobState | str) -> bool:
    """True if a job in `current` may move to `target`."""
    return JobState(target) in TRANSITIONS[JobState(current)]


def sources(target: JobState | str) -> frozenset[JobState]:
    """Every state a job may move to `target` from: what a conditional write to `target` checks."""
    wanted = JobState(target)
    return frozenset(state for state, targets in TRANSITIONS.items() if wanted in targets)


def is_final(state: JobState | str) -> bool:
    """Nothing runs a job in a final state (dead leaves it only by an operator's redrive)."""
    return JobState(state) in FINAL


CANCELLABLE: frozenset[JobState] = sources(CANCELLED)  # scheduled, queued, retrying

__all__ = [
    "CANCELLABLE",
    "CANCELLED",
    "DEAD",
    "FINAL",
    "INITIAL",
    "QUEUED",
    "RETRYING",
    "RUNNING",
    "SCHEDULED",
    "SUCCEEDED",
    "TRANSITIONS",
    "JobState",
    "can_transition",
    "is_final",
    "sources",
]
