"""The `http:` handler kind: jobs whose code lives in a web app. The loop POSTs each job message to the app, signed.

A registration `http:https://app.example.com/jobs/{job}#timeout=30s&receipt_timeout=1h&retries=10` (handlers.py
parses and checks it at registration: https only, plain http to the loopback address for local use; the fragment,
which no HTTP client sends, carries this kind's options) makes its loops POST each message's envelope JSON to the
URL, `{job}` replaced by the job's name, with these headers:

    X-Sqsloops-Timestamp  unix seconds          X-Sqsloops-Job-Id   the job id (use it to make the work idempotent)
    X-Sqsloops-Signature  v1=<hex>              X-Sqsloops-Job      the job's name
    X-Sqsloops-Attempt    1-based attempt       Content-Type        application/json

The signature is HMAC-SHA256 over `timestamp + "." + body` with the stack's secret (Secrets Manager, JSON
`{"current": ..., "previous"?: ...}`; signing uses `current`, `verify()` accepts either, so a rotation puts the old
value in `previous` first). The receiving side checks it with `verify(headers, body, secret)`.

Every http: job is tracked (the Jobs table holds its attempts, and its receipt). What each answer means, by the
rule "an attempt is spent only when the job ran and failed":

    2xx (not 202)            succeeded; a JSON body is the job's result
    202 Accepted             the app runs it and reports later: the job waits for its receipt (below)
    4xx but 408, 429         failed for good: dead (to the DLQ), no retry
    5xx, no answer in time   it ran (or may have) and failed: an attempt spent, retried with the retry policy's
                             backoff, or after Retry-After when the app sent one
    408, 429                 the app did not run it (too slow a request, rate limited): nothing spent, handed back
                             after Retry-After (else the queue's backoff)
    unreachable              connection refused, DNS, TLS, connect timeout, or the request could not be sent:
                             nothing ran, nothing spent, the message is handed back; nothing is lost while the
                             web app is down (SQS's maxReceiveCount, 100 on job queues, is the only ceiling)

The connection is opened before the row is marked running, so an app that is down never costs an attempt; a
request that then cannot be sent gives its attempt back (`JobStore.hand_back`). A timeout after the request was
sent counts: the app has the job and may have run it (an endpoint that always hangs must reach the DLQ).

The request's timeout is the registration's `timeout`, bounded by the loop's work budget (sqsloops.budget): a job
whose timeout does not fit in what is left of this invocation is handed to the next one, not cut short.

**Receipts.** A 202 leaves the row `running` with a receipt deadline (now + `receipt_timeout`) and the message's
queue URL and receipt handle; the message stays in the queue, hidden, and is deleted only once the job is settled:
- Where the receipt handle lives: in the job's row (`receipt_handle`), renewed on every receive, so the receipt
  route (`POST /jobs/{id}/receipt`, jobs/receipts.py) can make the message visible at once for the loop to settle.
- Visibility across hand-overs: the loop that got the 202 hides the message for one poll (receipt_timeout/8, at
  least 10 s, never past the deadline). When it comes back, to this loop or the next invocation's, the runner finds
  the row waiting and hides it again, without a second POST, until the receipt or the deadline: a succeeded
  receipt (row succeeded) deletes it, a failed one is a failed attempt (retry or dead by the policy), and no
  receipt by the deadline is a failed attempt too ("no receipt within ..."), retried with a new POST.
- SQS's 12 h ceiling: a message's visibility cannot be extended past 12 h from a receive; each hold here is one
  poll, far under it, and `receipt_timeout` is refused at registration at 12 h or more.
- FIFO queues: a waiting job's message is in flight, so SQS delivers nothing more of its message group until the
  job is settled: the group is blocked while the job waits (other groups go on).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqsloops.budget import current_budget
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Failure, Outcome, Record
from sqsloops.errors import ConfigError, HandlerError, SqsloopsError, describe
from sqsloops.handlers import HttpTarget, check_http_target, parse_http_target
from sqsloops.jobs.entry import bare_message
from sqsloops.jobs.envelope import RUN_AT_PAST_TOLERANCE_S, Envelope
from sqsloops.jobs.errors import MalformedEnvelopeError, Retry
from sqsloops.jobs.retry_policy import MAX_RETRY_DELAY_S, Decision, RetryPolicy
from sqsloops.jobs.states import CANCELLED, DEAD, RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobRecord, JobStore, Refused
from sqsloops.log import logger

if TYPE_CHECKING:
    from sqsloops.registry import QueueConfig

SIGNATURE_VERSION = "v1"
TIMESTAMP_HEADER = "X-Sqsloops-Timestamp"
SIGNATURE_HEADER = "X-Sqsloops-Signature"
JOB_ID_HEADER = "X-Sqsloops-Job-Id"
JOB_HEADER = "X-Sqsloops-Job"
ATTEMPT_HEADER = "X-Sqsloops-Attempt"
DEFAULT_MAX_AGE_S = 300.0  # a signed request older (or newer) than this is refused: a replay window of 5 minutes
SECRET_TTL_S = 300.0  # an execution environment re-reads the secret this often, so a rotation reaches every loop
MAX_RESPONSE_BYTES = 1024 * 1024  # what is read of an answer; the Jobs table keeps results up to 64 KiB
RECEIPT_POLLS = 8  # a waiting job's message comes back this many times per receipt_timeout (maxReceiveCount 100)
MIN_RECEIPT_POLL_S = 10.0
RUNNING_ELSEWHERE_MARGIN_S = 1.0
NOT_RUN_STATUSES = frozenset({408, 429})
USER_AGENT = "sqsloops-http-worker/1"


class InvalidSignatureError(SqsloopsError):
    """A signed request (or receipt) whose signature, timestamp or secret does not check out."""


class HttpJobError(Exception):
    """What the web app answered (or failed to), as the exception the retry policy decides on."""


# ---------------------------------------------------------------- signing and verifying


@dataclass(frozen=True)
class Secrets:
    """The signing secret: `current` signs, `current` and `previous` (during a rotation) verify."""

    current: str
    previous: str | None = None

    @classmethod
    def parse(cls, text: str) -> Secrets:
        """The secret's JSON value, `{"current": ..., "previous"?: ...}`; ConfigError for anything else."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        current = data.get("current") if isinstance(data, dict) else None
        previous = data.get("previous") if isinstance(data, dict) else None
        if not isinstance(current, str) or not current:
            raise ConfigError('the http workers secret must be JSON {"current": "...", "previous"?: "..."}')
        return cls(current, previous if isinstance(previous, str) and previous else None)

    def verifying(self) -> tuple[str, ...]:
        return (self.current,) if self.previous is None else (self.current, self.previous)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `timestamp + "." + body` under `secret`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def sign(body: bytes, secret: str, *, now_s: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for `body` (for a receipt sent back, or a test)."""
    timestamp = str(int(time.time() if now_s is None else now_s))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | Secrets | Mapping[str, Any] | Iterable[str],
    *,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now_s: float | None = None,
) -> None:
    """Check a request the loop signed (or a receipt signed the same way); InvalidSignatureError says why not.

    `headers` in any case; `body` the raw bytes as received (not re-serialized JSON); `secret` one value, the
    secret's JSON as a dict, `Secrets`, or several values (any may match: current and previous during a rotation).
    The timestamp must be within `max_age_s` of now, either way. The comparison is constant-time.
    """
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp or not given:
        raise InvalidSignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not timestamp.isdigit():
        raise InvalidSignatureError(f"{TIMESTAMP_HEADER} must be unix seconds, got {timestamp[:40]!r}")
    now = time.time() if now_s is None else now_s
    if abs(now - int(timestamp)) > max_age_s:
        raise InvalidSignatureError(f"the timestamp is more than {max_age_s:g} s away from now: refused (replay?)")
    raw = body.encode() if isinstance(body, str) else body
    if not any(hmac.compare_digest(signature(value, timestamp, raw), given) for value in _secret_values(secret)):
        raise InvalidSignatureError("the signature does not match (wrong secret, or the body was changed)")


def _secret_values(secret: str | Secrets | Mapping[str, Any] | Iterable[str]) -> tuple[str, ...]:
    if isinstance(secret, str):
        values: tuple[str, ...] = (secret,)
    elif isinstance(secret, Secrets):
        values = secret.verifying()
    elif isinstance(secret, Mapping):
        values = Secrets.parse(json.dumps(dict(secret))).verifying()
    else:
        values = tuple(secret)
    if not values or not all(isinstance(value, str) and value for value in values):
        raise ConfigError("verify() needs a non-empty secret")
    return values


class SecretSource:
    """The stack's signing secret from Secrets Manager, cached per execution environment for `ttl_s`.

    A read that fails after a good one keeps the cached value for another `ttl_s` (logged): a Secrets Manager
    hiccup does not stop the loops. The first read failing raises (the job is handed back, nothing spent).
    """

    def __init__(
        self, *, secretsmanager: Any, secret_id: str, clock: Clock = SYSTEM_CLOCK, ttl_s: float = SECRET_TTL_S
    ) -> None:
        self._client = secretsmanager
        self._secret_id = secret_id
        self._clock = clock
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: Secrets | None = None
        self._read_at = -float("inf")

    def get(self) -> Secrets:
        with self._lock:
            if self._cached is not None and self._clock.monotonic() - self._read_at < self._ttl_s:
                return self._cached
            try:
                value = self._client.get_secret_value(SecretId=self._secret_id)["SecretString"]
                self._cached = Secrets.parse(value)
            except Exception as exc:
                if self._cached is None:
                    raise
                logger.warning(
                    "cannot re-read the http workers secret; using the cached one", extra={"error": str(exc)}
                )
            self._read_at = self._clock.monotonic()
            return self._cached


# ---------------------------------------------------------------- the kind


class HttpKind:
    """`http:URL`: POSTs each job message to a web app (module doc). Needs the Jobs table and the signing secret."""

    def __init__(
        self,
        *,
        store: Callable[[], JobStore | None],
        secrets: Callable[[], SecretSource | None],
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._clock = clock
        self._rng = rng

    def validate(self, target: str) -> None:
        check_http_target(target)

    def build(self, target: str, config: QueueConfig) -> HttpDispatcher:
        spec = parse_http_target(target)
        store = self._store()
        if store is None:
            raise HandlerError("http: jobs are tracked, and this stack has no Jobs table: set SQSLOOPS_JOBS_TABLE")
        secrets = self._secrets()
        if secrets is None:
            raise HandlerError("http: requests are signed, and no secret is set: set SQSLOOPS_HTTP_SECRET_ARN")
        return HttpDispatcher(
            spec, store=store, secrets=secrets, queue_url=config.queue_url, clock=self._clock, rng=self._rng
        )


class HttpDispatcher:
    """Runs each message of a batch as one POST; on a FIFO queue a group stops at its first unsettled message."""

    def __init__(
        self,
        spec: HttpTarget,
        *,
        store: JobStore,
        secrets: SecretSource,
        queue_url: str,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.policy = RetryPolicy() if spec.retries is None else RetryPolicy(retries=spec.retries)
        self.store = store
        self.secrets = secrets
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.clock = clock
        self.rng = rng

    def dispatch(self, records: list[Record]) -> Outcome:
        outcome = Outcome()
        blocked: set[str] = set()
        for record in records:
            group = record.get("attributes", {}).get("MessageGroupId") if self.fifo else None
            if group is not None and group in blocked:
                reason = "an earlier message of its group is not settled: kept behind it"
                outcome += Outcome(failed=(Failure(record["messageId"], reason, retry_in_s=0.0),))
                continue
            try:
                one = _Delivery(self, record).run()
            except Exception as exc:  # a bug here: the message is retried with the queue's backoff
                logger.exception("http job runner raised", extra={"message_id": record.get("messageId")})
                one = Outcome(failed=(Failure(record["messageId"], f"http runner raised {exc!r}"),))
            if group is not None and one.failed:
                blocked.add(group)
            outcome += one
        return outcome


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NotReachedError(Exception):
    """The request did not reach the app (nothing ran)."""


class _Delivery:
    """One message: gate on the row, connect, mark running, POST, settle by the answer (module doc)."""

    def __init__(self, dispatcher: HttpDispatcher, record: Record) -> None:
        self.d = dispatcher
        self.record = record
        self.message_id: str = record["messageId"]
        self.envelope: Envelope | None = None

    # -- outcomes

    def done(self, why: str) -> Outcome:
        logger.info(f"http job settled: {why}", extra=self._keys())
        return Outcome(succeeded=(self.message_id,))

    def held(self, reason: str, delay_s: float | None, *, hand_over: bool = False) -> Outcome:
        return Outcome(failed=(Failure(self.message_id, self._why(reason), retry_in_s=delay_s),), hand_over=hand_over)

    def dead(self, reason: str) -> Outcome:
        logger.error("http job is dead; to the dead-letter queue", extra={**self._keys(), "reason": reason})
        return Outcome(failed=(Failure(self.message_id, self._why(reason), dead=True),))

    def _why(self, reason: str) -> str:
        env = self.envelope
        return reason if env is None else f"job {env.job} {env.id}: {reason}"

    def _keys(self) -> dict[str, Any]:
        env = self.envelope
        return {"message_id": self.message_id} if env is None else {"job_id": env.id, "job": env.job}

    # -- the steps

    def run(self) -> Outcome:
        now = self.d.clock.now()
        try:
            entry = bare_message(self.record)
            self.envelope = entry.wrap(now=now) if entry is not None else Envelope.parse(self.record.get("body", ""))
        except MalformedEnvelopeError as exc:
            return self.dead(str(exc))
        envelope = self.envelope
        due = envelope.run_at.timestamp() if envelope.run_at is not None else None
        if due is not None and due > now + RUN_AT_PAST_TOLERANCE_S and not envelope.scheduled:
            return self.held("not due yet", min(due - now, MAX_RETRY_DELAY_S))
        try:
            row = self.d.store.get(envelope.id)
        except Exception as exc:  # the Jobs table is throttled or down: nothing ran, nothing is spent
            return self.held(f"Jobs table error before the start: {describe(exc)}", None)
        if row is not None:
            gated = self.gate(row)
            if gated is not None:
                return gated
        attempt = max(envelope.attempt, row.attempts if row is not None else 0) + 1
        return self.post(attempt)

    def gate(self, row: JobRecord) -> Outcome | None:
        """What to do instead of a POST, given the row; None: POST it."""
        if row.job != self.envelope_job:
            return self.dead(f"job id {row.id} belongs to job {row.job}, not {self.envelope_job}")
        if row.state in (CANCELLED, SUCCEEDED):
            return self.done(f"{row.state.value} already")
        if row.state is DEAD:
            return self.dead(f"job is dead already: {row.last_error or 'no error recorded'}")
        if row.state is not RUNNING:
            return None
        if row.receipt is not None or row.waiting_for_receipt:
            return self.gate_receipt(row)
        left_s = (row.started_at or 0.0) + self.d.spec.timeout_s + RUNNING_ELSEWHERE_MARGIN_S - self.d.clock.now()
        return self.held(f"attempt {row.attempts} is being posted elsewhere", left_s) if left_s > 0 else None

    def gate_receipt(self, row: JobRecord) -> Outcome:
        """A running row that waits for its receipt, or got a failed one (it may come before the 202 is recorded)."""
        spec, now = self.d.spec, self.d.clock.now()
        if row.receipt == "failed":
            return self.failed(row.attempts, f"the web app reported a failure: {row.last_error or 'no error'}")
        left_s = (row.receipt_deadline or now) - now
        if left_s <= 0:
            return self.failed(row.attempts, f"no receipt within {spec.receipt_timeout_s:g} s of its 202")
        self.renew_handle(row)
        poll_s = max(MIN_RECEIPT_POLL_S, spec.receipt_timeout_s / RECEIPT_POLLS)
        return self.held("waiting for its receipt", min(left_s, poll_s))

    @property
    def envelope_job(self) -> str:
        assert self.envelope is not None
        return self.envelope.job

    def renew_handle(self, row: JobRecord) -> None:
        handle = self.record.get("receiptHandle", "")
        if not handle or handle == row.receipt_handle:
            return
        try:
            self.d.store.renew_receipt_handle(row.id, attempt=row.attempts, receipt_handle=handle)
        except Exception as exc:  # the route then cannot nudge this message: the next poll settles it
            logger.warning("cannot keep the receipt handle", extra={**self._keys(), "error": describe(exc)})

    def timeout_s(self) -> float | Outcome:
        """The POST's timeout: the registration's, bounded by the work budget; an Outcome when it must wait."""
        timeout_s = self.d.spec.timeout_s
        budget = current_budget()
        if budget is None:
            return timeout_s
        left_s = budget.left_s()
        if left_s >= timeout_s:
            return timeout_s
        if timeout_s <= budget.total_s:
            reason = f"{left_s:.0f} s left in this invocation, under the {timeout_s:g} s timeout: handed over"
            return self.held(reason, 0.0, hand_over=True)
        return max(1.0, left_s)  # not even a fresh invocation has that long (a compressed local stack)

    def post(self, attempt: int) -> Outcome:
        envelope = self.envelope
        assert envelope is not None
        timeout = self.timeout_s()
        if isinstance(timeout, Outcome):
            return timeout
        try:
            secrets = self.d.secrets.get()
        except Exception as exc:
            return self.held(f"cannot read the signing secret: {describe(exc)}", None)
        url = self.d.spec.url_for(envelope.job)
        deadline = time.monotonic() + timeout
        try:
            connection = _connect(url, timeout)
        except OSError as exc:
            logger.warning("web app unreachable; handed back, nothing spent", extra={**self._keys(), "url": url})
            return self.held(f"web app unreachable ({url}): {describe(exc)}", None)
        try:
            return self.mark_running(attempt) or self.exchange(connection, url, attempt, secrets, deadline=deadline)
        finally:
            connection.close()

    def exchange(
        self, connection: http.client.HTTPConnection, url: str, attempt: int, secrets: Secrets, *, deadline: float
    ) -> Outcome:
        """The signed request on an open connection, the job marked running; the answer decides."""
        envelope = self.envelope
        assert envelope is not None
        body = envelope.to_json().encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            JOB_ID_HEADER: envelope.id,
            JOB_HEADER: envelope.job,
            ATTEMPT_HEADER: str(attempt),
            **sign(body, secrets.current),  # wall time: the app checks it on its own clock
        }
        try:
            reply = _exchange(connection, url, body, headers, deadline=deadline)
        except _NotReachedError as exc:
            return self.give_back(attempt, f"the request could not be sent to {url}: {exc}", None)
        except (OSError, http.client.HTTPException) as exc:
            return self.failed(attempt, f"no answer from {url} in time ({self.d.spec.timeout_s:g} s): {exc!r}")
        return self.answer(attempt, reply)

    def mark_running(self, attempt: int) -> Outcome | None:
        envelope = self.envelope
        assert envelope is not None
        try:
            marked = self.d.store.mark_running(
                envelope.id, job=envelope.job, attempt=attempt, enqueued_at=envelope.enqueued_at.timestamp()
            )
        except Exception as exc:
            return self.held(f"Jobs table error before the start: {describe(exc)}", None)
        if isinstance(marked, JobRecord):
            return None
        current = marked.current
        gated = self.gate(current) if current is not None else None
        return gated or self.held(f"the Jobs table refused the start ({marked.detail}); handed back", None)

    # -- the answer

    def answer(self, attempt: int, reply: _Reply) -> Outcome:
        status = reply.status
        retry_after = _retry_after_s(reply.headers.get("retry-after"), now_s=self.d.clock.now())
        detail = f"HTTP {status} from the web app" + (f": {_snippet(reply.body)}" if reply.body else "")
        if status == 202:
            return self.accepted(attempt)
        if 200 <= status < 300:
            return self.succeeded(reply.body)
        if status in NOT_RUN_STATUSES:
            return self.give_back(attempt, detail, retry_after)
        if 400 <= status < 500:
            return self.failed(attempt, detail, dead=True)
        return self.failed(attempt, detail, retry_after_s=retry_after)

    def succeeded(self, body: bytes) -> Outcome:
        assert self.envelope is not None
        result_json = _result_json(body)
        self.write("succeeded", lambda: self.d.store.mark_succeeded(self.envelope_id, result_json=result_json))
        return self.done("succeeded")

    @property
    def envelope_id(self) -> str:
        assert self.envelope is not None
        return self.envelope.id

    def accepted(self, attempt: int) -> Outcome:
        spec, now = self.d.spec, self.d.clock.now()
        handle = self.record.get("receiptHandle", "")
        try:
            waiting = self.d.store.wait_for_receipt(
                self.envelope_id,
                attempt=attempt,
                deadline=now + spec.receipt_timeout_s,
                queue_url=self.d.queue_url,
                receipt_handle=handle,
            )
        except Exception as exc:  # the row says running: the next delivery waits out the timeout, then posts again
            logger.error("cannot record the 202; the job may be posted again", extra={"error": describe(exc)})
            return self.held(f"accepted, but the wait could not be recorded: {describe(exc)}", spec.timeout_s)
        if isinstance(waiting, Refused):  # the receipt came first
            current = waiting.current
            gated = self.gate(current) if current is not None else None
            return gated or self.held(f"accepted; {waiting.detail}", None)
        logger.info("http job accepted (202); waiting for its receipt", extra=self._keys())
        poll_s = max(MIN_RECEIPT_POLL_S, spec.receipt_timeout_s / RECEIPT_POLLS)
        return self.held("accepted (202): waiting for its receipt", min(spec.receipt_timeout_s, poll_s))

    def give_back(self, attempt: int, reason: str, delay_s: float | None) -> Outcome:
        """It did not run: the attempt is given back, the message handed back for `delay_s` (None: backoff)."""
        next_run_at = self.d.clock.now() + (delay_s or 0.0)
        self.write(
            "handed back",
            lambda: self.d.store.hand_back(self.envelope_id, attempt=attempt, error=reason, next_run_at=next_run_at),
        )
        logger.warning("the web app did not run the job; handed back, nothing spent", extra={"reason": reason})
        return self.held(reason, delay_s)

    def failed(self, attempt: int, error: str, *, dead: bool = False, retry_after_s: float | None = None) -> Outcome:
        """It ran and failed: the retry policy decides (Retry-After, when given, sets the delay)."""
        exc: Exception = Retry(retry_after_s, reason=error) if retry_after_s is not None else HttpJobError(error)
        decision = (
            Decision(dead=True, delay_s=0.0, reason="the web app refused it (4xx): not retried")
            if dead
            else self.d.policy.decide(max(attempt, 1), exc, rng=self.d.rng)
        )
        store, job_id = self.d.store, self.envelope_id
        if decision.dead:
            self.write("dead", lambda: store.mark_dead(job_id, attempts=attempt, error=error))
            return self.dead(f"{decision.reason}: {error}")
        next_run_at = self.d.clock.now() + decision.delay_s
        self.write(
            "retrying",
            lambda: store.mark_retrying(job_id, attempts=attempt, error=error, next_run_at=next_run_at),
        )
        logger.warning("http job failed; it will be retried", extra={"error": error, "retry_in_s": decision.delay_s})
        return Outcome(failed=(Failure(self.message_id, self._why(error), retry_in_s=decision.delay_s),))

    def write(self, what: str, call: Callable[[], JobRecord | Refused]) -> None:
        try:
            written = call()
        except Exception as exc:
            logger.error(f"cannot record the job as {what}; its row is stale", extra={"error": describe(exc)})
            return
        if isinstance(written, Refused):
            logger.warning(f"the Jobs table refused {what}", extra={"detail": written.detail})


# ---------------------------------------------------------------- one POST, by http.client


def _connect(url: str, timeout_s: float) -> http.client.HTTPConnection:
    """An open connection (TCP, and TLS for https); OSError when the app cannot be reached."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout_s)
    connection.connect()
    return connection


def _exchange(
    connection: http.client.HTTPConnection, url: str, body: bytes, headers: Mapping[str, str], *, deadline: float
) -> _Reply:
    """Send the request (_NotReachedError if it cannot be sent), then read the answer by `deadline` (OSError or
    HTTPException when there is none in time)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
    except OSError as exc:
        raise _NotReachedError(describe(exc)) from exc
    response = connection.getresponse()
    if connection.sock is not None:
        connection.sock.settimeout(max(0.1, deadline - time.monotonic()))
    data = response.read(MAX_RESPONSE_BYTES)
    return _Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)


def _retry_after_s(value: str | None, *, now_s: float) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), capped at SQS's 12 h; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_s
        except (TypeError, ValueError):
            return None
    return min(max(0.0, seconds), MAX_RETRY_DELAY_S)


def _result_json(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        logger.info("the web app's answer is not JSON: no result kept")
        return None


def _snippet(body: bytes) -> str:
    return body[:300].decode("utf-8", errors="replace").strip()
