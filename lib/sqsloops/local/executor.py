"""The Lambda executor: runs deployed function code in warm worker subprocesses, inside the moto server's process.

moto 5.2.5 runs Lambda code only in Docker. This module patches `moto.awslambda.models.LambdaFunction.invoke` so
that an invocation runs the function's zip (and its layers' zips) in an execution environment of its own: a
long-lived `python worker.py` subprocess with the function's environment plus the embedded endpoint, reused, one
invocation at a time, killed and replaced when it overruns its timeout or dies. As in Lambda:

- `RequestResponse` waits for the result; handler exceptions come back as `FunctionError: Unhandled` with the
  runtime's error JSON; a timeout as "Task timed out after X seconds".
- `Event` returns 202 at once; the event waits in the function's queue while its concurrency is used up, is
  dropped past MaximumEventAgeInSeconds and retried MaximumRetryAttempts times (EventInvokeConfig; default 2).
- Concurrency per function is capped at its reserved concurrency (or `default_concurrency`): a synchronous invoke
  over the cap gets TooManyRequestsException (429).
- SNS deliveries to lambda subscriptions are asynchronous invocations with SNS's event shape.

Time compression: each invocation gets Timeout/time_scale seconds (get_remaining_time_in_millis agrees), and
event ages and retry delays are divided by time_scale too.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import inspect
import io
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moto
from moto.awslambda import models as lambda_models
from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
from moto.core.exceptions import JsonRESTError
from moto.sns import models as sns_models

from sqsloops.errors import MotoChangedError

PINNED_MOTO_VERSION = "5.2.5"
WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")
DEFAULT_CONCURRENCY = 10
INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s of init; a loaded 2-core machine importing boto3 needs slack
ASYNC_RETRY_DELAYS_S = (60.0, 120.0)  # Lambda's async retries come about 1 and 2 minutes later
DEFAULT_MAX_EVENT_AGE_S = 21600
DEFAULT_RETRY_ATTEMPTS = 2
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

Echo = Callable[[str], None]

_install_lock = threading.Lock()
_active: LambdaExecutor | None = None
_originals: dict[str, Any] = {}


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
    code = 400

    def __init__(self, detail: str) -> None:
        super().__init__("InvalidRequestContentException", f"Could not parse request body into json: {detail}")


class _WorkerGone(Exception):
    """The worker exited (or its pipe closed) before answering."""


class _WorkerTimeout(Exception):
    """The worker did not answer in time."""


@dataclass(frozen=True)
class Outcome:
    """One invocation's result: the payload bytes and, for a failure, Lambda's FunctionError value."""

    payload: bytes
    function_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.function_error is None


# ---------------------------------------------------------------- one execution environment


class Worker:
    """A worker subprocess and its two protocol pipes; stdout/stderr lines go to `echo`."""

    def __init__(
        self, *, config: dict[str, Any], env: dict[str, str], cwd: str, fingerprint: str, label: str, echo: Echo
    ) -> None:
        self.fingerprint = fingerprint
        self.label = label
        self._echo = echo
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        config = {**config, "request_fd": request_read, "reply_fd": reply_write}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter running our own worker script
                [sys.executable, "-u", str(WORKER_SCRIPT), json.dumps(config)],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_read, reply_write),
                start_new_session=True,  # a Ctrl-C in the terminal is for the parent, which then stops us
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._fds: tuple[int, ...] = (self._request_write, self._reply_read)
        self._buffer = b""
        self._ready = False
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream,), name=f"{label}-log", daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self._echo(f"{self.label} {raw.decode(errors='replace').rstrip()}")
        stream.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def ensure_ready(self, timeout_s: float) -> None:
        if not self._ready:
            self._read_message(time.monotonic() + timeout_s)
            self._ready = True

    def call(self, request: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """Send one request; the reply, or _WorkerTimeout at `deadline` (monotonic), or _WorkerGone."""
        try:
            os.write(self._request_write, json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise _WorkerGone(str(exc)) from exc
        return self._read_message(deadline)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise _WorkerTimeout()
            try:
                readable, _, _ = select.select([self._reply_read], [], [], remaining_s)
                chunk = os.read(self._reply_read, 65536) if readable else None
            except (OSError, ValueError) as exc:
                raise _WorkerGone(str(exc)) from exc
            if chunk is None:
                continue
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=2)  # its pipe closed as it exited: let the status arrive
                raise _WorkerGone(f"exit status {self.process.poll()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def kill(self) -> None:
        """End the process; a thread waiting on its reply sees it gone. Safe from any thread."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        for pump in self._pumps:
            pump.join(timeout=5)

    def close(self) -> None:
        """Kill, then release the pipes: only by the thread using the worker, or for an idle one."""
        self.kill()
        fds, self._fds = self._fds, ()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


