"""Asynchronous (Event) invocations, as Lambda queues them: wait for a free slot, age out, retry on failure.

One dispatcher thread per function takes events in order while the function's concurrency allows. An event older
than the function's MaximumEventAgeInSeconds when its turn comes is dropped; a failed invocation is retried up to
MaximumRetryAttempts times, 1 then 2 minutes later, its age still counted from the first enqueue. Ages and delays
are divided by the time scale. SNS deliveries to Lambda come through here too (lambda_patches).

An event that fails its last attempt or ages out goes to the function's OnFailure destination when it has one
(EventInvokeConfig DestinationConfig, which moto stores but never acts on): a Lambda destination is invoked
asynchronously with Lambda's invocation record (`destination_record`); other destination types are not delivered
(a line says so).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from moto.awslambda.utils import get_backend

from sqsloops.local.pools import FunctionPool, Outcome, Pools
from sqsloops.local.worker_client import Echo

ASYNC_RETRY_DELAYS_S = (60.0, 120.0)  # Lambda's async retries come about 1 and 2 minutes later
DEFAULT_MAX_EVENT_AGE_S = 21600
DEFAULT_RETRY_ATTEMPTS = 2
RETRIES_EXHAUSTED, EVENT_AGE_EXCEEDED = "RetriesExhausted", "EventAgeExceeded"  # a destination record's condition


@dataclass
class _Event:
    function_ref: str
    payload: bytes
    enqueued_at: float  # monotonic
    attempt: int = 0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # kept across retries, as Lambda does


@dataclass
class _EventQueue:
    """A function's waiting events; guarded by its pool's condition, which a finished invocation notifies."""

    pool: FunctionPool
    events: deque[_Event] = field(default_factory=deque)
    dispatcher: threading.Thread | None = None


class AsyncInvoker:
    """Queues Event invocations per function and runs them on the function's pool."""

    def __init__(
        self,
        *,
        pools: Pools,
        region: str,
        account_id: str,
        time_scale: float,
        echo: Echo,
        stopped: threading.Event,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self._pools = pools
        self._time_scale = time_scale
        self._echo = echo
        self._stopped = stopped
        self._lock = threading.Lock()
        self._queues: dict[str, _EventQueue] = {}
        self._timers: set[threading.Timer] = set()

    def submit(self, function_ref: str, payload: bytes) -> None:
        """Queue an asynchronous invocation (function name or ARN, qualifier allowed) and return at once."""
        self._enqueue(_Event(function_ref=function_ref, payload=payload, enqueued_at=time.monotonic()))

    def cancel_pending(self) -> None:
        """Cancel the scheduled retries and forget the waiting events (the executor is stopping)."""
        with self._lock:
            timers = list(self._timers)
            queues = list(self._queues.values())
        for timer in timers:
            timer.cancel()
        for queue in queues:
            with queue.pool.cond:
                queue.events.clear()
                queue.pool.cond.notify_all()

    def join(self) -> None:
        with self._lock:
            queues = list(self._queues.values())
        for queue in queues:
            if queue.dispatcher is not None:
                queue.dispatcher.join(timeout=5)

    def _queue(self, name: str) -> _EventQueue:
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                queue = self._queues[name] = _EventQueue(pool=self._pools.get(name))
            return queue

    def _enqueue(self, event: _Event) -> None:
        if self._stopped.is_set():
            return
        name, _ = split_function_ref(event.function_ref)
        queue = self._queue(name)
        with queue.pool.cond:
            queue.events.append(event)
            if queue.dispatcher is None:
                queue.dispatcher = threading.Thread(
                    target=self._dispatch, args=(queue,), name=f"lambda-async-{name}", daemon=True
                )
                queue.dispatcher.start()
            queue.pool.cond.notify_all()

    def _dispatch(self, queue: _EventQueue) -> None:
        pool = queue.pool
        while not self._stopped.is_set():
            with pool.cond:
                if not queue.events:
                    pool.cond.wait(timeout=1.0)
                    continue
                event = queue.events[0]
                try:
                    fn = self._function(event.function_ref)
                except Exception as exc:
                    queue.events.popleft()
                    self._echo(f"[{pool.name}] async event dropped: function not found ({exc})")
                    continue
                limit, _ = self._pools.limit(fn)
                if pool.running >= limit:
                    pool.cond.wait(timeout=1.0)  # as Lambda's async queue does: wait for a free slot
                    continue
                queue.events.popleft()
                max_age_s, retries = event_invoke_config(fn)
                age_s = time.monotonic() - event.enqueued_at
                aged_out = age_s > max_age_s / self._time_scale
                if not aged_out:
                    pool.running += 1
            if aged_out:  # outside the pool's lock: the destination is another function's queue
                self._echo(f"[{pool.name}] async event dropped: {age_s:.1f} s old, over MaximumEventAgeInSeconds")
                self._on_failure(fn, event, EVENT_AGE_EXCEEDED, None)
                continue
            threading.Thread(
                target=self._run_event, args=(pool, fn, event, retries), name=f"lambda-{pool.name}", daemon=True
            ).start()

    def _run_event(self, pool: FunctionPool, fn: Any, event: _Event, retries: int) -> None:
        try:
            outcome = pool.run(fn, event.payload, request_id=event.request_id)
        finally:
            pool.finished()
        if outcome.ok or self._stopped.is_set():
            return
        if event.attempt >= retries:
            self._echo(f"[{pool.name}] async invocation failed, no retries left: {outcome.payload.decode()[:300]}")
            self._on_failure(fn, event, RETRIES_EXHAUSTED, outcome)
            return
        delay_s = ASYNC_RETRY_DELAYS_S[min(event.attempt, len(ASYNC_RETRY_DELAYS_S) - 1)] / self._time_scale
        retry = _Event(event.function_ref, event.payload, event.enqueued_at, event.attempt + 1, event.request_id)
        timer = threading.Timer(delay_s, self._retry, args=(retry,))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _retry(self, event: _Event) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
        self._enqueue(event)

    def _on_failure(self, fn: Any, event: _Event, condition: str, outcome: Outcome | None) -> None:
        """Send the event's invocation record to the function's OnFailure destination, if it has a Lambda one."""
        destination = on_failure_destination(fn)
        if not destination or self._stopped.is_set():
            return
        if ":lambda:" not in destination:
            self._echo(f"[{fn.function_name}] OnFailure destination {destination} not delivered: only Lambda ones are")
            return
        attempts = event.attempt + (1 if outcome is not None else 0)
        record = destination_record(
            fn, event.payload, condition, outcome, request_id=event.request_id, attempts=attempts
        )
        self.submit(destination, json.dumps(record).encode())

    def _function(self, function_ref: str) -> Any:
        name, qualifier = split_function_ref(function_ref)
        region = function_ref.split(":")[3] if function_ref.startswith("arn:") else self.region
        account = function_ref.split(":")[4] if function_ref.startswith("arn:") else self.account_id
        return get_backend(account, region).get_function(name, qualifier)


def event_invoke_config(fn: Any) -> tuple[float, int]:
    """(MaximumEventAgeInSeconds, MaximumRetryAttempts) of the function's EventInvokeConfig, or Lambda's defaults."""
    config: dict[str, Any] = fn.event_invoke_config[-1].config if fn.event_invoke_config else {}
    return (
        float(config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)),
        int(config.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)),
    )


