"""The restart function's jobs: every minute, reconcile loop counts and resurrect stale loops; at once, revive a loop
whose invocation Lambda reports failed (the process function's OnFailure destination).

reconcile: an alarm that stays in ALARM sends no second notification, and a registration change sends none at
all, so every queue is moved toward its desired count here too (`sqsloops.scaling.on_reconcile` decides; scale-down
retires tokens, see sqsloops.fleet): tokens at slots >= max_loops are retired first (a lowered max_loops), then up to
what the visible backlog calls for, then down to max_loops, or to min_loops once the queue is idle; a disabled or
broken registration loses every loop.

sweep: a token whose last_used is older than stale_after_s has no live loop (`sqsloops.scaling.is_stale`: its
recursion failed or was dropped). It is taken over with a conditional write, so of several sweepers exactly one
starts its new loop. That assumes a loop that is only slow proves itself within stale_after_s, i.e. that its
registration's `sqsloops.scaling.unproven_s` fits (registration warns otherwise). Retired tokens are never taken
over; once their grace has passed they are deleted (tidy-up). Live tokens of queues no longer registered are retired,
with stale_after_s as their grace (their registration, and so its visibility timeout, is gone).

One bad item never stops either: a registration or token item that cannot be parsed is logged with its key, counted
(`unreadable`) and skipped; a queue or token whose handling fails is logged, counted and the rest go on.

revive: see `revive` (the destination record of a failed invocation; the sweep stays the backstop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqsloops import scaling
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError, NotRegisteredError, TokenLostError
from sqsloops.fleet import Fleet
from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.loop import LoopPayload, clipped
from sqsloops.queues import queue_depth
from sqsloops.registry import QueueConfig, Registry, UnreadableRegistrationError
from sqsloops.tokens import Token, Tokens, UnreadableTokenError

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
    disabled_skipped: int = 0  # stale tokens of a disabled or broken registration (reconcile retires them)
    unreadable: int = 0  # token items that could not be parsed, skipped (each logged with its key)
    unreadable_registration_skipped: int = 0  # tokens of a registration whose item cannot be parsed, left alone
    errors: int = 0  # tokens whose handling failed (logged); the next sweep tries again


@dataclass
class QueueReconcile:
    """What reconcile did to one queue."""

    queue_url: str
    # "disabled" (or broken), "idle" or "backlog"; "error" when the queue could not be handled, "unreadable" when its
    # registration item cannot be parsed
    rule: str
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
            "unreadable_registrations": sum(q.rule == "unreadable" for q in self.queues),
            "queue_errors": sum(q.rule == "error" for q in self.queues),
        }


def reconcile_queue(config: QueueConfig, *, sqs: SQSClient, fleet: Fleet) -> QueueReconcile:
    """Move one queue's loops toward its desired count (`sqsloops.scaling.on_reconcile` decides)."""
    url = config.queue_url
    visibility_timeout_s = config.visibility_timeout_s
    if not scaling.active(config):
        change = fleet.converge(
            url, 0, allow_up=False, max_loops=config.max_loops, visibility_timeout_s=visibility_timeout_s
        )
        return QueueReconcile(
            url, "disabled", desired=0, before=change.before, after=change.after, stopped=change.stopped
        )
    depth = queue_depth(sqs, url)
    target = scaling.on_reconcile(config, depth)
    # Cap first: a token beyond max_loops must not count toward desired, leaving a place below max_loops empty.
    change = fleet.cap(url, config.max_loops, visibility_timeout_s=visibility_timeout_s)
    change = change.then(fleet.move(url, target, max_loops=config.max_loops, visibility_timeout_s=visibility_timeout_s))
    return QueueReconcile(
        url,
        "idle" if depth.visible == 0 and depth.in_flight == 0 else "backlog",
        desired=target.desired,
        visible=depth.visible,
        in_flight=depth.in_flight,
        before=change.before,
        after=change.after,
        started=change.started,
        stopped=change.stopped,
        start_failures=change.start_failures,
    )


