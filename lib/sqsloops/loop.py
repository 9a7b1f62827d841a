"""The loop: poll one queue until the invocation's time runs short, then hand over to a fresh invocation.

A loop stops only when its token is gone or carries another loop_id, or another invocation claimed its hop (see
`sqsloops.tokens`: a repeated event, or an older invocation outliving its hand-over), or its registration is gone
or disabled. It stops for good, retiring every token of its queue and marking the registration broken
(`sqsloops.registry.Broken`), when its queue does not exist (QueueDoesNotExist is no transient error: on AWS a loop
would otherwise bill its whole wall time, hop after hop, until someone deregisters it) or its registration cannot be
parsed; and at once, without receiving, when the registration is marked broken already.
Handler errors, malformed messages and AWS errors are logged and survived: each batch is settled by
`sqsloops.settle` (a failed message is hidden for a backoff and retried, and after the queue's maxReceiveCount SQS
moves it to the dead-letter queue). The loop itself only polls, proves its token, and hands over.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqsloops import defaults
from sqsloops.backoff import compute_backoff_s
from sqsloops.budget import work_budget
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Dispatchers, Outcome, to_lambda_record
from sqsloops.errors import ConfigError, HopClaimedError, NotRegisteredError, TokenLostError
from sqsloops.log import logger
from sqsloops.queues import QueueRef, queue_missing
from sqsloops.ratelimit import Pacer
from sqsloops.registry import UnreadableRegistrationError
from sqsloops.settle import Settler
from sqsloops.tokens import LONG_POLL_FLOOR_S, Token, retirement_grace_s

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from sqsloops.launcher import Launcher
    from sqsloops.registry import CachedRegistry, QueueConfig
    from sqsloops.settings import Settings
    from sqsloops.tokens import Tokens

# Why a loop stopped. Only TIME_LEFT hands over to a next invocation.
TIME_LEFT = "time_left"
TOKEN_LOST = "token_lost"  # noqa: S105 (a stop reason, not a secret)
SUPERSEDED = "superseded"  # another invocation claimed this hop or a later one: a repeated event, or a lingering one
DEREGISTERED = "deregistered"
DISABLED = "disabled"
TOO_SHORT = "too_short"  # started with less time than the reserve: recursing would spin, so it does not
# The registration cannot work: the loop retires the queue's tokens and marks the registration broken.
QUEUE_MISSING = "queue_missing"  # ReceiveMessage kept answering QueueDoesNotExist
UNREADABLE = "unreadable_registration"  # the registration's item cannot be parsed
BROKEN = "broken"  # the registration is marked broken already (by another loop)
BREAKING = (QUEUE_MISSING, UNREADABLE, BROKEN)
# A receive answering QueueDoesNotExist this many times in a row (backing off between) stops the loop: one such
# answer may be a queue created a moment ago that SQS has not propagated yet (AWS asks to wait a second).
QUEUE_MISSING_CONFIRMATIONS = 2

_TEXT_KEYS = ("queue_url", "token", "loop_id")
_LOG_KEYS = (*_TEXT_KEYS, "hop")


def clipped(text: str, limit: int = defaults.LOG_TEXT_MAX_CHARS) -> str:
    """`text` cut to `limit` characters, saying how long it was: what a log line or a reply may carry of it."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text):,} characters in all]"


