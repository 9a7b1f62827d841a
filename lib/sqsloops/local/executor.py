"""The Lambda executor: runs deployed function code in warm worker subprocesses, inside the moto server's process.

moto 5.2.5 runs Lambda code only in Docker; here an invocation runs the function's zip (and its layers' zips) in
an execution environment of its own: a long-lived `python worker.py` subprocess with the function's environment
plus the embedded endpoint, reused, one invocation at a time, killed and replaced when it overruns its timeout or
dies. As in Lambda:

- `RequestResponse` waits for the result; handler exceptions come back as `FunctionError: Unhandled` with the
  runtime's error JSON; a timeout as "Task timed out after X seconds".
- `Event` returns 202 at once; the event waits in the function's queue while its concurrency is used up, is
  dropped past MaximumEventAgeInSeconds and retried MaximumRetryAttempts times (EventInvokeConfig; default 2).
- Concurrency per function is capped at its reserved concurrency (or `default_concurrency`): a synchronous invoke
  over the cap gets TooManyRequestsException (429).
- SNS deliveries to lambda subscriptions are asynchronous invocations with SNS's event shape.

Time compression: each invocation gets Timeout/time_scale seconds (get_remaining_time_in_millis agrees), and
event ages and retry delays are divided by time_scale too.

This module composes the parts and answers moto's Invoke: lambda_patches (the moto patches), worker_client and
worker_spawner (one warm worker, and starting one for a function), pools (warm workers and concurrency per
function, running one invocation), async_invoke (Event invocations), sns_events (SNS's event shape).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
from moto.core.exceptions import JsonRESTError

from sqsloops.local import lambda_patches
from sqsloops.local.async_invoke import AsyncInvoker
from sqsloops.local.lambda_patches import check_target, is_installed
from sqsloops.local.pools import Outcome, Pools
from sqsloops.local.sns_events import sns_event
from sqsloops.local.worker_client import Echo, Worker
from sqsloops.local.worker_spawner import FAKE_CREDENTIALS, WorkerSpawner

__all__ = [
    "FAKE_CREDENTIALS",
    "InvalidRequestContentError",
    "LambdaExecutor",
    "Outcome",
    "TooManyRequestsError",
    "check_target",
    "is_installed",
    "sns_event",
]

DEFAULT_CONCURRENCY = 10


class TooManyRequestsError(JsonRESTError):
    """Lambda's throttling error (HTTP 429), as moto's server renders it."""

    code = 429

    def __init__(self, function_name: str, *, reserved: bool) -> None:
        reason = (
            "ReservedFunctionConcurrentInvocationLimitExceeded" if reserved else "ConcurrentInvocationLimitExceeded"
        )
        message = f"Rate Exceeded. ({function_name} is at its concurrency limit)"
        super().__init__("TooManyRequestsException", message)
        self.description = json.dumps(
            {"__type": "TooManyRequestsException", "Type": "User", "message": message, "Reason": reason}
        )


class InvalidRequestContentError(JsonRESTError):
    """Lambda's answer (HTTP 400) to a payload that is not JSON."""

    code = 400

    def __init__(self, detail: str) -> None:
        super().__init__("InvalidRequestContentException", f"Could not parse request body into json: {detail}")


class LambdaExecutor:
    """Runs Lambda invocations for moto in worker subprocesses (see the module docstring)."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str = "us-east-1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        time_scale: float = 1.0,
        echo: Echo | None = None,
        default_concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.endpoint_url = endpoint_url
        self.region = region
        self.account_id = account_id
        self.time_scale = time_scale
        self.default_concurrency = default_concurrency
        self._echo = echo or _print_to_stderr
        self._stopped = threading.Event()
        self._spawner = WorkerSpawner(endpoint_url=endpoint_url, echo=self._echo, stopped=self._stopped)
        self._pools = Pools(
            spawner=self._spawner,
            time_scale=time_scale,
            echo=self._echo,
            stopped=self._stopped,
            default_concurrency=default_concurrency,
        )
        self._async = AsyncInvoker(
            pools=self._pools,
            region=region,
            account_id=account_id,
            time_scale=time_scale,
            echo=self._echo,
            stopped=self._stopped,
        )

    # ---------------------------------------------------------------- lifecycle

    def install(self) -> None:
        """Route moto's Lambda invocations (and SNS deliveries to Lambda) in this process to this executor."""
        lambda_patches.activate(self)

    def stop(self) -> None:
        """Stop dispatching, kill every worker (busy ones too), remove the extracted code."""
        lambda_patches.deactivate(self)
        self._stopped.set()
        self._async.cancel_pending()
        idle: set[Worker] = set()
        for pool in self._pools.all():
            idle.update(pool.drain_idle())
        self._spawner.stop(idle)
        self._async.join()
        self._spawner.remove_files()

    def prewarm(self, function_name: str) -> None:
        """Start one execution environment for a function now (its init runs while the caller goes on)."""
        fn = get_backend(self.account_id, self.region).get_function(function_name)
        self._pools.get(fn.function_name).prewarm(fn)

    # ---------------------------------------------------------------- entry points (called by the moto patches)

    def invoke(self, fn: Any, body: Any, request_headers: Any, response_headers: dict[str, Any]) -> bytes:
        """LambdaFunction.invoke's replacement: the payload bytes (empty for Event and DryRun)."""
        payload = _as_json_bytes(body)
        invocation_type = _header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
        response_headers["x-amz-executed-version"] = "$LATEST"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            self.submit(fn.function_arn, payload)
            return b""
        pool = self._pools.get(fn.function_name)
        limit, reserved = self._pools.limit(fn)
        if not pool.start_if_free(limit):
            raise TooManyRequestsError(fn.function_name, reserved=reserved)
        try:
            outcome = pool.run(fn, payload)
        finally:
            pool.finished()
        if outcome.function_error:
            response_headers["x-amz-function-error"] = outcome.function_error
        return outcome.payload

    def submit(self, function_ref: str, payload: bytes) -> None:
        """Queue an asynchronous invocation (function name or ARN, qualifier allowed) and return at once."""
        self._async.submit(function_ref, payload)


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    return None if value is None else str(value)


def _as_json_bytes(body: Any) -> bytes:
    if body is None or body in ("", b""):
        return b"{}"
    raw = body if isinstance(body, bytes) else str(body).encode()
    try:
        json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestContentError(str(exc)) from exc
    return raw


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
