"""Per function: its warm workers, how many invocations run now, and running one invocation as Lambda would.

A pool's condition guards its idle workers and running count; the async dispatcher (async_invoke) waits on it
for a free slot, so every finished invocation notifies it. Concurrency is capped at the function's reserved
concurrency, or a default standing in for the account's limit.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqsloops.local import faults
from sqsloops.local.worker_client import Echo, Worker, WorkerGoneError, WorkerTimeoutError
from sqsloops.local.worker_spawner import WorkerSpawner, fingerprint

INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s of init; a loaded 2-core machine importing boto3 needs slack


@dataclass(frozen=True)
class Outcome:
    """One invocation's result: the payload bytes and, for a failure, Lambda's FunctionError value."""

    payload: bytes
    function_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.function_error is None


class FunctionPool:
    """One function's idle warm workers and running count; `run` is one invocation, one worker at a time."""

    def __init__(
        self, name: str, *, spawner: WorkerSpawner, time_scale: float, echo: Echo, stopped: threading.Event
    ) -> None:
        self.name = name
        self.cond = threading.Condition()
        self.idle: list[Worker] = []
        self.running = 0
        self._spawner = spawner
        self._time_scale = time_scale
        self._echo = echo
        self._stopped = stopped

    def start_if_free(self, limit: int) -> bool:
        """Count one more running invocation, unless `limit` are running already."""
        with self.cond:
            if self.running >= limit:
                return False
            self.running += 1
            return True

    def finished(self) -> None:
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def prewarm(self, fn: Any) -> None:
        worker = self._spawner.spawn(fn)
        with self.cond:
            self.idle.append(worker)

    def drain_idle(self) -> list[Worker]:
        with self.cond:
            idle, self.idle = self.idle, []
        return idle

    def run(self, fn: Any, payload: bytes, *, request_id: str | None = None) -> Outcome:
        """Invoke `fn` on a warm worker (a new one if none matches); every failure comes back as Lambda's error.

        `request_id` is the context's aws_request_id: an asynchronous event keeps one across its retries, and its
        destination record names it, as on Lambda.
        """
        request_id = request_id or str(uuid.uuid4())
        try:
            worker = self._take_worker(fn)
        except Exception as exc:  # unreadable code zip and the like: the function cannot start
            return _error_outcome(request_id, "Runtime.InvalidEntrypoint", f"cannot prepare the function: {exc}")
        try:
            worker.ensure_ready(INIT_TIMEOUT_S)
        except (WorkerGoneError, WorkerTimeoutError) as exc:
            self._spawner.discard(worker)
            return _error_outcome(request_id, "Runtime.InitError", f"init failed: {type(exc).__name__} {exc}")
        timeout_s = float(fn.timeout) / self._time_scale
        request = {
            "request_id": request_id,
            "event": payload.decode(),
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "invoked_function_arn": fn.function_arn,
        }
        try:
            with faults.running(fn.function_name, worker, payload):  # while it runs, a kill fault may end it
                reply = worker.call(request, deadline=time.monotonic() + timeout_s)
        except WorkerTimeoutError:
            self._spawner.discard(worker)
            message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
            self._echo(f"[{fn.function_name}] {message}")
            return _error_outcome(request_id, "Sandbox.Timedout", message)
        except WorkerGoneError as exc:
            self._spawner.discard(worker)
            message = f"RequestId: {request_id} Error: Runtime exited with error: {exc}"
            if not self._stopped.is_set():
                self._echo(f"[{fn.function_name}] {message}")
            return _error_outcome(request_id, "Runtime.ExitError", message)
        if self._stopped.is_set():
            self._spawner.discard(worker)
        else:
            with self.cond:
                self.idle.append(worker)
        if reply.get("ok"):
            return Outcome(payload=str(reply["payload"]).encode())
        return Outcome(payload=json.dumps(reply["error"]).encode(), function_error="Unhandled")

    def _take_worker(self, fn: Any) -> Worker:
        """An idle worker of the function as it is now; idle ones of older code or configuration are discarded."""
        wanted = fingerprint(fn)
        stale: list[Worker] = []
        chosen: Worker | None = None
        with self.cond:
            while self.idle and chosen is None:
                candidate = self.idle.pop()
                if candidate.fingerprint == wanted and candidate.alive:
                    chosen = candidate
                else:
                    stale.append(candidate)
        for worker in stale:
            self._spawner.discard(worker)
        return chosen or self._spawner.spawn(fn)


class Pools:
    """Every function's pool, created on first use, and the concurrency limit that applies to each."""

    def __init__(
        self,
        *,
        spawner: WorkerSpawner,
        time_scale: float,
        echo: Echo,
        stopped: threading.Event,
        default_concurrency: int,
    ) -> None:
        self.default_concurrency = default_concurrency
        self._spawner = spawner
        self._time_scale = time_scale
        self._echo = echo
        self._stopped = stopped
        self._lock = threading.Lock()
        self._pools: dict[str, FunctionPool] = {}

    def get(self, name: str) -> FunctionPool:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = FunctionPool(
                    name, spawner=self._spawner, time_scale=self._time_scale, echo=self._echo, stopped=self._stopped
                )
            return pool

    def all(self) -> list[FunctionPool]:
        with self._lock:
            return list(self._pools.values())

    def limit(self, fn: Any) -> tuple[int, bool]:
        """(how many invocations may run at once, whether that is the function's reserved concurrency)."""
        reserved = fn.reserved_concurrency
        if reserved is None or reserved == "":
            return self.default_concurrency, False
        return int(reserved), True


def _error_outcome(request_id: str, error_type: str, message: str) -> Outcome:
    body = {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": []}
    return Outcome(payload=json.dumps(body).encode(), function_error="Unhandled")