@dataclass(frozen=True)
class LoopPayload:
    """The process function's event, and the payload of every self-invocation.

    `hop` numbers the invocations of one loop_id: 1 for the first, one more at each hand-over. An event without it
    (sent before hops existed) is the first hop of its loop_id, so it too is claimed at most once.
    """

    queue_url: str
    token: str
    loop_id: str
    hop: int = 1

    @classmethod
    def parse(cls, event: Any) -> LoopPayload:
        """Read `{"queue_url", "token", "loop_id", "hop"}`, or raise ConfigError saying (briefly) what is wrong."""
        if not isinstance(event, dict):
            raise ConfigError(f"process event must be an object, got {type(event).__name__}")
        values = {key: event.get(key) for key in _TEXT_KEYS}
        bad = [key for key, value in values.items() if not isinstance(value, str) or not value]
        if bad:
            raise ConfigError(f"process event lacks non-empty string(s): {', '.join(bad)}")
        texts = {key: str(value) for key, value in values.items()}
        long = [
            f"{key} ({len(value):,})" for key, value in texts.items() if len(value) > defaults.PAYLOAD_TEXT_MAX_CHARS
        ]
        if long:
            raise ConfigError(
                f"process event string(s) longer than {defaults.PAYLOAD_TEXT_MAX_CHARS} characters: {', '.join(long)}"
            )
        hop = event.get("hop", 1)
        if isinstance(hop, bool) or not isinstance(hop, int) or hop < 1:
            raise ConfigError(f"process event hop must be a whole number >= 1, got {clipped(repr(hop), 100)}")
        payload = cls(queue_url=texts["queue_url"], token=texts["token"], loop_id=texts["loop_id"], hop=hop)
        QueueRef.parse(payload.queue_url)
        return payload

    def to_token(self, *, claimed: bool = True) -> Token:
        """The token as this invocation holds it: what the launcher hands over (to hop + 1, or to this hop again
        when this invocation never got its claim through)."""
        return Token(
            queue_url=self.queue_url,
            slot=self.token,
            loop_id=self.loop_id,
            created_at=0.0,
            last_used=0.0,
            hop=self.hop if claimed else self.hop - 1,
        )

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


@dataclass(frozen=True)
class LoopResult:
    """How one invocation of a loop ended."""

    reason: str
    recursed: bool
    processed: int
    failed: int
    batches: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_loop(
    payload: LoopPayload,
    *,
    remaining_ms: Callable[[], int],
    settings: Settings,
    registry: CachedRegistry,
    tokens: Tokens,
    sqs: SQSClient,
    dispatchers: Dispatchers,
    launcher: Launcher,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    receive_sqs: SQSClient | None = None,
    request_id: str | None = None,
) -> LoopResult:
    """Poll payload.queue_url while remaining_ms() leaves more than settings.reserve_s, then recurse via launcher.

    receive_sqs long-polls (its read timeout outlasts the longest wait); sqs settles. One client may do both.
    request_id is the invocation's aws_request_id, recorded with its claim.
    """
    loop = _Loop(
        payload,
        remaining_ms=remaining_ms,
        settings=settings,
        registry=registry,
        tokens=tokens,
        sqs=sqs,
        receive_sqs=receive_sqs or sqs,
        dispatchers=dispatchers,
        clock=clock,
        rng=rng,
        request_id=request_id,
    )
    logger.append_keys(**payload.as_dict())
    try:
        reason = loop.poll()
        reason, recursed = loop.finish(reason, launcher)
        result = LoopResult(
            reason=reason, recursed=recursed, processed=loop.processed, failed=loop.failed, batches=loop.batches
        )
        logger.info("loop stopped", extra=result.as_dict())
        return result
    finally:
        logger.remove_keys(list(_LOG_KEYS))


POLL_ROUNDING_SLACK_S = 0.05  # what may pass between setting a poll's bound and sending it


def poll_wait_s(until_stop_s: float, wait_s: int) -> int:
    """WaitTimeSeconds (whole seconds) for a poll that should end `until_stop_s` from now.

    Rounded down, but with a little slack: a bound set a second ahead (the shortest long poll, when the heartbeat is
    due sooner) is a hair under a second by the time the poll is sent, and rounding that to a short poll made the
    loop sleep IDLE_SLEEP_S on an empty receive, about once a heartbeat: a job sent then waited ~1 s to start.
    """
    return max(0, int(min(float(wait_s), until_stop_s + POLL_ROUNDING_SLACK_S)))


