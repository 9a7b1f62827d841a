"""The scaling decisions, each in one pure function: how many loops a queue should have, and when a loop is dead.

No AWS here. Alarm scaling (sqsloops.alarm_scaling), the restart reconcile and sweep (sqsloops.restart), the fleet's
retirements (sqsloops.fleet), token staleness (sqsloops.tokens) and the operator's register/update/status and timing
check (sqsloops.ops.registration) all decide through these, so they can never disagree.

Desired loops: `clamp(ceil(backlog / backlog_per_loop), min_loops, max_loops)`, and 0 for a registration that is
disabled or marked broken. Which backlog, and in which direction a caller may move, depends on the occasion
(`Target`): an ALARM scales up to the visible backlog, an ALARM->OK down to visible + in flight (a loop holding a
batch is not stopped under it), the reconcile up to the visible backlog and down only to max_loops, or to
min_loops once the queue is idle.

The stale bound: a live loop may consume for `unproven_s` without proving its token (UNPROVEN_HEARTBEATS heartbeat
periods, then one more receive of at least LONG_POLL_FLOOR_S and one batch as long as its visibility timeout). So a
retired slot stays closed that long (`retirement_grace_s`), and the sweep, which calls a token dead once its
last_used is older than stale_after_s (`is_stale`), must never call a live loop dead: a registration fits the stack
when `unproven_s <= stale_after_s` (`fits_stale_after`, `longest_visibility_timeout_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from sqsloops import defaults
from sqsloops.queues import Depth

LONG_POLL_FLOOR_S = 1.0  # the loop never long-polls for less, even when its heartbeat check is due sooner


class Limits(Protocol):
    """What the decision reads of a registration (sqsloops.registry.QueueConfig has all of it)."""

    @property
    def min_loops(self) -> int: ...
    @property
    def max_loops(self) -> int: ...
    @property
    def backlog_per_loop(self) -> int: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def broken_reason(self) -> str | None: ...


def active(limits: Limits) -> bool:
    """Whether loops may run for a registration at all: enabled, and not marked broken."""
    return bool(limits.enabled) and limits.broken_reason is None


def desired_loops(limits: Limits, backlog: int) -> int:
    """How many loops a backlog of `backlog` messages calls for: within [min_loops, max_loops]; 0 when inactive."""
    if not active(limits):
        return 0
    wanted = math.ceil(max(backlog, 0) / limits.backlog_per_loop)
    return max(limits.min_loops, min(limits.max_loops, wanted))


@dataclass(frozen=True)
class Target:
    """Where a queue's loop count is to move: up to `up_to` loops, down to `down_to`; None leaves that direction.

    When both are given, up_to <= down_to: the count ends between them (exactly there when they are equal).
    """

    up_to: int | None
    down_to: int | None
    desired: int  # what the backlog calls for (reported; equal to up_to or down_to where one is set)


def stop_all() -> Target:
    """Every loop retired, none started: for a disabled or broken registration."""
    return Target(up_to=None, down_to=0, desired=0)


def on_alarm(limits: Limits, depth: Depth) -> Target:
    """An ALARM: add loops up to the visible backlog's count, never remove any (an inactive queue: stop them all)."""
    if not active(limits):
        return stop_all()
    desired = desired_loops(limits, depth.visible)
    return Target(up_to=desired, down_to=None, desired=desired)


def on_ok(limits: Limits, depth: Depth) -> Target:
    """An ALARM->OK: retire loops beyond what visible + in-flight messages call for, never add any."""
    if not active(limits):
        return stop_all()
    desired = desired_loops(limits, depth.visible + depth.in_flight)
    return Target(up_to=None, down_to=desired, desired=desired)


def on_reconcile(limits: Limits, depth: Depth) -> Target:
    """The restart reconcile: up to the visible backlog's count; down to max_loops, or min_loops once idle.

    Between those, scale-down is the alarms' job: a backlog that loops keep at zero visible would otherwise be
    scaled down every minute and back up on the next alarm.
    """
    if not active(limits):
        return stop_all()
    desired = desired_loops(limits, depth.visible)
    idle = depth.visible == 0 and depth.in_flight == 0
    return Target(up_to=desired, down_to=limits.min_loops if idle else limits.max_loops, desired=desired)


def on_register(limits: Limits) -> Target:
    """A new registration: min_loops loops (none when inactive); the alarms and the reconcile take it from there."""
    desired = limits.min_loops if active(limits) else 0
    return Target(up_to=desired, down_to=desired, desired=desired)


def on_update(limits: Limits, current: int) -> Target:
    """A changed registration: the loops it has now, moved into the new [min_loops, max_loops] (none when inactive)."""
    desired = max(limits.min_loops, min(limits.max_loops, current)) if active(limits) else 0
    return Target(up_to=desired, down_to=desired, desired=desired)


# --- the stale bound -------------------------------------------------------------------------------------------


def unproven_s(*, heartbeat_s: float, visibility_timeout_s: float) -> float:
    """The longest a live loop may go on consuming without proving its token.

    A loop checks its token at the top of an iteration once heartbeat_s has passed since its last check; if that
    check cannot reach DynamoDB it goes on, but stops receiving once UNPROVEN_HEARTBEATS periods have passed without
    a proof. An iteration is one receive (woken up by the check's due time, or after LONG_POLL_FLOOR_S) plus one
    batch, which may take as long as its messages stay hidden (visibility_timeout_s; past that SQS hands them to
    another consumer anyway).
    """
    return defaults.UNPROVEN_HEARTBEATS * heartbeat_s + LONG_POLL_FLOOR_S + visibility_timeout_s


def retirement_grace_s(*, heartbeat_s: float, visibility_timeout_s: float) -> float:
    """How long a retired slot stays closed: until the loop last holding it must have stopped consuming."""
    return unproven_s(heartbeat_s=heartbeat_s, visibility_timeout_s=visibility_timeout_s)


def is_stale(last_used: float, now: float, *, stale_after_s: float) -> bool:
    """A token whose loop last proved itself more than stale_after_s ago has no live loop (the sweep's rule)."""
    return now - last_used > stale_after_s


def fits_stale_after(*, visibility_timeout_s: float, heartbeat_s: float, stale_after_s: float) -> bool:
    """Whether a loop busy with batches this long still proves itself before the sweep would call it dead."""
    return unproven_s(heartbeat_s=heartbeat_s, visibility_timeout_s=visibility_timeout_s) <= stale_after_s


def longest_visibility_timeout_s(*, heartbeat_s: float, stale_after_s: float) -> int:
    """The longest whole visibility timeout that `fits_stale_after` (negative when none does)."""
    return math.floor(stale_after_s - unproven_s(heartbeat_s=heartbeat_s, visibility_timeout_s=0.0))
