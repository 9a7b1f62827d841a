"""Registering queues: validate everything, then write the registration, its alarms and its first loops, or nothing.

The operator's use of Registry, Tokens, Launcher, Fleet and Alarms (the CLI, an API), wired by `OpsRoot`.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqsloops import defaults, scaling
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConcurrentUpdateError, ConfigError
from sqsloops.fleet import Change, Fleet
from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.ops.alarms import Alarms
from sqsloops.queues import (
    Depth,
    QueueId,
    QueueRef,
    canonical_queue_url,
    queue_depth,
    queue_missing,
    redrive_policy,
)
from sqsloops.registry import BROKEN_FIELDS, Broken, QueueConfig, Registry, UnreadableRegistrationError
from sqsloops.settings import Settings, missing_for_writes
from sqsloops.tokens import Tokens

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sqsloops.ops.handler_check import HandlerCheck
UPDATE_ATTEMPTS = 3
# Fields an operator may change; identity and bookkeeping are not among them.
UPDATABLE = frozenset(
    {f.name for f in fields(QueueConfig)}
    - {"queue_url", "created_at", "updated_at", "version", "extra"}
    - BROKEN_FIELDS
)


@dataclass(frozen=True)
class Registered:
    """What register() or update() did."""

    config: QueueConfig
    alarms: list[str]
    change: Change
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Deregistered:
    queue_url: str
    tokens_retired: int  # loops stopped: their tokens are retired, and deleted by the restart sweep after the grace
    alarms_deleted: list[str]


@dataclass(frozen=True)
class LoopCounts:
    running: int  # live (not retired) tokens whose loop proved itself within stale_after_s
    stale: int  # live tokens whose loop did not
    desired: int | None  # None when the queue's depth is unknown


@dataclass(frozen=True)
class Counters:
    processed: int = 0
    failed: int = 0
    invocations: int = 0


@dataclass(frozen=True)
class QueueStatus:
    """One registered queue as an operator sees it."""

    queue_url: str
    config: QueueConfig
    depth: Depth | None
    dlq_url: str | None
    dlq_depth: Depth | None
    loops: LoopCounts
    counters: Counters
    error: str | None = None  # e.g. the queue was deleted after it was registered
    broken: Broken | None = None  # a loop found the registration unworkable and stopped the queue's loops

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["config"] = {k: v for k, v in asdict(self.config).items() if k != "extra"}
        return result


def _queue_missing(exc: ClientError) -> bool:
    return queue_missing(exc)


def longest_visibility_timeout_s(settings: Settings) -> int:
    """The longest whole visibility timeout the stack's timing check accepts: a batch may take that long and its
    loop still proves itself before stale_after_s says it is dead (`sqsloops.scaling.fits_stale_after`)."""
    return scaling.longest_visibility_timeout_s(heartbeat_s=settings.heartbeat_s, stale_after_s=settings.stale_after_s)


def default_visibility_timeout_s(settings: Settings) -> int:
    """The visibility timeout a registration gets when none is given: VISIBILITY_TIMEOUT_S, or on a stack with a
    shorter stale_after_s (a time-compressed one) the longest that fits it, so a default registration passes the
    timing check instead of warning every time. At least 1 s: 0 would hand every message out again at once."""
    return max(1, min(defaults.VISIBILITY_TIMEOUT_S, longest_visibility_timeout_s(settings)))


class QueueAdmin:
    """Register, update, scale, inspect and deregister queues."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        tokens: Tokens,
        launcher: Launcher,
        fleet: Fleet,
        alarms: Alarms,
        sqs: SQSClient,
        clock: Clock = SYSTEM_CLOCK,
        handler_check: HandlerCheck | None = None,
    ) -> None:
        """Built by `sqsloops.ops.root.OpsRoot.admin`, which wires these from one Settings.

        handler_check: what register(check=True) asks of a handler before writing; None checks nothing.
        """
        self._settings = settings
        self._sqs = sqs
        self._clock = clock
        self._handler_check = handler_check
        self.registry = registry
        self.tokens = tokens
        self.launcher = launcher
        self.fleet = fleet
        self.alarms = alarms

    # --- writing -----------------------------------------------------------------------------------------------

    def register(self, config: QueueConfig, *, check: bool = True) -> Registered:
        """Validate everything, then write registration, alarms and min_loops loops; on any failure, undo all.

        The queue URL is canonicalised first (`sqsloops.queues.canonical_queue_url`), so one queue is one
        registration however its URL is spelled. A registration marked broken (`sqsloops.registry.Broken`) is
        replaced: registering again is how a user fixes one. check: ask whether the handler can work at all
        (`sqsloops.ops.handler_check`) before writing anything.
        """
        self._check_settings()
        config.validate()
        url, queue = self._canonical(config.queue_url)
        config = replace(config, queue_url=url)
        warnings = self._check_queue(url) + self._check_timing(config)
        existing = self._registered_as(url, queue)
        if existing is not None and self.registry.broken(existing) is None:
            spelled = "" if existing == url else f" as {existing}"
            raise ConfigError(f"queue is already registered{spelled}: {config.queue_url} (use update)")
        if check and self._handler_check is not None:
            warnings += self._handler_check.check(config.handler)
        if existing is not None and existing != url:
            self.registry.delete(existing)  # the broken registration under an older spelling of the URL

        # The first write: from here on, a failure undoes everything.
        stored = self.registry.create(config, replace_broken=existing is not None)
        try:
            alarms = self.alarms.put(stored)  # none for a disabled registration: nothing scales it
            # Slots a previous registration's loops are still leaving stay closed: converge skips them.
            change = self.fleet.move(
                stored.queue_url,
                scaling.on_register(stored),
                max_loops=stored.max_loops,
                visibility_timeout_s=stored.visibility_timeout_s,
            )
        except BaseException:
            self._undo_register(stored)
            raise
        warnings += self._deferred_warning(change, stored)
        logger.info("queue registered", extra={"queue_url": stored.queue_url, "handler": stored.handler})
        return Registered(stored, alarms, change, warnings)

    def update(self, queue_url: str, **changes: Any) -> Registered:
        """Change a registration (optimistically, retried on a concurrent change), its alarms and its loop count."""
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise ConfigError(f"cannot update {', '.join(unknown)}; updatable: {', '.join(sorted(UPDATABLE))}")
        self._check_settings()
        queue_url = self.resolve(queue_url)
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            current = self.registry.get(queue_url)
            try:
                stored = self.registry.update(replace(current, **changes))
                break
            except ConcurrentUpdateError:
                if attempt == UPDATE_ATTEMPTS:
                    raise
        alarms = self.alarms.put(stored)  # none for a disabled registration: nothing scales it
        # Batches running now were received under the old visibility timeout: a stopped loop's grace covers both.
        visibility_timeout_s = max(current.visibility_timeout_s, stored.visibility_timeout_s)
        # Tokens beyond a lowered max_loops are retired at once.
        capped = self.fleet.cap(queue_url, stored.max_loops, visibility_timeout_s=visibility_timeout_s)
        target = scaling.on_update(stored, capped.before)
        change = capped.then(
            self.fleet.move(queue_url, target, max_loops=stored.max_loops, visibility_timeout_s=visibility_timeout_s)
        )
        logger.info("registration updated", extra={"queue_url": queue_url, "version": stored.version})
        return Registered(stored, alarms, change, self._check_timing(stored) + self._deferred_warning(change, stored))

    def deregister(self, queue_url: str) -> Deregistered:
        """Stop the queue's loops (tokens retired: each loop stops at its next heartbeat), alarms, registration.

        Alarms go first so no scale-up is triggered meanwhile; the registration goes last so a deregistration that
        fails half-way can simply be run again. The retired tokens stay until the restart sweep deletes them after
        their grace, so registering the queue again meanwhile cannot start a loop beside one still stopping.
        """
        queue_url = self.resolve(queue_url)
        config = self.registry.get(queue_url)  # NotRegisteredError for an unknown queue
        alarms = self.alarms.delete(queue_url)
        deleted = self._retire_tokens(config)
        self.registry.delete(queue_url)
        deleted += self._retire_tokens(config)  # a scale-up that read the registration before it went
        logger.info("queue deregistered", extra={"queue_url": queue_url, "tokens_retired": deleted})
        return Deregistered(queue_url, deleted, alarms)

    def scale(self, queue_url: str, loops: int) -> Change:
        """Set the loop count by hand, within [min_loops, max_loops]. Alarms and the sweep move it again later."""
        queue_url = self.resolve(queue_url)
        config = self.registry.get(queue_url)
        if not config.enabled:
            raise ConfigError(f"registration is disabled: {queue_url} (enable it with update --enabled)")
        if not config.min_loops <= loops <= config.max_loops:
            raise ConfigError(
                f"loops must be between min_loops {config.min_loops} and max_loops {config.max_loops}, got {loops}"
            )
        visibility_timeout_s = config.visibility_timeout_s
        capped = self.fleet.cap(queue_url, config.max_loops, visibility_timeout_s=visibility_timeout_s)
        return capped.then(
            self.fleet.converge(queue_url, loops, max_loops=config.max_loops, visibility_timeout_s=visibility_timeout_s)
        )

    # --- reading -----------------------------------------------------------------------------------------------

    def list(self) -> list[QueueConfig]:
        return sorted(self.registry.all(), key=lambda c: c.queue_url)

    def status(self, queue_url: str | None = None) -> builtins.list[QueueStatus]:
        configs = [self.registry.get(self.resolve(queue_url))] if queue_url else self.list()
        return [self._status(config) for config in configs]

    def resolve(self, queue_url: str) -> str:
        """The key a queue is registered under, for any spelling of its URL (read from the URLs, no SQS call: so a
        deleted queue's registration is found too); `queue_url` itself when no registration matches."""
        ref = QueueRef.parse(queue_url)
        return self._registered_as(queue_url, None, ref=ref) or queue_url

    def _status(self, config: QueueConfig) -> QueueStatus:
        every = self.tokens.list(config.queue_url, live=False)
        tokens = [t for t in every if not t.retired]
        now = self._clock.now()
        stale = sum(t.is_stale(now, self._settings.stale_after_s) for t in tokens)
        # Retired tokens are not loops, but the work they counted stays in the totals until the sweep deletes them.
        counters = Counters(
            processed=sum(t.processed for t in every),
            failed=sum(t.failed for t in every),
            invocations=sum(t.invocations for t in every),
        )
        depth, dlq_url, dlq_depth, error = None, None, None, None
        try:
            depth = queue_depth(self._sqs, config.queue_url)
            policy = redrive_policy(self._sqs, config.queue_url)
        except ClientError as exc:
            if not _queue_missing(exc):
                raise
            error = f"queue does not exist: {config.queue_url}"
            policy = None
        if policy is not None:
            try:
                dlq_url = self._url_of(policy.dead_letter_arn)
                dlq_depth = queue_depth(self._sqs, dlq_url)
            except ClientError as exc:
                if not _queue_missing(exc):
                    raise
                error = f"dead-letter queue does not exist: {policy.dead_letter_arn}"
        broken = config.broken
        if not scaling.active(config):
            desired: int | None = 0
        else:
            desired = scaling.desired_loops(config, depth.visible) if depth is not None else None
        if broken is not None:
            error = f"registration broken: {broken.reason} (register the queue again to replace it, or deregister)"
        loops = LoopCounts(running=len(tokens) - stale, stale=stale, desired=desired)
        return QueueStatus(config.queue_url, config, depth, dlq_url, dlq_depth, loops, counters, error, broken)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _check_settings(self) -> None:
        """Writing needs the whole stack; reading needs only the tables. Say which setting is missing."""
        missing = missing_for_writes(self._settings)
        if missing:
            raise ConfigError(f"settings incomplete: set {', '.join(missing)} (or pass --stack NAME)")

    def _canonical(self, queue_url: str) -> tuple[str, QueueId]:
        """The URL a queue is registered under (see `canonical_queue_url`), and its identity; the queue must exist."""
        try:
            return canonical_queue_url(self._sqs, queue_url)
        except ClientError as exc:
            if _queue_missing(exc):
                raise ConfigError(f"queue does not exist: {queue_url}") from exc
            raise

    def _registered_as(self, queue_url: str, queue: QueueId | None, *, ref: QueueRef | None = None) -> str | None:
        """The key of the registration of this queue, if any: `queue_url` itself, or a registration written under
        another spelling (same account, region and name). An item that cannot be parsed still counts as one."""
        try:
            if self.registry.find(queue_url) is not None:
                return queue_url
        except UnreadableRegistrationError:
            return queue_url
        ref = ref or QueueRef.parse(queue_url)
        region = queue.region if queue is not None else (ref.region or self._sqs.meta.region_name)
        try:
            for config in self.registry.all():
                try:
                    other = QueueRef.parse(config.queue_url)
                except ConfigError:
                    continue
                if other.same_queue(ref, region=region):
                    return config.queue_url
        except Exception as exc:  # an unreadable item ends the scan: what was read is all we can compare
            logger.warning("cannot read every registration", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None

    def _check_queue(self, queue_url: str) -> builtins.list[str]:
        """The queue must exist; a queue without a dead-letter queue is allowed, with a warning."""
        try:
            policy = redrive_policy(self._sqs, queue_url)
        except ClientError as exc:
            if _queue_missing(exc):
                raise ConfigError(f"queue does not exist: {queue_url}") from exc
            raise
        if policy is not None:
            return []
        logger.warning("queue has no dead-letter queue", extra={"queue_url": queue_url})
        return [f"queue has no dead-letter queue, so a message that keeps failing is retried forever: {queue_url}"]

    def _check_timing(self, config: QueueConfig) -> builtins.list[str]:
        """A batch that outlasts stale_after_s lets the restart sweep start a second loop beside a slow one."""
        heartbeat_s, stale_after_s = self._settings.heartbeat_s, self._settings.stale_after_s
        longest_s = longest_visibility_timeout_s(self._settings)
        if scaling.fits_stale_after(
            visibility_timeout_s=config.visibility_timeout_s, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s
        ):
            return []
        logger.warning(
            "visibility timeout too long for the stack's stale_after_s",
            extra={
                "queue_url": config.queue_url,
                "visibility_timeout_s": config.visibility_timeout_s,
                "heartbeat_s": heartbeat_s,
                "stale_after_s": stale_after_s,
            },
        )
        return [
            f"visibility_timeout_s {config.visibility_timeout_s:g} + {defaults.UNPROVEN_HEARTBEATS} x heartbeat_s "
            f"{heartbeat_s:g} + {scaling.LONG_POLL_FLOOR_S:g} s (the shortest long poll) > the stack's "
            f"stale_after_s {stale_after_s:g}: a loop busy with a batch that long looks dead, and the restart sweep "
            "may start a second loop in its slot while it still runs (keep batches shorter, with a visibility "
            f"timeout of {max(1, longest_s)} s at most, or raise stale_after_s)"
        ]

    def _deferred_warning(self, change: Change, config: QueueConfig) -> builtins.list[str]:
        if not change.deferred:
            return []
        return [
            f"{change.deferred} loop(s) not started yet: their slots are closed while the loops last stopped there "
            f"finish (at most {self.fleet.grace_s(config.visibility_timeout_s):g} s after they were stopped); "
            "the restart function starts them within a minute after that"
        ]

    def _retire_tokens(self, config: QueueConfig) -> int:
        """Stop every loop of the queue: retire its live tokens."""
        change = self.fleet.converge(
            config.queue_url,
            0,
            allow_up=False,
            max_loops=config.max_loops,
            visibility_timeout_s=config.visibility_timeout_s,
        )
        return change.stopped

    def _undo_register(self, config: QueueConfig) -> None:
        """Best effort: remove whatever a failed registration wrote. The caller re-raises the original error.

        Tokens are retired, not deleted: a loop already started for one may run until its next heartbeat.
        """
        queue_url = config.queue_url
        steps = (
            ("alarms", lambda: self.alarms.delete(queue_url)),
            ("tokens", lambda: self._retire_tokens(config)),
            ("registration", lambda: self.registry.delete(queue_url)),
        )
        for what, undo in steps:
            try:
                undo()
            except Exception as exc:  # keep undoing the rest; the original error is what the caller sees
                logger.error(
                    "could not undo a failed registration",
                    extra={"queue_url": queue_url, "step": what, "error": str(exc)},
                )

    def _url_of(self, queue_arn: str) -> str:
        """A queue's URL from its ARN (arn:PARTITION:sqs:REGION:ACCOUNT:NAME)."""
        parts = queue_arn.split(":")
        if len(parts) != 6:
            raise ConfigError(f"not a queue ARN: {queue_arn!r}")
        return self._sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
