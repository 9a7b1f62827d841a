"""Fault injection in the embedded AWS: throttled DynamoDB, failed or dropped async invokes, killed workers.

A spec is comma-separated `name=value` items (`sqsloops local up --faults SPEC`, `EmbeddedAws(faults=...)`):

    ddb-throttle=P      a share P (0.2 or 20%) of DynamoDB requests is throttled
    ddb-storm=D/E       every DynamoDB request is throttled for D out of every E (5s/30s: the last 5 s of each 30 s)
    invoke-fail=P       a share P of asynchronous (Event) Invoke requests is answered 500 ServiceException
    invoke-outage=D/E   every Event Invoke request is answered 500 ServiceException for D out of every E
    invoke-drop=P       a share P of Event invokes is accepted (202) and never run: lost without a trace, as Lambda
                        may lose an event before it is queued (no retry, no OnFailure destination)
    kill=every:D        every D, SIGKILL one execution environment of the process function that is running an
                        invocation, chosen at random (the invocation ends as Runtime.ExitError, as a crash would)
    seed=N              the random generator's seed (default: a fresh one each run)

A throttled DynamoDB request gets what AWS answers for an on-demand table over its partition limit: HTTP 400
ProvisionedThroughputExceededException with a ThrottlingReasons entry (TableRead|TableWrite
KeyRangeThroughputExceeded), which botocore retries as throttling. Durations (`500ms`, `5s`, `2m`, a bare number
is seconds) are in the stack's time: on a stack compressed k-fold (time_scale) they pass k times faster, like
Timeout, HeartbeatSeconds and schedules do, so one spec means the same at any time scale. Shares are not time.
Windows count from when the faults are set (EmbeddedAws start or `set_faults`).

What is hit is the stack's code: requests made from inside Lambda functions (botocore's User-Agent carries
`exec-env/AWS_Lambda_...` there, from AWS_EXECUTION_ENV), not the operator's CLI, a benchmark's probes or the
embedded AWS's own evaluator and scheduler. The hook sits where requests reach moto (its WSGI dispatcher); kills
reach the executor through `running`, which the function pools wrap around each invocation. Like moto's backends
these are process-wide: one active injector per process.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqsloops.errors import ConfigError

Echo = Callable[[str], None]
WsgiAnswer = tuple[str, list[tuple[str, str]], bytes]

DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
FROM_A_FUNCTION = "exec-env/AWS_Lambda"
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
_MAX_BODY = 1024 * 1024


class FaultSpecError(ConfigError):
    """A fault spec that cannot be parsed; the message names the item and what it should be."""


@dataclass(frozen=True)
class Window:
    """On for `on_s` at the end of every `every_s` (stack time): `5s/30s` is on from 25 s to 30 s, 55 s to 60 s..."""

    on_s: float
    every_s: float

    def active(self, elapsed_s: float) -> bool:
        return elapsed_s % self.every_s >= self.every_s - self.on_s

    def scaled(self, time_scale: float) -> Window:
        return Window(self.on_s / time_scale, self.every_s / time_scale)

    def __str__(self) -> str:
        return f"{_seconds(self.on_s)}/{_seconds(self.every_s)}"


@dataclass(frozen=True)
class Faults:
    """What to inject (see the module docstring); `Faults()` injects nothing."""

    ddb_throttle: float = 0.0
    ddb_storm: Window | None = None
    invoke_fail: float = 0.0
    invoke_outage: Window | None = None
    invoke_drop: float = 0.0
    kill_every_s: float | None = None
    seed: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """A Faults from `name=value,...`; FaultSpecError (one line) on anything else. An empty spec is no fault."""
        faults = cls()
        seen: set[str] = set()
        for raw in spec.split(","):
            item = raw.strip()
            if not item and not spec.strip():
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name or not value:
                raise FaultSpecError(f"fault {item!r} is not name=value (known: {', '.join(_PARSERS)})")
            known = _PARSERS.get(name)
            if known is None:
                raise FaultSpecError(f"unknown fault {name!r} in {item!r} (known: {', '.join(_PARSERS)})")
            if name in seen:
                raise FaultSpecError(f"fault {name!r} is given twice")
            seen.add(name)
            attribute, parse = known
            faults = replace(faults, **{attribute: parse(name, value)})
        return faults

    @property
    def any(self) -> bool:
        return bool(
            self.ddb_throttle or self.ddb_storm or self.invoke_fail or self.invoke_outage or self.invoke_drop
        ) or (self.kill_every_s is not None)

    def __str__(self) -> str:
        items = [
            f"ddb-throttle={self.ddb_throttle:g}" if self.ddb_throttle else "",
            f"ddb-storm={self.ddb_storm}" if self.ddb_storm else "",
            f"invoke-fail={self.invoke_fail:g}" if self.invoke_fail else "",
            f"invoke-outage={self.invoke_outage}" if self.invoke_outage else "",
            f"invoke-drop={self.invoke_drop:g}" if self.invoke_drop else "",
            f"kill=every:{_seconds(self.kill_every_s)}" if self.kill_every_s is not None else "",
            f"seed={self.seed}" if self.seed is not None else "",
        ]
        return ",".join(item for item in items if item) or "none"


def _share(name: str, value: str) -> float:
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        share = math.nan
    if not 0 <= share <= 1:
        raise FaultSpecError(f"{name}={value}: must be a share from 0 to 1 (0.2) or a percentage (20%)")
    return share


def _duration(name: str, value: str, text: str) -> float:
    found = _DURATION.match(text.strip())
    if not found or float(found.group(1)) <= 0:
        raise FaultSpecError(f"{name}={value}: {text!r} is not a positive duration such as 500ms, 5s or 2m")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _window(name: str, value: str) -> Window:
    on, sep, every = value.partition("/")
    if not sep:
        raise FaultSpecError(f"{name}={value}: must be DURATION/PERIOD, such as 5s/30s")
    window = Window(_duration(name, value, on), _duration(name, value, every))
    if window.on_s > window.every_s:
        raise FaultSpecError(f"{name}={value}: the duration must not exceed the period")
    return window


def _kill(name: str, value: str) -> float:
    how, sep, every = value.partition(":")
    if how != "every" or not sep:
        raise FaultSpecError(f"{name}={value}: must be every:DURATION, such as every:5s")
    return _duration(name, value, every)


def _seed(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FaultSpecError(f"{name}={value}: must be an integer") from None


# spec name -> (Faults attribute, parser of its value)
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "ddb-throttle": ("ddb_throttle", _share),
    "ddb-storm": ("ddb_storm", _window),
    "invoke-fail": ("invoke_fail", _share),
    "invoke-outage": ("invoke_outage", _window),
    "invoke-drop": ("invoke_drop", _share),
    "kill": ("kill_every_s", _kill),
    "seed": ("seed", _seed),
}


def _seconds(value: float | None) -> str:
    return f"{value:g}s" if value is not None else "-"


# ---------------------------------------------------------------- injecting


class Crashable(Protocol):
    """A running execution environment the killer can end (worker_client.Worker)."""

    def crash(self) -> None: ...


@dataclass(frozen=True)
class Kill:
    """One killed execution environment: when (epoch seconds), which function, the event it was running."""

    at: float
    function_name: str
    event: Any


@dataclass
class FaultCounts:
    ddb_throttled: int = 0
    invoke_failed: int = 0
    invoke_dropped: int = 0
    kills: list[Kill] = field(default_factory=list)


class FaultInjector:
    """Decides, per request, whether a fault answers it instead of moto; kills workers on a timer."""

    def __init__(
        self,
        faults: Faults,
        *,
        time_scale: float = 1.0,
        kill_function: str | None = None,
        echo: Echo | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.faults = faults
        self.time_scale = time_scale
        self.kill_function = kill_function
        self.counts = FaultCounts()
        self._echo = echo or (lambda _line: None)
        self._clock = clock
        self._started = clock()
        self._random = random.Random(faults.seed)  # chaos, not cryptography
        self._lock = threading.Lock()
        self._ddb_storm = faults.ddb_storm.scaled(time_scale) if faults.ddb_storm else None
        self._invoke_outage = faults.invoke_outage.scaled(time_scale) if faults.invoke_outage else None
        self._stop = threading.Event()
        self._killer: threading.Thread | None = None

    # ---------------------------------------------------------------- decisions

    def _chance(self, share: float) -> bool:
        if share <= 0:
            return False
        with self._lock:
            return self._random.random() < share

    def _in(self, window: Window | None) -> bool:
        return window is not None and window.active(self._clock() - self._started)

    def ddb_throttled(self) -> bool:
        throttled = self._in(self._ddb_storm) or self._chance(self.faults.ddb_throttle)
        if throttled:
            with self._lock:
                self.counts.ddb_throttled += 1
        return throttled

    def invoke_fault(self) -> str | None:
        """ "fail", "drop" or None for one Event Invoke request."""
        if self._in(self._invoke_outage) or self._chance(self.faults.invoke_fail):
            with self._lock:
                self.counts.invoke_failed += 1
            return "fail"
        if self._chance(self.faults.invoke_drop):
            with self._lock:
                self.counts.invoke_dropped += 1
            return "drop"
        return None

    def answer(self, environ: dict[str, Any]) -> WsgiAnswer | None:
        """The fault's HTTP answer to a request, or None to let moto answer it."""
        if FROM_A_FUNCTION not in str(environ.get("HTTP_USER_AGENT", "")):
            return None
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target.startswith(DYNAMODB_TARGET_PREFIX):
            if not self.ddb_throttled():
                return None
            return _throttled(target.removeprefix(DYNAMODB_TARGET_PREFIX), _table(environ))
        invoked = _INVOKE_PATH.match(str(environ.get("PATH_INFO", "")))
        if invoked and environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event":
            fault = self.invoke_fault()
            if fault == "fail":
                return _service_exception()
            if fault == "drop":
                self._echo(f"[fault] async invoke of {invoked.group(1)} accepted and dropped")
                return "202 Accepted", [("x-amzn-RequestId", str(uuid.uuid4()))], b""
        return None

    # ---------------------------------------------------------------- kills

    def start(self) -> None:
        if self.faults.kill_every_s is not None and self._killer is None:
            self._killer = threading.Thread(target=self._kill_loop, name="faults-killer", daemon=True)
            self._killer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._killer is not None:
            self._killer.join(timeout=5)
            self._killer = None

    def _kill_loop(self) -> None:
        assert self.faults.kill_every_s is not None
        period_s = self.faults.kill_every_s / self.time_scale
        while not self._stop.wait(period_s):
            self.kill_one()

    def kill_one(self) -> Kill | None:
        """SIGKILL one running execution environment of the kill function (any function if None), at random."""
        with _running_lock:
            candidates = [r for r in _running.values() if self.kill_function in (None, r.function_name)]
        if not candidates:
            return None
        with self._lock:
            chosen = self._random.choice(candidates)
        chosen.worker.crash()
        kill = Kill(at=time.time(), function_name=chosen.function_name, event=chosen.event)
        with self._lock:
            self.counts.kills.append(kill)
        self._echo(f"[fault] killed an execution environment of {chosen.function_name} running {chosen.event}")
        return kill