def reconcile(*, registry: Registry, sqs: SQSClient, fleet: Fleet) -> list[QueueReconcile]:
    """Reconcile every registered queue; one queue's failure (deleted queue, throttling, an unreadable item) never
    stops the others."""
    results: list[QueueReconcile] = []
    unreadable: list[UnreadableRegistrationError] = []
    for config in registry.all(unreadable=unreadable):
        try:
            results.append(reconcile_queue(config, sqs=sqs, fleet=fleet))
        except Exception as exc:  # any failure of one queue: report it, carry on with the rest
            logger.exception("reconcile failed for a queue", extra={"queue_url": config.queue_url})
            results.append(QueueReconcile(config.queue_url, "error", error=clipped(f"{type(exc).__name__}: {exc}")))
    results += [QueueReconcile(exc.queue_url, "unreadable", error=clipped(str(exc), 500)) for exc in unreadable]
    return results


class _Registrations:
    """The sweep's view of registrations: one Scan, then a GetItem for a queue that appears later.

    `state(url)` is a QueueConfig, None (not registered), or the UnreadableRegistrationError of its item.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        unreadable: list[UnreadableRegistrationError] = []
        self._known: dict[str, QueueConfig | UnreadableRegistrationError | None] = {
            config.queue_url: config for config in registry.all(unreadable=unreadable)
        }
        self._known.update({exc.queue_url: exc for exc in unreadable})

    def state(self, queue_url: str) -> QueueConfig | UnreadableRegistrationError | None:
        if queue_url not in self._known:
            # Re-read: a queue registered after our snapshot already has its registration when its tokens appear.
            try:
                self._known[queue_url] = self._registry.find(queue_url)
            except UnreadableRegistrationError as exc:
                self._known[queue_url] = exc
        return self._known[queue_url]


def sweep(
    *,
    tokens: Tokens,
    registry: Registry,
    launcher: Launcher,
    stale_after_s: float,
    page_size: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SweepSummary:
    """Take over and restart every stale live token of an active queue; retire every live token of an unregistered
    queue; delete every retired token whose grace has passed. Each token is handled in its own guard."""
    summary = SweepSummary()
    registrations = _Registrations(registry)
    now = clock.now()
    unreadable: list[UnreadableTokenError] = []
    for token in tokens.scan(page_size=page_size, unreadable=unreadable):
        summary.scanned += 1
        try:
            _sweep_token(token, summary, tokens, registrations, launcher, stale_after_s=stale_after_s, now=now)
        except Exception as exc:  # throttling, a bug: this token waits for the next sweep, the others go on
            summary.errors += 1
            logger.exception(
                "sweep failed for a token",
                extra={"queue_url": token.queue_url, "token": token.slot, "error": clipped(str(exc))},
            )
    summary.unreadable = len(unreadable)
    summary.scanned += len(unreadable)
    return summary


def _sweep_token(
    token: Token,
    summary: SweepSummary,
    tokens: Tokens,
    registrations: _Registrations,
    launcher: Launcher,
    *,
    stale_after_s: float,
    now: float,
) -> None:
    if token.retired:
        if token.reusable(now) and tokens.purge(token):
            summary.retired_deleted += 1
        return
    state = registrations.state(token.queue_url)
    if state is None:
        summary.orphans_retired += tokens.retire(token.queue_url, token.slot, grace_s=stale_after_s)
        logger.info("token of an unregistered queue retired", extra={"queue_url": token.queue_url, "token": token.slot})
        return
    if not token.is_stale(now, stale_after_s):
        return
    summary.stale += 1
    if isinstance(state, UnreadableRegistrationError):
        # Neither retired (the registration exists) nor restarted (its settings cannot be read): left to the operator.
        summary.unreadable_registration_skipped += 1
        return
    if not scaling.active(state):
        summary.disabled_skipped += 1  # reconcile retires the tokens of a disabled or broken queue
        return
    _restart_stale(token, summary, tokens, launcher, now=now)


def _restart_stale(token: Token, summary: SweepSummary, tokens: Tokens, launcher: Launcher, *, now: float) -> None:
    try:
        fresh = tokens.take_over(token)
    except TokenLostError:
        summary.lost_races += 1  # another sweeper (or the loop itself, by a late heartbeat) got there first
        return
    summary.taken_over += 1
    log_extra = {"queue_url": token.queue_url, "token": token.slot, "loop_id": fresh.loop_id}
    try:
        launcher.start(fresh)
    except Exception as exc:  # the token stays; it is stale again after stale_after_s and retried then
        summary.start_failures += 1
        logger.warning("restart of a stale loop failed", extra={**log_extra, "error": clipped(str(exc))})
        return
    summary.started += 1
    logger.info("stale loop restarted", extra={**log_extra, "idle_s": round(now - token.last_used, 3)})


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


# --- revive: the process function's OnFailure destination ---------------------------------------------------------

RETRIES_EXHAUSTED = "RetriesExhausted"  # the invocation returned a function error (raised, crashed, timed out)
EVENT_AGE_EXCEEDED = "EventAgeExceeded"  # the event waited (throttled) past MaximumEventAgeInSeconds, never ran

REVIVED = "revived"
MALFORMED = "malformed"  # not a destination record of a loop payload
NOT_REGISTERED = "not_registered"
INACTIVE = "inactive"  # disabled or broken: reconcile retires its tokens
UNREADABLE = "unreadable"  # the registration item cannot be parsed
GONE = "gone"  # the token is deleted, or carries another loop_id (taken over, recreated): another loop owns it
RETIRED = "retired"
ALIVE = "alive"  # a later invocation of the loop claimed the token: the loop lives on
LOST_RACE = "lost_race"  # the token changed between our read and our take-over (a heartbeat, a sweeper)
START_FAILED = "start_failed"  # taken over, not started: the sweep starts it once it is stale


@dataclass(frozen=True)
class FailedInvocation:
    """An asynchronous invocation of the process function that Lambda gave up on, as its destination record says.

    The record (version 1.0): `requestContext` {requestId, functionArn, condition, approximateInvokeCount},
    `requestPayload` (the event: a loop payload), and for an invocation that ran, `responseContext` and
    `responsePayload` (the error).
    """

    condition: str
    request_id: str
    function_arn: str
    payload: LoopPayload

    @staticmethod
    def is_record(event: Any) -> bool:
        """Whether an event is a Lambda destination record (rather than the restart schedule's event)."""
        if not isinstance(event, dict):
            return False
        context = event.get("requestContext")
        return isinstance(context, dict) and "condition" in context and "requestPayload" in event

    @classmethod
    def parse(cls, event: dict[str, Any]) -> FailedInvocation:
        """ConfigError when the record or its payload is not what the process function's OnFailure sends."""
        context = event.get("requestContext")
        if not isinstance(context, dict):
            raise ConfigError("a destination record needs a requestContext object")
        condition = context.get("condition")
        if condition not in (RETRIES_EXHAUSTED, EVENT_AGE_EXCEEDED):
            raise ConfigError(f"not a failure record: condition {clipped(repr(condition), 100)}")
        return cls(
            condition=str(condition),
            request_id=clipped(str(context.get("requestId", "")), 200),
            function_arn=clipped(str(context.get("functionArn", "")), 300),
            payload=LoopPayload.parse(event.get("requestPayload")),
        )


@dataclass(frozen=True)
class Revival:
    """What `revive` did about one failed invocation."""

    outcome: str
    condition: str = ""
    request_id: str = ""
    queue_url: str = ""
    token: str = ""
    loop_id: str = ""  # the failed invocation's
    hop: int = 0  # the failed invocation's
    new_loop_id: str = ""  # the revived loop's
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in ("", 0) or key == "outcome"}