@dataclass(kw_only=True)
class _Gathering:
    """One batch being gathered under a batching window (QueueConfig.batch_window_s).

    The window starts when the first messages of the batch come; or, when the previous batch showed that no backlog
    was waiting (it ended on a partial receive, or its last receive after a wait brought only messages sent during
    that wait: `trickling`), when that batch was settled: then the loop waits before its first receive, so a steady
    trickle costs one receive per window instead of one per message. After a partial receive it waits again
    (_Loop._pace_within); after a full one it receives again at once.

    Arrival rates are read from the messages' SentTimestamp (SQS's own clock, differences only), not from when
    receives returned: a receive capped at 10 would understate a faster trickle.
    """

    config: QueueConfig
    end_s: float  # the reserve, or the next heartbeat check: gathering never goes past it
    window_end_s: float | None  # None until the window has started
    partial: bool = False  # the last receive returned fewer messages than it asked for
    last_empty: bool = False  # ... and none at all
    slept: bool = False  # it waited for messages at least once
    waited_since_s: float | None = None  # wall time the last wait for messages began (None: the last receive did not)
    backlog: bool = False  # a receive after a wait brought a message sent before that wait began
    wait_s: int = 0  # the last receive's WaitTimeSeconds
    batch: list[MessageTypeDef] = field(default_factory=list)
    receives: int = 0

    @property
    def missing(self) -> int:
        return self.config.batch_size - len(self.batch)

    def stop_s(self) -> float:
        """When gathering stops, whatever it has: the window's end, or the reserve or heartbeat before it."""
        return self.end_s if self.window_end_s is None else min(self.window_end_s, self.end_s)

    def done(self, now_s: float) -> bool:
        if self.missing <= 0 or (self.config.batch_window_s <= 0 and self.receives):
            return True
        return bool(self.batch) and now_s >= self.stop_s()

    def hidden_extra_s(self, now_s: float) -> int:
        """Seconds beyond the visibility timeout a message received now must stay hidden: the rest of the window
        (the whole window, bounded by the reserve and heartbeat, when it starts with this receive)."""
        window_s = self.config.batch_window_s
        if window_s <= 0:
            return 0
        left_s = min(window_s, self.end_s - now_s) if self.window_end_s is None else self.stop_s() - now_s
        return max(0, math.ceil(left_s))

    def add(self, messages: list[MessageTypeDef], now_s: float) -> None:
        self.receives += 1
        self.batch.extend(messages)
        if self.waited_since_s is not None and messages:
            oldest_s = min(_sent_s(m) for m in messages)
            self.backlog = self.backlog or oldest_s < self.waited_since_s
        self.waited_since_s = None
        if messages and self.window_end_s is None and self.config.batch_window_s > 0:
            self.window_end_s = now_s + self.config.batch_window_s

    def arrival_per_s(self) -> float | None:
        """Messages per second, from the spread of the batch's SentTimestamps (None below two messages; inf for a
        batch sent in the same millisecond)."""
        sent = [_sent_s(m) for m in self.batch]
        sent = [t for t in sent if t > 0]
        if len(sent) < 2:
            return None
        spread_s = max(sent) - min(sent)
        return (len(sent) - 1) / spread_s if spread_s > 0 else math.inf

    @property
    def trickling(self) -> bool:
        """No backlog was waiting: the next window starts when this batch is settled."""
        if self.config.batch_window_s <= 0 or not self.batch:
            return False
        return self.partial or (self.slept and not self.backlog)


def _sent_s(message: MessageTypeDef) -> float:
    """When SQS accepted a message (its SentTimestamp, epoch seconds); 0 when it does not say."""
    try:
        return int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
    except ValueError:
        return 0.0


@dataclass
class _Counters:
    processed: int = 0
    failed: int = 0
    invocations: int = 0