def _table(environ: dict[str, Any]) -> str:
    """The request's TableName; the body is read and not put back (moto never sees a throttled request)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length)) if 0 < length <= _MAX_BODY else {}
    except (ValueError, KeyError):
        return ""
    return str(request.get("TableName", "")) if isinstance(request, dict) else ""


def _throttled(operation: str, table: str) -> WsgiAnswer:
    kind = "Read" if operation in _READS else "Write"
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
        "scaling your table or index so please try again shortly. (injected fault)",
        "ThrottlingReasons": [
            {
                "reason": f"Table{kind}KeyRangeThroughputExceeded",
                "resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
            }
        ],
    }
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return "400 Bad Request", headers, json.dumps(body).encode()


def _service_exception() -> WsgiAnswer:
    body = {"Type": "Service", "message": "The AWS Lambda service encountered an internal error. (injected fault)"}
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", "ServiceException"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return "500 Internal Server Error", headers, json.dumps(body).encode()


# ---------------------------------------------------------------- process-wide: the active injector and its hooks


@dataclass(frozen=True)
class _Running:
    function_name: str
    worker: Crashable
    event: Any


_active: FaultInjector | None = None
_install_lock = threading.Lock()
_installed = False
_running_lock = threading.Lock()
_running: dict[int, _Running] = {}


def activate(injector: FaultInjector | None) -> None:
    """Make `injector` the process's (None: no faults); the WSGI hook is installed on first use."""
    global _active  # one embedded AWS per process: moto's backends are process-wide
    _install_wsgi_hook()
    previous, _active = _active, injector
    if previous is not None and previous is not injector:
        previous.stop()
    if injector is not None:
        injector.start()