def revive(event: Any, *, registry: Registry, tokens: Tokens, launcher: Launcher) -> Revival:
    """Bring a loop back at once when Lambda reports its invocation failed: take its token over and start it.

    The process function's EventInvokeConfig sends failed invocations here (OnFailure, Type Lambda, no retries), so a
    crashed, timed-out or aged-out hand-over is back in seconds instead of after stale_after_s. The token is taken
    over (`Tokens.take_over`: a new loop_id, conditional on the loop_id and last_used read, so a heartbeat or a
    sweeper in between wins) only while it is still that loop's, live, of an active registration, and at the
    failed invocation's hop or the one before: its hop h was claimed by nobody later (a later hop means the loop
    lives on: it handed over before failing). At h - 1 the failed invocation never claimed it; at h it did and has
    ended. Either way no invocation consumes under it now, and a hand-over still in flight fails its claim against
    the new loop_id. At h, the claim records the claimant's aws_request_id: a record whose requestId is not the
    claimant's is about another invocation of the same hop (a second Invoke of the event, or the same-hop hand-over
    of an invocation whose claim never got through), and the claimant lives on. One case is beyond what the record
    tells: a repeated delivery of one event may share its request id, so if the copy that never claimed is the one
    that failed, the claimant runs on until its next heartbeat fails, beside the revived loop.

    OnFailure catches function errors (RetriesExhausted) and events past their maximum age (EventAgeExceeded), not
    events Lambda drops unsent (an Invoke that never reached Lambda, one the launcher gave up on): the restart sweep,
    which takes every token stale_after_s old over, stays the backstop for those.
    """
    if not FailedInvocation.is_record(event):
        return _revival(Revival(MALFORMED, error="not a Lambda destination record"))
    try:
        failed = FailedInvocation.parse(event)
    except ConfigError as exc:
        return _revival(Revival(MALFORMED, error=clipped(str(exc), 500)))
    payload = failed.payload
    seen = Revival(
        "",
        condition=failed.condition,
        request_id=failed.request_id,
        queue_url=payload.queue_url,
        token=payload.token,
        loop_id=payload.loop_id,
        hop=payload.hop,
    )
    token, refusal, error = _read(payload, registry, tokens, failed.request_id)
    if token is None or refusal:
        return _revival(_with(seen, refusal, error=error))
    try:
        fresh = tokens.take_over(token)
    except TokenLostError:
        return _revival(_with(seen, LOST_RACE))
    try:
        launcher.start(fresh)
    except Exception as exc:  # the token stays: stale after stale_after_s, the sweep starts it then
        return _revival(_with(seen, START_FAILED, new_loop_id=fresh.loop_id, error=clipped(str(exc), 500)))
    return _revival(_with(seen, REVIVED, new_loop_id=fresh.loop_id))


