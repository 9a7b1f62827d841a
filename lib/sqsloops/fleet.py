"""Moving a queue's loop count to a number: take free slots and start their loops, or retire tokens.

Scale-up creates tokens in the lowest free slots below max_loops (each a conditional put), so scale-ups that race
compete for the same slots and never create a token at a slot >= max_loops: max_loops is a hard bound on the token
count at every moment, not a target trimmed back to. Scale-ups that read the table at different moments may pick
different slots and together overshoot `desired` (never max_loops); the next scale-down or reconcile trims that.
Taking any free slot below max_loops, not only those below `desired`, is what lets a queue scaled to zero start a
loop at once on slot 1 while slot 0 is still in its grace; with max_loops 1 there is no other slot, so the start
waits for the grace, which is what keeps exactly one consumer.

Scale-down retires tokens rather than deleting them: a retired loop may consume until its next heartbeat check, so
its slot stays closed for a grace (`sqsloops.scaling.retirement_grace_s`). Live loops and loops still stopping then
occupy distinct slots below max_loops, so at most max_loops loops consume at any instant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.scaling import Target, retirement_grace_s
from sqsloops.tokens import Token, Tokens


@dataclass(frozen=True)
class Change:
    """What a convergence did."""

    queue_url: str
    before: int
    after: int
    started: int = 0
    stopped: int = 0
    start_failures: int = 0
    lost_races: int = 0  # free slots another scale-up took first (it starts their loops)
    deferred: int = 0  # loops not started because their slots are retired and still in their grace

    def then(self, later: Change) -> Change:
        """This change followed by `later` on the same queue, as one."""
        return Change(
            self.queue_url,
            self.before,
            later.after,
            started=self.started + later.started,
            stopped=self.stopped + later.stopped,
            start_failures=self.start_failures + later.start_failures,
            lost_races=self.lost_races + later.lost_races,
            deferred=self.deferred + later.deferred,
        )


def _slot_order(token: Token) -> tuple[float, float]:
    """Lowest slot first; a token that names no slot sorts after every slot (newest of those last)."""
    return (math.inf if token.slot_index is None else token.slot_index, token.created_at)


class Fleet:
    """Converges the Loops table toward a desired count per queue.

    heartbeat_s is the stack's (Settings.heartbeat_s): with a registration's visibility_timeout_s it sets how long a
    retired slot stays closed. The clock must be the one the Tokens use.
    """

    def __init__(self, *, tokens: Tokens, launcher: Launcher, heartbeat_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._tokens = tokens
        self._launcher = launcher
        self._heartbeat_s = heartbeat_s
        self._clock = clock

    def grace_s(self, visibility_timeout_s: float) -> float:
        """How long a slot retired now stays closed, for a registration with this visibility timeout."""
        return retirement_grace_s(heartbeat_s=self._heartbeat_s, visibility_timeout_s=visibility_timeout_s)

    def converge(
        self,
        queue_url: str,
        desired: int,
        *,
        max_loops: int,
        visibility_timeout_s: float,
        allow_up: bool = True,
        allow_down: bool = True,
    ) -> Change:
        """Add or retire tokens until `desired` (at most max_loops) loops exist, only in the allowed directions.

        Up takes the lowest free slots below max_loops; a slot someone else took meanwhile is left to them, and a
        slot retired less than its grace ago is never reused: another free slot is taken instead, and only when
        none is left does the start wait (the restart reconcile, every minute, or the next alarm starts it later).
        Down retires the highest slots first: the lowest are the oldest loops, with warm caches and long-lived
        counters. A loop whose start fails keeps its token: the restart sweep starts it once it is stale.
        max_loops and visibility_timeout_s are the registration's (the slots' bound; a retirement's grace).
        """
        desired = min(desired, max_loops)
        every = self._tokens.list(queue_url, live=False)
        current = sorted((t for t in every if not t.retired), key=_slot_order)
        before = len(current)
        if desired > before and allow_up:
            change = self._start(queue_url, before, desired, max_loops, every)
        elif desired < before and allow_down:
            change = self._stop(queue_url, before, reversed(current[desired:]), visibility_timeout_s)
        else:
            change = Change(queue_url, before, before)
        if change.before != change.after or change.lost_races:
            logger.info("loops converged", extra={**change.__dict__, "desired": desired})
        return change

    def move(self, queue_url: str, target: Target, *, max_loops: int, visibility_timeout_s: float) -> Change:
        """Converge toward a decision of sqsloops.scaling: up to target.up_to, then down to target.down_to."""

        def converge(desired: int, *, allow_up: bool = True, allow_down: bool = True) -> Change:
            return self.converge(
                queue_url,
                desired,
                max_loops=max_loops,
                visibility_timeout_s=visibility_timeout_s,
                allow_up=allow_up,
                allow_down=allow_down,
            )

        if target.up_to is not None and target.up_to == target.down_to:
            return converge(target.up_to)
        change: Change | None = None
        if target.up_to is not None:
            change = converge(target.up_to, allow_down=False)
        if target.down_to is not None:
            down = converge(target.down_to, allow_up=False)
            change = down if change is None else change.then(down)
        if change is None:
            raise ValueError(f"a target moves in at least one direction, got {target}")
        return change

    def cap(self, queue_url: str, max_loops: int, *, visibility_timeout_s: float) -> Change:
        """Retire every token at a slot >= max_loops (or at no slot): what a lowered max_loops leaves behind."""
        current = sorted(self._tokens.list(queue_url), key=_slot_order)
        beyond = [t for t in current if t.slot_index is None or t.slot_index >= max_loops]
        change = self._stop(queue_url, len(current), reversed(beyond), visibility_timeout_s)
        if change.stopped:
            logger.info("loops beyond max_loops stopped", extra={**change.__dict__, "max_loops": max_loops})
        return change

    def _start(self, queue_url: str, before: int, desired: int, max_loops: int, every: list[Token]) -> Change:
        now = self._clock.now()
        closed = {t.slot_index: t for t in every if t.retired and not t.reusable(now)}
        held = {t.slot_index for t in every if not t.retired} | closed.keys()
        wanted = desired - before
        slots = [slot for slot in range(max_loops) if slot not in held][:wanted]
        deferred = wanted - len(slots)
        if deferred:
            waiting = [t for slot, t in closed.items() if slot is not None and slot < max_loops]
            reusable_in_s = min((t.reusable_at or now) - now for t in waiting) if waiting else 0.0
            logger.info(
                "slots retired moments ago are still in their grace: their loops start later, from the restart "
                "reconcile (every minute) or the next alarm",
                extra={
                    "queue_url": queue_url,
                    "desired": desired,
                    "max_loops": max_loops,
                    "deferred": deferred,
                    "closed_slots": sorted(slot for slot in closed if slot is not None and slot < max_loops),
                    "reusable_in_s": round(max(reusable_in_s, 0.0), 3),
                },
            )
        created = started = failures = lost = 0
        for slot in slots:
            token = self._tokens.create(queue_url, slot=slot)
            if token is None:
                lost += 1  # a concurrent scale-up created it and starts its loop
                continue
            created += 1
            try:
                self._launcher.start(token)
                started += 1
            except Exception as exc:  # any failure: the restart sweep is the fallback
                failures += 1
                logger.warning(
                    "loop start failed; the restart sweep will start it",
                    extra={"queue_url": queue_url, "token": token.slot, "error": str(exc)},
                )
        return Change(
            queue_url,
            before,
            before + created,
            started=started,
            start_failures=failures,
            lost_races=lost,
            deferred=deferred,
        )

    def _stop(self, queue_url: str, before: int, tokens: Iterable[Token], visibility_timeout_s: float) -> Change:
        grace_s = self.grace_s(visibility_timeout_s)
        stopped = sum(self._tokens.retire(queue_url, t.slot, grace_s=grace_s) for t in tokens)
        return Change(queue_url, before, before - stopped, stopped=stopped)