# ---------------------------------------------------------------- per function: warm workers, concurrency, queue


@dataclass
class _Event:
    function_ref: str
    payload: bytes
    enqueued_at: float  # monotonic
    attempt: int = 0


@dataclass
class _Pool:
    name: str
    cond: threading.Condition = field(default_factory=threading.Condition)
    idle: list[Worker] = field(default_factory=list)
    running: int = 0
    events: deque[_Event] = field(default_factory=deque)
    dispatcher: threading.Thread | None = None


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
        self._root = Path(tempfile.mkdtemp(prefix="sqsloops-lambda-"))
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._workers: set[Worker] = set()
        self._extracted: dict[str, Path] = {}
        self._timers: set[threading.Timer] = set()
        self._stopped = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    def install(self) -> None:
        """Route moto's Lambda invocations (and SNS deliveries to Lambda) in this process to this executor."""
        global _active  # noqa: PLW0603 - one executor per process: moto's backends are process-wide
        with _install_lock:
            if _active is not None and _active is not self:
                raise RuntimeError("another LambdaExecutor is active in this process; stop it first")
            _patch_moto()
            _active = self

    def stop(self) -> None:
        """Stop dispatching, kill every worker (busy ones too), remove the extracted code."""
        global _active  # noqa: PLW0603
        with _install_lock:
            if _active is self:
                _active = None
        self._stopped.set()
        with self._lock:
            pools = list(self._pools.values())
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        for pool in pools:
            with pool.cond:
                pool.events.clear()
                pool.cond.notify_all()
        idle: set[Worker] = set()
        for pool in pools:
            with pool.cond:
                idle.update(pool.idle)
                pool.idle.clear()
        for worker in list(self._workers):
            if worker in idle:
                worker.close()
            else:
                worker.kill()  # busy: the thread waiting on it sees it gone and closes it
        for pool in pools:
            if pool.dispatcher is not None:
                pool.dispatcher.join(timeout=5)
        _remove_tree(self._root)

    def prewarm(self, function_name: str) -> None:
        """Start one execution environment for a function now (its init runs while the caller goes on)."""
        fn = get_backend(self.account_id, self.region).get_function(function_name)
        pool = self._pool(fn.function_name)
        worker = self._spawn(fn)
        with pool.cond:
            pool.idle.append(worker)

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
        pool = self._pool(fn.function_name)
        with pool.cond:
            limit, reserved = self._limit(fn)
            if pool.running >= limit:
                raise TooManyRequestsError(fn.function_name, reserved=reserved)
            pool.running += 1
        try:
            outcome = self._run(pool, fn, payload)
        finally:
            with pool.cond:
                pool.running -= 1
                pool.cond.notify_all()
        if outcome.function_error:
            response_headers["x-amz-function-error"] = outcome.function_error
        return outcome.payload

    def submit(self, function_ref: str, payload: bytes) -> None:
        """Queue an asynchronous invocation (function name or ARN, qualifier allowed) and return at once."""
        self._enqueue(_Event(function_ref=function_ref, payload=payload, enqueued_at=time.monotonic()))

    # ---------------------------------------------------------------- async queue

    def _enqueue(self, event: _Event) -> None:
        if self._stopped.is_set():
            return
        name, _ = _split_function_ref(event.function_ref)
        pool = self._pool(name)
        with pool.cond:
            pool.events.append(event)
            if pool.dispatcher is None:
                pool.dispatcher = threading.Thread(
                    target=self._dispatch, args=(pool,), name=f"lambda-async-{name}", daemon=True
                )
                pool.dispatcher.start()
            pool.cond.notify_all()

    def _dispatch(self, pool: _Pool) -> None:
        while not self._stopped.is_set():
            with pool.cond:
                if not pool.events:
                    pool.cond.wait(timeout=1.0)
                    continue
                event = pool.events[0]
                try:
                    fn = self._function(event.function_ref)
                except Exception as exc:
                    pool.events.popleft()
                    self._echo(f"[{pool.name}] async event dropped: function not found ({exc})")
                    continue
                limit, _ = self._limit(fn)
                if pool.running >= limit:
                    pool.cond.wait(timeout=1.0)  # as Lambda's async queue does: wait for a free slot
                    continue
                pool.events.popleft()
                max_age_s, retries = _async_config(fn)
                age_s = time.monotonic() - event.enqueued_at
                if age_s > max_age_s / self.time_scale:
                    self._echo(f"[{pool.name}] async event dropped: {age_s:.1f} s old, over MaximumEventAgeInSeconds")
                    continue
                pool.running += 1
            threading.Thread(
                target=self._run_event, args=(pool, fn, event, retries), name=f"lambda-{pool.name}", daemon=True
            ).start()

    def _run_event(self, pool: _Pool, fn: Any, event: _Event, retries: int) -> None:
        try:
            outcome = self._run(pool, fn, event.payload)
        finally:
            with pool.cond:
                pool.running -= 1
                pool.cond.notify_all()
        if outcome.ok or self._stopped.is_set():
            return
        if event.attempt >= retries:
            self._echo(f"[{pool.name}] async invocation failed, no retries left: {outcome.payload.decode()[:300]}")
            return
        delay_s = ASYNC_RETRY_DELAYS_S[min(event.attempt, len(ASYNC_RETRY_DELAYS_S) - 1)] / self.time_scale
        retry = _Event(event.function_ref, event.payload, event.enqueued_at, event.attempt + 1)
        timer = threading.Timer(delay_s, self._retry, args=(retry,))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _retry(self, event: _Event) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
        self._enqueue(event)

    # ---------------------------------------------------------------- running one invocation

    def _run(self, pool: _Pool, fn: Any, payload: bytes) -> Outcome:
        request_id = str(uuid.uuid4())
        try:
            worker = self._take_worker(pool, fn)
        except Exception as exc:  # unreadable code zip and the like: the function cannot start
            return _error_outcome(request_id, "Runtime.InvalidEntrypoint", f"cannot prepare the function: {exc}")
        try:
            worker.ensure_ready(INIT_TIMEOUT_S)
        except (_WorkerGone, _WorkerTimeout) as exc:
            self._discard(worker)
            return _error_outcome(request_id, "Runtime.InitError", f"init failed: {type(exc).__name__} {exc}")
        timeout_s = float(fn.timeout) / self.time_scale
        request = {
            "request_id": request_id,
            "event": payload.decode(),
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "invoked_function_arn": fn.function_arn,
        }
        try:
            reply = worker.call(request, deadline=time.monotonic() + timeout_s)
        except _WorkerTimeout:
            self._discard(worker)
            message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
            self._echo(f"[{fn.function_name}] {message}")
            return _error_outcome(request_id, "Sandbox.Timedout", message)
        except _WorkerGone as exc:
            self._discard(worker)
            message = f"RequestId: {request_id} Error: Runtime exited with error: {exc}"
            if not self._stopped.is_set():
                self._echo(f"[{fn.function_name}] {message}")
            return _error_outcome(request_id, "Runtime.ExitError", message)
        if self._stopped.is_set():
            self._discard(worker)
        else:
            with pool.cond:
                pool.idle.append(worker)
        if reply.get("ok"):
            return Outcome(payload=str(reply["payload"]).encode())
        return Outcome(payload=json.dumps(reply["error"]).encode(), function_error="Unhandled")

    def _take_worker(self, pool: _Pool, fn: Any) -> Worker:
        fingerprint = _fingerprint(fn)
        stale: list[Worker] = []
        chosen: Worker | None = None
        with pool.cond:
            while pool.idle and chosen is None:
                candidate = pool.idle.pop()
                if candidate.fingerprint == fingerprint and candidate.alive:
                    chosen = candidate
                else:
                    stale.append(candidate)
        for worker in stale:
            self._discard(worker)
        return chosen or self._spawn(fn)

    def _discard(self, worker: Worker) -> None:
        worker.close()
        with self._lock:
            self._workers.discard(worker)

    def _spawn(self, fn: Any) -> Worker:
        if self._stopped.is_set():
            raise RuntimeError("the executor is stopped")
        code_dir = self._extract(fn.code_bytes, "code")
        paths = [str(code_dir)]
        backend = get_backend(fn.account_id, fn.region)
        for layer in fn.layers:
            layer_version = backend.layers_versions_by_arn(layer["Arn"])
            if layer_version is None:
                raise ValueError(f"layer version not found: {layer['Arn']}")
            layer_dir = self._extract(layer_version.code_bytes, "layers")
            paths += [str(layer_dir / "python" / "lib" / "python3.11" / "site-packages"), str(layer_dir / "python")]
        config = {
            "handler": fn.handler,
            "paths": paths,
            "fallback_paths": [p for p in sys.path if p and os.path.isdir(p)],
        }
        worker = Worker(
            config=config,
            env=self._environment(fn, code_dir),
            cwd=str(code_dir),
            fingerprint=_fingerprint(fn),
            label=f"[{fn.function_name}]",
            echo=self._echo,
        )
        with self._lock:
            self._workers.add(worker)
        return worker

    def _extract(self, zipped: bytes, kind: str) -> Path:
        if not zipped:
            raise ValueError("the function has no code (moto stored no zip for it)")
        digest = hashlib.sha256(zipped).hexdigest()[:16]
        with self._lock:
            known = self._extracted.get(digest)
            if known is not None:
                return known
            target = self._root / kind / digest
            with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
                archive.extractall(target)
            self._extracted[digest] = target
            return target

    def _environment(self, fn: Any, code_dir: Path) -> dict[str, str]:
        """What Lambda sets, the function's variables, and the embedded endpoint; nothing of the parent's AWS setup."""
        today = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            **{key: _env_string(value) for key, value in (fn.environment_vars or {}).items()},
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time or 'python3.11'}",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": str(fn.handler),
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **FAKE_CREDENTIALS,
        }
        return env

    # ---------------------------------------------------------------- helpers

    def _pool(self, name: str) -> _Pool:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = _Pool(name=name)
            return pool

    def _limit(self, fn: Any) -> tuple[int, bool]:
        reserved = fn.reserved_concurrency
        if reserved is None or reserved == "":
            return self.default_concurrency, False
        return int(reserved), True

    def _function(self, function_ref: str) -> Any:
        name, qualifier = _split_function_ref(function_ref)
        region = function_ref.split(":")[3] if function_ref.startswith("arn:") else self.region
        account = function_ref.split(":")[4] if function_ref.startswith("arn:") else self.account_id
        return get_backend(account, region).get_function(name, qualifier)


