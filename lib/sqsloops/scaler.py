"""Moving a queue's loop count to a number: add tokens and start their loops, or delete tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.tokens import Tokens


@dataclass(frozen=True)
class Change:
    """What a convergence did."""

    queue_url: str
    before: int
    after: int
    started: int = 0
    stopped: int = 0
    start_failures: int = 0


class Scaler:
    """Converges the Loops table toward a desired count per queue."""

    def __init__(self, *, tokens: Tokens, launcher: Launcher) -> None:
        self._tokens = tokens
        self._launcher = launcher

    def converge(self, queue_url: str, desired: int, *, allow_up: bool = True, allow_down: bool = True) -> Change:
        """Add or delete tokens until `desired` exist (only in the allowed directions).

        Scale-down deletes the newest tokens first: the oldest loops have warm caches and long-lived counters.
        A loop whose start fails keeps its token: the restart sweep starts it once it is stale.
        """
        current = self._tokens.list(queue_url)
        before = len(current)
        if desired > before and allow_up:
            started = failures = 0
            for _ in range(desired - before):
                token = self._tokens.create(queue_url)
                try:
                    self._launcher.start(token)
                    started += 1
                except Exception as exc:  # any failure: the restart sweep is the fallback
                    failures += 1
                    logger.warning(
                        "loop start failed; the restart sweep will start it",
                        extra={"queue_url": queue_url, "token": token.token, "error": str(exc)},
                    )
            change = Change(queue_url, before, desired, started=started, start_failures=failures)
        elif desired < before and allow_down:
            stopped = sum(self._tokens.delete(queue_url, t.token) for t in reversed(current[desired:]))
            change = Change(queue_url, before, before - stopped, stopped=stopped)
        else:
            change = Change(queue_url, before, before)
        if change.before != change.after:
            logger.info("loops converged", extra={**change.__dict__, "desired": desired})
        return change