def _read(
    payload: LoopPayload, registry: Registry, tokens: Tokens, request_id: str = ""
) -> tuple[Token | None, str, str]:
    """The token a failed invocation held, and why it may not be taken over ("" when it may), with an error text."""
    try:
        config = registry.get(payload.queue_url)
    except NotRegisteredError:
        return None, NOT_REGISTERED, ""
    except UnreadableRegistrationError as exc:
        return None, UNREADABLE, clipped(str(exc), 500)
    if not scaling.active(config):
        return None, INACTIVE, ""
    token = next((t for t in tokens.list(payload.queue_url, live=False) if t.slot == payload.token), None)
    return token, _refusal(token, payload, request_id), ""


def _refusal(token: Token | None, payload: LoopPayload, request_id: str = "") -> str:
    """Why this token is not the failed invocation's to take over; "" when it is (see `revive`)."""
    if token is None or (token.loop_id != payload.loop_id and not token.retired):
        return GONE
    if token.retired:
        return RETIRED
    if token.hop not in (payload.hop - 1, payload.hop):
        return ALIVE
    if token.hop == payload.hop and token.claimed_request and request_id and token.claimed_request != request_id:
        return ALIVE  # another invocation (a second Invoke of the same event) claimed this hop and holds it
    return ""


def _with(seen: Revival, outcome: str, **changes: str) -> Revival:
    return Revival(**{**asdict(seen), "outcome": outcome, **changes})


def _revival(revival: Revival) -> Revival:
    level = (
        logger.info if revival.outcome in (REVIVED, ALIVE, GONE, RETIRED, INACTIVE, NOT_REGISTERED) else logger.warning
    )
    message = "failed loop invocation revived" if revival.outcome == REVIVED else "failed loop invocation not revived"
    level(message, extra=revival.as_dict())
    return revival