# ---------------------------------------------------------------- moto patches


def _patched_invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
    executor = _active
    if executor is None:
        return _originals["invoke"](self, body, request_headers, response_headers)
    return executor.invoke(self, body, request_headers, response_headers)


def _patched_send_sns_message(
    self: Any, function_name: str, message: str, subject: str | None = None, qualifier: str | None = None
) -> None:
    executor = _active
    if executor is None:
        return _originals["send_sns_message"](self, function_name, message, subject=subject, qualifier=qualifier)  # type: ignore[no-any-return]
    fn = self.get_function(function_name, qualifier)
    event = sns_event(topic_arn="", subscription_arn="", message_id=str(uuid.uuid4()), message=message, subject=subject)
    executor.submit(fn.function_arn, json.dumps(event).encode())
    return None


def _patched_subscription_publish(  # noqa: PLR0917 - the signature of the method it replaces
    self: Any,
    message: str,
    message_id: str,
    subject: str | None = None,
    message_attributes: dict[str, Any] | None = None,
    group_id: str | None = None,
    deduplication_id: str | None = None,
    message_structure: str | None = None,
) -> None:
    executor = _active
    if executor is None or self.protocol != "lambda":
        return _originals["publish"](  # type: ignore[no-any-return]
            self,
            message,
            message_id,
            subject=subject,
            message_attributes=message_attributes,
            group_id=group_id,
            deduplication_id=deduplication_id,
            message_structure=message_structure,
        )
    if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(message_attributes, message):
        return None
    if message_structure == "json":
        message = self._parse_message_structure(message, self.protocol)
    event = sns_event(
        topic_arn=self.topic.arn,
        subscription_arn=self.arn,
        message_id=message_id,
        message=message,
        subject=subject,
        message_attributes=message_attributes,
    )
    executor.submit(self.endpoint, json.dumps(event).encode())
    return None