class _Loop:
    def __init__(
        self,
        payload: LoopPayload,
        *,
        remaining_ms: Callable[[], int],
        settings: Settings,
        registry: CachedRegistry,
        tokens: Tokens,
        sqs: SQSClient,
        receive_sqs: SQSClient,
        dispatchers: Dispatchers,
        clock: Clock,
        rng: random.Random | None,
        request_id: str | None = None,
    ) -> None:
        self._payload = payload
        self._request_id = request_id
        self._receive_sqs = receive_sqs
        self._invocation_id = uuid.uuid4().hex  # tells our own retried claim from another delivery's
        self._claimed = False  # the token is ours for payload.hop (the first heartbeat is a claim)
        self._remaining_ms = remaining_ms
        self._settings = settings
        self._registry = registry
        self._tokens = tokens
        self._sqs = sqs
        self._dispatchers = dispatchers
        self._clock = clock
        self._rng = rng
        self._pacer = Pacer(clock=clock)
        self._settler = Settler(sqs=sqs, queue_url=payload.queue_url, clock=clock, rng=rng)
        self._region = sqs.meta.region_name
        self._queue_arn = QueueRef.parse(payload.queue_url).arn(self._region, sqs.meta.partition)
        self._config: QueueConfig | None = None
        self._live_loops: int | None = None
        self._pending = _Counters(invocations=1)  # added to the token at the next successful heartbeat
        self._next_heartbeat_s = float("-inf")
        self._proved_at_s = float("-inf")  # monotonic time of the last successful heartbeat
        self._errors_in_a_row = 0
        self._missing_in_a_row = 0  # receives in a row that answered QueueDoesNotExist
        self._broken_detail = ""  # what made the registration broken, for the mark and the log line
        self._work_total_s = 0.0  # this invocation's work time from the start of poll() to the reserve
        # Batching window: the last batch ended on a partial receive (messages trickle in), when it was settled,
        # and the rate messages came in at while it gathered.
        self._trickling = False
        self._settled_at_s = float("-inf")
        self._arrival_per_s: float | None = None
        self.processed = 0
        self.failed = 0
        self.batches = 0

    # -- time --------------------------------------------------------------------------------------------------

    def _left_s(self) -> float:
        """Seconds of polling left before the reserve the hand-over needs."""
        return self._remaining_ms() / 1000 - self._settings.reserve_s

    def _until_heartbeat_s(self) -> float:
        return max(0.0, self._next_heartbeat_s - self._clock.monotonic())

    def _may_call_dynamodb(self) -> bool:
        """Whether a DynamoDB call started now (a heartbeat, a registration read, a count) ends before the reserve.

        Its client's budget keeps it within HEARTBEAT_CALL_SHARE of heartbeat_s (sqsloops.clients). Inside the
        reserve the loop makes exactly two calls, the last heartbeat and the hand-over invoke, whose budgets add up
        to HANDOVER_SHARE of it: so a loop hands over in time even while DynamoDB hangs.
        """
        return self._left_s() > defaults.HEARTBEAT_CALL_SHARE * self._settings.heartbeat_s

    # -- the loop ----------------------------------------------------------------------------------------------

    def poll(self) -> str:
        """Receive, dispatch and settle batches until a stop reason comes up; return it."""
        if self._left_s() <= 0:
            logger.error(
                "invocation started with less time than the reserve: not polling, not recursing "
                "(the function timeout must exceed reserve_s)",
                extra={"remaining_ms": self._remaining_ms(), "reserve_s": self._settings.reserve_s},
            )
            return TOO_SHORT
        self._work_total_s = self._left_s()
        stop = self._heartbeat()  # the claim: nothing is received before it has got through
        if stop:
            return stop
        while True:
            if self._left_s() <= 0:
                return TIME_LEFT
            # Just before the reserve, the last heartbeat (in finish) proves the token instead.
            if self._until_heartbeat_s() <= 0 and self._may_call_dynamodb():
                stop = self._heartbeat()
                if stop:
                    return stop
            left_s = self._left_s()
            if left_s <= 0:
                return TIME_LEFT
            unproven_s = self._clock.monotonic() - self._proved_at_s
            if unproven_s > defaults.UNPROVEN_HEARTBEATS * self._settings.heartbeat_s:
                # DynamoDB keeps failing: consuming on without proof could overlap a loop that the restart sweep
                # or a scale-up starts in this slot. Pause (never stop) until a heartbeat gets through.
                self._back_off(left_s, "token not proven; not receiving until a heartbeat succeeds", unproven_s)
                continue
            try:
                stop = self._iterate(left_s)
            except Exception as exc:  # a transient AWS error, or anything unforeseen: never a reason to stop...
                stop = self._iteration_failed(left_s, exc)  # ... but a queue that does not exist
            if stop:
                return stop

    def _iteration_failed(self, left_s: float, exc: Exception) -> str | None:
        """Back off after a failed iteration; QUEUE_MISSING once the queue was found missing often enough."""
        if queue_missing(exc):
            self._missing_in_a_row += 1
            if self._missing_in_a_row >= QUEUE_MISSING_CONFIRMATIONS:
                self._broken_detail = f"queue does not exist: {clipped(self._payload.queue_url, 200)}"
                return QUEUE_MISSING
        self._back_off(left_s, "loop iteration failed; backing off", exc)
        return None

    def _back_off(self, left_s: float, message: str, detail: BaseException | float) -> None:
        """Sleep a jittered, growing pause (within the time left and the heartbeat cadence) and log why."""
        self._errors_in_a_row += 1
        pause_s = compute_backoff_s(
            self._errors_in_a_row, base_s=defaults.LOOP_ERROR_BASE_S, max_s=defaults.LOOP_ERROR_MAX_S, rng=self._rng
        )
        failed = isinstance(detail, BaseException)
        shown = clipped(f"{type(detail).__name__}: {detail}") if failed else f"unproven for {detail:.1f} s"
        logger.warning(message, extra={"detail": shown, "in_a_row": self._errors_in_a_row}, exc_info=failed)
        self._clock.sleep(min(pause_s, left_s, self._settings.heartbeat_s))

    def _iterate(self, left_s: float) -> str | None:
        stop = self._load_config(refresh=self._may_call_dynamodb())
        if stop:
            return stop
        config = self._config
        assert config is not None
        delay_s = self._pacer.delay_s()
        if delay_s > 0:
            self._clock.sleep(min(delay_s, left_s, max(self._until_heartbeat_s(), 0.001)))
            return None
        messages = self._gather(config, left_s)
        if not messages:
            return None
        self.batches += 1
        outcome = self._dispatch(config, messages)
        settled = self._settler.settle(config, messages, outcome)
        self._settled_at_s = self._clock.monotonic()
        self.processed += settled.processed
        self.failed += settled.failed
        self._pending.processed += settled.processed
        self._pending.failed += settled.failed
        if outcome.hand_over:  # what it handed back needs a fresh invocation's time: start it now
            logger.info("the handler asked for a fresh invocation; handing over early", extra={"left_s": left_s})
            return TIME_LEFT
        return None

    # -- receiving a batch -------------------------------------------------------------------------------------

    def _gather(self, config: QueueConfig, left_s: float) -> list[MessageTypeDef]:
        """The next batch: one receive without a batching window; with one, receives until the batch is full or
        the window ends (see _Gathering). Empty when nothing came (or a receive failed before anything came).

        Like the single receive, gathering never outlives the reserve, nor the next heartbeat check by more than
        the shortest long poll: what was gathered by then is dispatched, and the unproven bound
        (sqsloops.scaling.unproven_s) is unchanged.
        """
        now_s = self._clock.monotonic()
        gathering = _Gathering(
            config=config,
            end_s=now_s + min(left_s, max(self._until_heartbeat_s(), LONG_POLL_FLOOR_S)),
            window_end_s=self._settled_at_s + config.batch_window_s if self._trickling else None,
            partial=self._trickling,
        )
        while not gathering.done(self._clock.monotonic()):
            if (gathering.batch or gathering.window_end_s is not None) and not self._pace_within(gathering):
                if gathering.batch or self._pacer.delay_s() > 0:
                    break
                gathering.window_end_s = None  # the last batch's window ended before anything came: as usual
            got = self._receive_once(gathering)
            if got is None:  # the receive failed after some messages came: dispatch those
                break
            if not gathering.batch and not got:
                if gathering.wait_s < 1 and not gathering.slept:  # a short poll returned nothing: do not spin
                    self._clock.sleep(min(defaults.IDLE_SLEEP_S, left_s))
                self._trickling = False
                return []
            gathering.add(got, self._clock.monotonic())
        self._trickling = gathering.trickling
        if gathering.trickling:  # (behind a backlog the spread of SentTimestamps says nothing of arrivals)
            self._arrival_per_s = gathering.arrival_per_s() or self._arrival_per_s
        return gathering.batch

    def _pace_within(self, gathering: _Gathering) -> bool:
        """Wait inside a window, for the rate limiter or, after a partial receive, for more messages to arrive;
        whether to receive now (False: the window is over, or the rate limit holds past it).

        Receiving again at once would return about one message per call at a trickle, the cost a window exists to
        remove; so it sleeps until the window's end, or until the batch should be full at the rate messages came
        in so far (never after an empty receive: then to the window's end), and receives once more.
        """
        now_s = self._clock.monotonic()
        stop_s = gathering.stop_s()
        if now_s >= stop_s:
            return False
        waiting_s = 0.0  # for messages to arrive
        if gathering.partial:
            until_s = stop_s
            rate = gathering.arrival_per_s() or self._arrival_per_s
            if rate and not gathering.last_empty:
                until_s = min(until_s, now_s + gathering.missing / rate)  # (inf: at once)
            waiting_s = until_s - now_s
        pause_s = max(waiting_s, self._pacer.delay_s())
        if pause_s > 0:
            if waiting_s > 0:  # (waiting for the rate limit says nothing of arrivals)
                gathering.slept = True
                gathering.waited_since_s = self._clock.now()
            self._clock.sleep(min(pause_s, stop_s - now_s))
            gathering.partial = False  # messages had time to arrive: receive next
        return self._pacer.delay_s() <= 0

    def _receive_once(self, gathering: _Gathering) -> list[MessageTypeDef] | None:
        """One ReceiveMessage for the batch being gathered. Its messages stay hidden for the visibility timeout
        plus what is left of the window, so each has at least visibility_timeout_s left when the batch is
        dispatched, without a ChangeMessageVisibility call. None when it failed after some messages came."""
        config = gathering.config
        now_s = self._clock.monotonic()
        wanted = self._pacer.take(min(defaults.RECEIVE_MAX_MESSAGES, gathering.missing))
        # Long-poll, but wake up in time for the reserve, the next heartbeat and the window's end.
        gathering.wait_s = poll_wait_s(gathering.stop_s() - now_s, config.wait_s)
        try:
            messages = self._receive_sqs.receive_message(
                QueueUrl=self._payload.queue_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=gathering.wait_s,
                VisibilityTimeout=config.visibility_timeout_s + gathering.hidden_extra_s(now_s),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        except Exception as exc:
            self._pacer.refund(wanted)
            if not gathering.batch:
                raise
            logger.warning(
                "receive failed while gathering a batch; dispatching what came",
                extra={"gathered": len(gathering.batch), "error": clipped(f"{type(exc).__name__}: {exc}")},
            )
            return None
        self._errors_in_a_row = 0
        self._missing_in_a_row = 0
        self._pacer.refund(wanted - len(messages))
        gathering.partial = len(messages) < wanted
        gathering.last_empty = not messages
        return messages

    # -- registration and heartbeat ----------------------------------------------------------------------------

    def _load_config(self, *, refresh: bool) -> str | None:
        """Refresh the registration (cached; not at all unless `refresh`, once read); a stop reason if it is gone
        or disabled."""
        if not refresh and self._config is not None:
            return None
        try:
            config = self._registry.get(self._payload.queue_url)
        except NotRegisteredError:
            return DEREGISTERED
        except UnreadableRegistrationError as exc:
            self._broken_detail = clipped(str(exc), 500)
            return UNREADABLE
        except Exception as exc:
            if self._config is None:
                raise  # nothing to go on yet: back off and try again
            logger.warning("cannot re-read the registration; keeping the last one", extra={"error": clipped(str(exc))})
            return None
        stop = self._stop_for(config)
        if stop:
            return stop
        previous, self._config = self._config, config
        if previous is None or (previous.rate_per_s, previous.batch_size) != (config.rate_per_s, config.batch_size):
            self._apply_rate(refresh_live_loops=self._live_loops is None)
        return None

    def _stop_for(self, config: QueueConfig) -> str | None:
        """BROKEN or DISABLED when the registration says this loop must not run."""
        broken = config.broken
        if broken is not None:
            self._broken_detail = broken.reason
            return BROKEN
        return None if config.enabled else DISABLED

    def _heartbeat(self) -> str | None:
        """Claim (first) or prove the token for this hop, and flush counters; a stop reason when it is not ours.

        Any other failure (throttling, 5xx): None, carry on; the next iteration tries again, and an invocation whose
        claim has not got through receives nothing (it is unproven).
        """
        pending = self._pending
        payload = self._payload
        counters = {"processed": pending.processed, "failed": pending.failed, "invocations": pending.invocations}
        try:
            if self._claimed:
                self._tokens.heartbeat(payload.queue_url, payload.token, payload.loop_id, hop=payload.hop, **counters)
            else:
                self._tokens.claim(
                    payload.queue_url,
                    payload.token,
                    payload.loop_id,
                    hop=payload.hop,
                    invocation_id=self._invocation_id,
                    request_id=self._request_id,
                    **counters,
                )
        except HopClaimedError as exc:
            message = (
                "hop claimed by a later invocation: stopping (it consumes now)"
                if self._claimed
                else "hop already claimed: this event was delivered more than once (or late); stopping without "
                "receiving"
            )
            logger.warning(message, extra={"error": clipped(str(exc)), "found_hop": exc.found_hop})
            return SUPERSEDED
        except TokenLostError as exc:
            logger.info("token lost: the loop was scaled down or taken over", extra={"error": clipped(str(exc))})
            return TOKEN_LOST
        except Exception as exc:  # throttling, 5xx, anything else: retried at the next iteration
            action = "heartbeat" if self._claimed else "claim"
            logger.warning(f"{action} failed; carrying on", extra={"error": clipped(f"{type(exc).__name__}: {exc}")})
            return None
        self._claimed = True
        self._pending = _Counters()
        self._proved_at_s = self._clock.monotonic()
        self._next_heartbeat_s = self._proved_at_s + self._settings.heartbeat_s
        if self._config is not None and self._config.rate_per_s:
            self._apply_rate(refresh_live_loops=self._may_call_dynamodb())
        return None

    def _apply_rate(self, *, refresh_live_loops: bool) -> None:
        """Pace to the registration's rate split across the live loops (recounted at heartbeats)."""
        config = self._config
        if config is None or not config.rate_per_s:
            self._pacer.set_rate(None, batch_size=config.batch_size if config else defaults.BATCH_SIZE)
            return
        if refresh_live_loops:
            try:
                self._live_loops = max(1, self._tokens.count(self._payload.queue_url))
            except Exception as exc:
                logger.warning("cannot count live loops; keeping the last count", extra={"error": clipped(str(exc))})
        live = self._live_loops or 1
        self._pacer.set_rate(config.rate_per_s / live, batch_size=config.batch_size)

    # -- dispatch ----------------------------------------------------------------------------------------------

    def _dispatch(self, config: QueueConfig, messages: Sequence[MessageTypeDef]) -> Outcome:
        records = [to_lambda_record(m, queue_arn=self._queue_arn, region=self._region) for m in messages]
        try:
            with work_budget(self._left_s, total_s=self._work_total_s):
                return self._dispatchers.for_config(config).dispatch(records)
        except Exception as exc:  # dispatchers do not raise; if one does, nothing may be lost
            logger.exception("dispatch raised")
            return Outcome.all_failed(records, f"dispatch raised {type(exc).__name__}: {exc}")

    # -- the end -----------------------------------------------------------------------------------------------

    def finish(self, reason: str, launcher: Launcher) -> tuple[str, bool]:
        """Flush counters with a last heartbeat, then hand over to a fresh invocation if time ran out.

        Receiving has stopped by now, so the next invocation never overlaps this one. It gets hop + 1; or this hop
        again if this invocation's claim never got through (then whichever copy claimed it, if any, goes on alone).
        """
        if reason in (TOO_SHORT, TOKEN_LOST, SUPERSEDED):
            return reason, False
        lost = self._heartbeat()
        if reason in BREAKING:
            self._break(reason)
            return reason, False
        if reason != TIME_LEFT:
            return reason, False
        if lost:
            return lost, False
        try:
            launcher.start(self._payload.to_token(claimed=self._claimed))
        except Exception as exc:
            logger.error(
                "cannot start the next invocation; the restart sweep will resume this token",
                extra={"error": clipped(f"{type(exc).__name__}: {exc}")},
            )
            return reason, False
        return reason, True

    def _break(self, reason: str) -> None:
        """Stop the queue's loops for good: mark the registration broken, then retire every live token of the queue.

        Marked first, so that no sweep or scale-up starts a loop in a slot retired here. Each step is tried on its own
        and logged when it fails (the other loops of the queue come to the same end at their next receive).
        """
        queue_url = self._payload.queue_url
        detail = self._broken_detail or reason
        marked, retired = False, 0
        try:
            if reason != BROKEN:
                marked = self._registry.mark_broken(queue_url, detail)
        except Exception as exc:
            logger.error(
                "cannot mark the registration broken", extra={"error": clipped(f"{type(exc).__name__}: {exc}")}
            )
        visibility_timeout_s = self._config.visibility_timeout_s if self._config else defaults.VISIBILITY_TIMEOUT_S
        grace_s = retirement_grace_s(heartbeat_s=self._settings.heartbeat_s, visibility_timeout_s=visibility_timeout_s)
        try:
            for token in self._tokens.list(queue_url):
                retired += self._tokens.retire(queue_url, token.slot, grace_s=grace_s)
        except Exception as exc:
            logger.error("cannot retire the queue's tokens", extra={"error": clipped(f"{type(exc).__name__}: {exc}")})
        logger.error(
            "registration broken: loop stopped for good, the queue's loops retired; fix the cause, then register the "
            "queue again (it replaces the broken registration) or deregister it",
            extra={"broken_reason": detail, "stop_reason": reason, "marked": marked, "tokens_retired": retired},
        )