def on_failure_destination(fn: Any) -> str:
    """The ARN of the function's OnFailure destination (its EventInvokeConfig's DestinationConfig), or ""."""
    config: dict[str, Any] = fn.event_invoke_config[-1].config if fn.event_invoke_config else {}
    destination = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
    return str(destination.get("Destination") or "")


def destination_record(
    fn: Any, payload: bytes, condition: str, outcome: Outcome | None, *, request_id: str, attempts: int
) -> dict[str, Any]:
    """Lambda's invocation record for a failed asynchronous invocation (version 1.0, as the Lambda developer guide
    shows it): requestContext, the event as requestPayload and, when it ran, responseContext and responsePayload.

    An event that aged out before any attempt has no response: AWS documents none, so none is sent.
    """
    now = time.time()
    function_arn = str(fn.function_arn)
    if len(function_arn.split(":")) == 7:  # unqualified: Lambda names the version that ran
        function_arn += ":$LATEST"
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": _json_or_text(payload),
    }
    if outcome is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": outcome.function_error or "Unhandled",
        }
        record["responsePayload"] = _json_or_text(outcome.payload)
    return record


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def split_function_ref(function_ref: str) -> tuple[str, str | None]:
    """(name, qualifier) of a function name or ARN (arn:aws:lambda:region:account:function:name[:qualifier])."""
    if function_ref.startswith("arn:"):
        parts = function_ref.split(":")
        return parts[6], (parts[7] if len(parts) > 7 else None)
    name, _, qualifier = function_ref.partition(":")
    return name, (qualifier or None)