def deactivate(injector: FaultInjector | None) -> None:
    global _active  # noqa: PLW0603
    if injector is not None and _active is injector:
        _active = None
    if injector is not None:
        injector.stop()


@contextlib.contextmanager
def running(function_name: str, worker: Crashable, payload: bytes) -> Iterator[None]:
    """Around one invocation in an execution environment: while it runs, the killer may choose it."""
    try:
        event: Any = json.loads(payload)
    except ValueError:
        event = None
    key = id(worker)
    with _running_lock:
        _running[key] = _Running(function_name, worker, event)
    try:
        yield
    finally:
        with _running_lock:
            _running.pop(key, None)


def _install_wsgi_hook() -> None:
    """Wrap moto's WSGI dispatcher (every ThreadedMotoServer uses it) once per process; idle without an injector."""
    global _installed  # noqa: PLW0603
    with _install_lock:
        if _installed:
            return
        from moto.moto_server import werkzeug_app

        dispatcher = werkzeug_app.DomainDispatcherApplication
        original = dispatcher.__call__

        def call_with_faults(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            injector = _active
            answer = injector.answer(environ) if injector is not None else None
            if answer is None:
                return original(app, environ, start_response)
            status, headers, body = answer
            start_response(status, [*headers, ("Content-Length", str(len(body)))])
            return [body]

        dispatcher.__call__ = call_with_faults  # type: ignore[method-assign,assignment]
        _installed = True
