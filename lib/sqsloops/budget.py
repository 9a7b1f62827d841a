"""How long the running loop invocation may still work before its reserve, for the handler code it calls.

The loop sets it around each dispatch; a handler kind that must not start what cannot finish reads it: the jobs:
runner does not start a job whose timeout is longer than what is left (it hands the message back and asks the
loop to hand over, so the job runs at the start of the next invocation instead of overrunning this one). Outside a
loop (a per-job Lambda, a test, the eager mode) nothing is set: None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkBudget:
    left_s: Callable[[], float]  # seconds before the invocation's reserve, from now
    total_s: float  # the invocation's whole work time (start to reserve): what a fresh invocation will have


_BUDGET: ContextVar[WorkBudget | None] = ContextVar("sqsloops_work_budget", default=None)


@contextmanager
def work_budget(left_s: Callable[[], float], *, total_s: float) -> Iterator[None]:
    """While the block runs, `current_budget()` is this invocation's."""
    token = _BUDGET.set(WorkBudget(left_s=left_s, total_s=total_s))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def current_budget() -> WorkBudget | None:
    """The current loop invocation's work budget, or None outside a loop."""
    return _BUDGET.get()
