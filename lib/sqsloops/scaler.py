"""Moving a queue's loop count to a number: take free slots and start their loops, or delete tokens.

Scale-up creates tokens only in free slots below `desired` (each a conditional put), so scale-ups that race compete
for the same slots: together they never hold more than the highest `desired` asked for. Callers clamp `desired` to
max_loops, which makes max_loops a hard bound on the token count at every moment, not a target trimmed back to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqsloops.launcher import Launcher
from sqsloops.log import logger
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
        )


def _slot_order(token: Token) -> tuple[float, float]:
    """Lowest slot first; a token that names no slot sorts after every slot (newest of those last)."""
    return (math.inf if token.slot is None else token.slot, token.created_at)


class Scaler:
    """Converges the Loops table toward a desired count per queue."""

    def __init__(self, *, tokens: Tokens, launcher: Launcher) -> None:
        self._tokens = tokens
        self._launcher = launcher

    def converge(self, queue_url: str, desired: int, *, allow_up: bool = True, allow_down: bool = True) -> Change:
        """Add or delete tokens until `desired` exist (only in the allowed directions).

        Up takes the lowest free slots below `desired`; a slot someone else took meanwhile is left to them.
        Down deletes the highest slots first: the lowest are the oldest loops, with warm caches and long-lived
        counters. A loop whose start fails keeps its token: the restart sweep starts it once it is stale.
        """
        current = sorted(self._tokens.list(queue_url), key=_slot_order)
        before = len(current)
        if desired > before and allow_up:
            taken = {t.slot for t in current}
            free = [slot for slot in range(desired) if slot not in taken][: desired - before]
            change = self._start(queue_url, before, free)
        elif desired < before and allow_down:
            change = self._stop(queue_url, before, reversed(current[desired:]))
        else:
            change = Change(queue_url, before, before)
        if change.before != change.after or change.lost_races:
            logger.info("loops converged", extra={**change.__dict__, "desired": desired})
        return change

    def cap(self, queue_url: str, max_loops: int) -> Change:
        """Delete every token at a slot >= max_loops (or at no slot): what a lowered max_loops leaves behind."""
        current = sorted(self._tokens.list(queue_url), key=_slot_order)
        beyond = [t for t in current if t.slot is None or t.slot >= max_loops]
        change = self._stop(queue_url, len(current), reversed(beyond))
        if change.stopped:
            logger.info("loops beyond max_loops stopped", extra={**change.__dict__, "max_loops": max_loops})
        return change

    def _start(self, queue_url: str, before: int, slots: list[int]) -> Change:
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
                    extra={"queue_url": queue_url, "token": token.token, "error": str(exc)},
                )
        return Change(queue_url, before, before + created, started=started, start_failures=failures, lost_races=lost)

    def _stop(self, queue_url: str, before: int, tokens: Iterable[Token]) -> Change:
        stopped = sum(self._tokens.delete(queue_url, t.token) for t in tokens)
        return Change(queue_url, before, before - stopped, stopped=stopped)
