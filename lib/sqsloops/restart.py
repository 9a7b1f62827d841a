"""The restart function's two jobs, run every minute: reconcile loop counts, then resurrect stale loops.

reconcile: an alarm that stays in ALARM sends no second notification, and a registration change sends none at
all, so every queue is moved toward its desired count here too (scale-down retires tokens, see sqsloops.fleet):
- tokens at slots >= max_loops are retired always (a registration lowered max_loops);
- up, always, to desired_loops(visible) (capped at max_loops);
- down to max_loops always (a registration lowered it), to 0 when the queue is disabled, and to min_loops only
  when the queue is idle (nothing visible, nothing in flight). Between those, scale-down is the alarms' job: a
  backlog that loops keep at zero visible would otherwise be scaled down every minute and back up on the next alarm.

sweep: a token whose last_used is older than stale_after_s has no live loop (its recursion failed or was
dropped). It is taken over with a conditional write, so of several sweepers exactly one starts its new loop.
That assumes a loop that is only slow proves itself within stale_after_s: a heartbeat plus one batch (registration
warns when visibility_timeout_s + heartbeat_s reaches stale_after_s). Retired tokens are never taken over; once
their grace has passed they are deleted (tidy-up). Live tokens of queues no longer registered are retired, with
stale_after_s as their grace (their registration, and so its visibility timeout, is gone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import TokenLostError
from sqsloops.fleet import Fleet
from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.queues import queue_depth
from sqsloops.registry import QueueConfig, Registry
from sqsloops.tokens import Tokens

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass
class SweepSummary:
    """What one sweep did across every token it scanned."""

    scanned: int = 0
    stale: int = 0
    taken_over: int = 0
    lost_races: int = 0
    started: int = 0
    start_failures: int = 0
    orphans_retired: int = 0  # live tokens of unregistered queues, retired
    retired_deleted: int = 0  # retired tokens whose grace had passed, deleted
    disabled_skipped: int = 0


@dataclass
class QueueReconcile:
    """What reconcile did to one queue."""

    queue_url: str
    rule: str  # "disabled", "idle" or "backlog"; "error" when the queue could not be read
    desired: int | None = None
    visible: int | None = None
    in_flight: int | None = None
    before: int = 0
    after: int = 0
    started: int = 0
    stopped: int = 0
    start_failures: int = 0
    error: str | None = None


@dataclass
class RestartSummary:
    """Reconcile, then sweep: what the restart function returns and logs."""

    queues: list[QueueReconcile] = field(default_factory=list)
    sweep: SweepSummary = field(default_factory=SweepSummary)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sweep": asdict(self.sweep),
            "queues": {q.queue_url: {k: v for k, v in asdict(q).items() if k != "queue_url"} for q in self.queues},
        }


def reconcile_queue(config: QueueConfig, *, sqs: SQSClient, fleet: Fleet) -> QueueReconcile:
    """Move one queue's loops toward its desired count by the rules in this module's docstring."""
    url = config.queue_url
    visibility_timeout_s = config.visibility_timeout_s
    if not config.enabled:
        change = fleet.converge(url, 0, allow_up=False, visibility_timeout_s=visibility_timeout_s)
        return QueueReconcile(
            url, "disabled", desired=0, before=change.before, after=change.after, stopped=change.stopped
        )
    depth = queue_depth(sqs, url)
    idle = depth.visible == 0 and depth.in_flight == 0
    desired = config.desired_loops(depth.visible)
    # Cap first: a token beyond max_loops must not count toward desired, leaving a place below max_loops empty.
    change = fleet.cap(url, config.max_loops, visibility_timeout_s=visibility_timeout_s)
    change = change.then(fleet.converge(url, desired, allow_down=False, visibility_timeout_s=visibility_timeout_s))
    floor = config.min_loops if idle else config.max_loops
    change = change.then(fleet.converge(url, floor, allow_up=False, visibility_timeout_s=visibility_timeout_s))
    return QueueReconcile(
        url,
        "idle" if idle else "backlog",
        desired=desired,
        visible=depth.visible,
        in_flight=depth.in_flight,
        before=change.before,
        after=change.after,
        started=change.started,
        stopped=change.stopped,
        start_failures=change.start_failures,
    )


def reconcile(*, registry: Registry, sqs: SQSClient, fleet: Fleet) -> list[QueueReconcile]:
    """Reconcile every registered queue; one queue's failure (deleted queue, throttling) never stops the others."""
    results: list[QueueReconcile] = []
    for config in registry.all():
        try:
            results.append(reconcile_queue(config, sqs=sqs, fleet=fleet))
        except Exception as exc:  # any failure of one queue: report it, carry on with the rest
            logger.exception("reconcile failed for a queue", extra={"queue_url": config.queue_url})
            results.append(QueueReconcile(config.queue_url, "error", error=f"{type(exc).__name__}: {exc}"))
    return results


def sweep(
    *,
    tokens: Tokens,
    registry: Registry,
    launcher: Launcher,
    stale_after_s: float,
    page_size: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SweepSummary:
    """Take over and restart every stale live token of an enabled queue; retire every live token of an unregistered
    queue; delete every retired token whose grace has passed."""
    summary = SweepSummary()
    configs = {config.queue_url: config for config in registry.all()}
    registered: dict[str, bool] = {url: True for url in configs}
    now = clock.now()
    for token in tokens.scan(page_size=page_size):
        summary.scanned += 1
        if token.retired:
            if token.reusable(now) and tokens.purge(token):
                summary.retired_deleted += 1
            continue
        if token.queue_url not in registered:
            # Re-read: a queue registered after our snapshot already has its registration when its tokens appear.
            registered[token.queue_url] = registry.find(token.queue_url) is not None
        if not registered[token.queue_url]:
            summary.orphans_retired += tokens.retire(token.queue_url, token.slot, grace_s=stale_after_s)
            logger.info(
                "token of an unregistered queue retired", extra={"queue_url": token.queue_url, "token": token.slot}
            )
            continue
        if not token.is_stale(now, stale_after_s):
            continue
        summary.stale += 1
        config = configs.get(token.queue_url)
        if config is not None and not config.enabled:
            summary.disabled_skipped += 1  # reconcile retires the tokens of a disabled queue
            continue
        try:
            fresh = tokens.take_over(token)
        except TokenLostError:
            summary.lost_races += 1  # another sweeper (or the loop itself, by a late heartbeat) got there first
            continue
        summary.taken_over += 1
        log_extra = {"queue_url": token.queue_url, "token": token.slot, "loop_id": fresh.loop_id}
        try:
            launcher.start(fresh)
        except Exception as exc:  # the token stays; it is stale again after stale_after_s and retried then
            summary.start_failures += 1
            logger.warning("restart of a stale loop failed", extra={**log_extra, "error": str(exc)})
            continue
        summary.started += 1
        logger.info("stale loop restarted", extra={**log_extra, "idle_s": round(now - token.last_used, 3)})
    return summary


def restart(
    *,
    registry: Registry,
    tokens: Tokens,
    sqs: SQSClient,
    fleet: Fleet,
    launcher: Launcher,
    stale_after_s: float,
    page_size: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> RestartSummary:
    """Reconcile first (so the sweep does not restart loops reconcile is about to retire), then sweep."""
    summary = RestartSummary(queues=reconcile(registry=registry, sqs=sqs, fleet=fleet))
    summary.sweep = sweep(
        tokens=tokens,
        registry=registry,
        launcher=launcher,
        stale_after_s=stale_after_s,
        page_size=page_size,
        clock=clock,
    )
    logger.info("restart done", extra=summary.as_dict())
    return summary