def sns_event(
    *,
    topic_arn: str,
    subscription_arn: str,
    message_id: str,
    message: str,
    subject: str | None,
    message_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event Lambda receives from an SNS subscription."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "EXAMPLE",
                    "UnsubscribeUrl": "EXAMPLE",
                    "MessageAttributes": {
                        name: {"Type": value.get("Type"), "Value": value.get("Value")}
                        for name, value in (message_attributes or {}).items()
                    },
                },
            }
        ]
    }


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


def check_target() -> None:
    """MotoChangedError unless moto is the version and shape these patches replace."""
    problems: list[str] = []
    version = getattr(moto, "__version__", "unknown")
    if version != PINNED_MOTO_VERSION:
        problems.append(f"moto is {version}")
    invoke = _originals.get("invoke", getattr(lambda_models.LambdaFunction, "invoke", None))
    if _parameters(invoke) != ["self", "body", "request_headers", "response_headers"]:
        problems.append("LambdaFunction.invoke changed")
    send = _originals.get("send_sns_message", getattr(lambda_models.LambdaBackend, "send_sns_message", None))
    if _parameters(send) != ["self", "function_name", "message", "subject", "qualifier"]:
        problems.append("LambdaBackend.send_sns_message changed")
    publish = _originals.get("publish", getattr(sns_models.Subscription, "publish", None))
    expected = ["self", "message", "message_id", "subject", "message_attributes", "group_id", "deduplication_id"]
    if _parameters(publish) != [*expected, "message_structure"]:
        problems.append("sns Subscription.publish changed")
    for name in ("_parse_message_structure", "get_post_data"):
        if not hasattr(sns_models.Subscription, name):
            problems.append(f"sns Subscription.{name} is gone")
    if problems:
        raise MotoChangedError(
            f"sqsloops.local.executor patches moto {PINNED_MOTO_VERSION} only and found: {'; '.join(problems)}. "
            f"Pin moto=={PINNED_MOTO_VERSION} (pyproject.toml [local] extra) or port the patch to the new version."
        )


def _patch_moto() -> None:
    if _originals:
        return
    check_target()
    _originals["invoke"] = lambda_models.LambdaFunction.invoke
    _originals["send_sns_message"] = lambda_models.LambdaBackend.send_sns_message
    _originals["publish"] = sns_models.Subscription.publish
    lambda_models.LambdaFunction.invoke = _patched_invoke  # type: ignore[method-assign]
    lambda_models.LambdaBackend.send_sns_message = _patched_send_sns_message  # type: ignore[method-assign]
    sns_models.Subscription.publish = _patched_subscription_publish  # type: ignore[method-assign]


def is_installed() -> bool:
    return lambda_models.LambdaFunction.invoke is _patched_invoke  # type: ignore[comparison-overlap]


# ---------------------------------------------------------------- small helpers


def _split_function_ref(function_ref: str) -> tuple[str, str | None]:
    """(name, qualifier) of a function name or ARN (arn:aws:lambda:region:account:function:name[:qualifier])."""
    if function_ref.startswith("arn:"):
        parts = function_ref.split(":")
        return parts[6], (parts[7] if len(parts) > 7 else None)
    name, _, qualifier = function_ref.partition(":")
    return name, (qualifier or None)


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


def _async_config(fn: Any) -> tuple[float, int]:
    """(MaximumEventAgeInSeconds, MaximumRetryAttempts) of the function's EventInvokeConfig, or Lambda's defaults."""
    config: dict[str, Any] = fn.event_invoke_config[-1].config if fn.event_invoke_config else {}
    return (
        float(config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)),
        int(config.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)),
    )


def _fingerprint(fn: Any) -> str:
    """Changes when the function's code, layers, handler or environment do: its workers must then be replaced."""
    parts = [
        fn.code_sha_256,
        [layer["Arn"] for layer in fn.layers],
        fn.handler,
        sorted((key, _env_string(value)) for key, value in (fn.environment_vars or {}).items()),
        str(fn.memory_size),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_outcome(request_id: str, error_type: str, message: str) -> Outcome:
    body = {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": []}
    return Outcome(payload=json.dumps(body).encode(), function_error="Unhandled")


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _remove_tree(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
