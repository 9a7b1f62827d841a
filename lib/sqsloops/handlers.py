"""Handler strings, `kind:target`: which kinds exist, what their targets look like, and importing `python:` ones.

Every handler is `kind:target`. `KNOWN_KINDS` is the one list of kinds a registration may name, each with the
shape of its target, checked at registration without importing or calling anything:

- `lambda:NAME_OR_ARN` forwards batches to a function;
- `python:package.module:function` runs in the loop's process;
- `jobs:package.module` runs the jobs declared in that module (the job layer's runner);
- `http:URL` POSTs each job message to a web app (the job layer's `sqsloops.jobs.http`): `https://` only, except
  `http://127.0.0.1`, `http://localhost` and `http://[::1]` for a local stack and tests (the request never leaves
  the machine); `{job}` in the URL becomes the job's name; the URL's fragment, which no HTTP client sends, carries
  the kind's own options: `#timeout=30s&receipt_timeout=1h&retries=10` (see `HttpTarget`).

What runs a kind is another matter: the composition root gives `sqsloops.dispatch.Dispatchers` one HandlerKind per
kind it wires (`core_kinds()` has lambda and python; the job layer adds its own). A kind named here that a loop was
not given fails its messages with that reason, into the DLQ, and never stops the loop.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqsloops.errors import ConfigError, HandlerError

LAMBDA = "lambda"
PYTHON = "python"
JOBS = "jobs"
HTTP = "http"

_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")
# A function name, partial ARN or full ARN, with an optional version or alias (Lambda's own FunctionName pattern).
_LAMBDA_TARGET = re.compile(
    r"^(arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-gov)?-[a-z]+-\d{1}:\d{12}:function:)?"
    r"[a-zA-Z0-9-_]{1,64}(:(\$LATEST|[a-zA-Z0-9-_]{1,128}))?$"
)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_lambda_target(target: str) -> None:
    if not _LAMBDA_TARGET.match(target):
        raise ConfigError(f"not a Lambda function name or ARN: {target!r}")


def check_python_target(target: str) -> None:
    module, sep, function = target.rpartition(":")
    if not sep or not _DOTTED.match(module) or not _IDENTIFIER.match(function):
        raise ConfigError(f"python handler must be 'package.module:function', got {target!r}")


def check_jobs_target(target: str) -> None:
    if not _DOTTED.match(target):
        raise ConfigError(f"jobs handler must be 'jobs:package.module', got {target!r}")


# http: targets. Plain http only to the loopback address: a local stack and tests; on AWS every URL is https.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_HTTP_TIMEOUT_S = 30.0  # one POST, connect to last byte (the loop's work budget may cut it shorter)
MAX_HTTP_TIMEOUT_S = 900.0  # Lambda's own ceiling: one POST never outlives the invocation that made it
DEFAULT_RECEIPT_TIMEOUT_S = 3600.0  # how long a 202 Accepted job may take to send its receipt
# A waiting job's message is held by its visibility timeout, which SQS caps at 12 h per receive: a receipt
# timeout must fit in one hold, so it is refused at 12 h or more (registration fails, never a job at 3 a.m.).
MAX_RECEIPT_TIMEOUT_S = 43_200.0
MAX_HTTP_RETRIES = 1000
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HTTP_OPTIONS = ("timeout", "receipt_timeout", "retries")


@dataclass(frozen=True)
class HttpTarget:
    """A parsed `http:` target: the URL template (`{job}` is the job's name) and the kind's options.

    `retries` None: the job layer's default retry policy (jobs/retry_policy.py DEFAULT_RETRIES).
    """

    url: str  # without the fragment
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S
    receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S
    retries: int | None = None

    def url_for(self, job: str) -> str:
        return self.url.replace("{job}", job)


def parse_http_target(target: str) -> HttpTarget:
    """The URL and options of an http: target, or ConfigError naming what is wrong (nothing is called)."""
    url, _, fragment = target.partition("#")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"http handler: not a URL: {target!r} ({exc})") from None
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise ConfigError(f"http handler must be 'http:https://host/path', got {target!r}")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"http handler: plain http only to 127.0.0.1/localhost (local use); use https: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("http handler: no credentials in the URL (requests are signed with the stack's secret)")
    if port == 0 or any(c.isspace() for c in url):
        raise ConfigError(f"http handler: bad URL {url!r}")
    if url.replace("{job}", "").count("{") or url.replace("{job}", "").count("}"):
        raise ConfigError(f"http handler: the only placeholder is {{job}}, got {url!r}")
    spec = HttpTarget(url=url, **_http_options(fragment))
    if not 0 < spec.timeout_s <= MAX_HTTP_TIMEOUT_S:
        raise ConfigError(f"http handler: timeout must be over 0 and at most {MAX_HTTP_TIMEOUT_S:g} s")
    if not spec.timeout_s <= spec.receipt_timeout_s < MAX_RECEIPT_TIMEOUT_S:
        raise ConfigError(
            f"http handler: receipt_timeout must be at least the timeout and under SQS's 12 h visibility ceiling"
            f" ({MAX_RECEIPT_TIMEOUT_S:g} s), got {spec.receipt_timeout_s:g} s"
        )
    return spec


def _http_options(fragment: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(fragment, keep_blank_values=True):
        if name not in HTTP_OPTIONS:
            raise ConfigError(f"http handler: unknown option {name!r} (options: {', '.join(HTTP_OPTIONS)})")
        if name == "retries":
            if not value.isdigit() or int(value) > MAX_HTTP_RETRIES:
                raise ConfigError(f"http handler: retries must be a whole number 0..{MAX_HTTP_RETRIES}, got {value!r}")
            options["retries"] = int(value)
        else:
            options[f"{name}_s"] = _duration_s(name, value)
    return options


def _duration_s(name: str, value: str) -> float:
    match = _DURATION.match(value.strip())
    seconds = float(match["n"]) * _UNIT_S[match["unit"] or "s"] if match else math.nan
    if not math.isfinite(seconds):
        raise ConfigError(f"http handler: {name} must be a duration like 30s, 10m or 2h, got {value!r}")
    return seconds


def check_http_target(target: str) -> None:
    parse_http_target(target)


# kind -> the check of its target's syntax. A new kind is one more line here, and one HandlerKind wired by the
# composition root.
KNOWN_KINDS: Mapping[str, Callable[[str], None]] = {
    LAMBDA: check_lambda_target,
    PYTHON: check_python_target,
    JOBS: check_jobs_target,
    HTTP: check_http_target,
}


@dataclass(frozen=True)
class HandlerSpec:
    """A parsed handler string."""

    kind: str
    target: str  # function name/ARN, "package.module:function", "package.module", ... as the kind defines it

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_handler(handler: str) -> HandlerSpec:
    """Split `kind:target` (any kind: whether it exists is not asked here), or raise ConfigError if it is not one."""
    kind, sep, target = handler.partition(":")
    if not sep or not target or not _KIND.match(kind):
        raise ConfigError(
            f"handler must be 'kind:target' (such as 'lambda:NAME_OR_ARN' or 'python:package.module:function'), "
            f"got {handler!r}"
        )
    return HandlerSpec(kind, target)


def validate_handler(handler: str, *, kinds: Collection[str] = KNOWN_KINDS) -> HandlerSpec:
    """Parse a handler string, check its kind is one of `kinds` and, for a known kind, its target's syntax.

    `kinds` defaults to KNOWN_KINDS; a kind added to it (a test's, a deployment's own) is checked for its name only.
    """
    spec = parse_handler(handler)
    if spec.kind not in kinds:
        raise ConfigError(f"unknown handler kind {spec.kind!r} in {handler!r}: use one of {_listed(kinds)}")
    check = KNOWN_KINDS.get(spec.kind)
    if check is not None:
        check(spec.target)
    return spec


def _listed(kinds: Collection[str]) -> str:
    return ", ".join(f"'{kind}:'" for kind in sorted(kinds))


def resolve_python(target: str) -> Callable[..., Any]:
    """Import the function a python: target (`package.module:function`) names.

    ConfigError for a target of the wrong shape, HandlerError when it cannot be imported: never a crash.
    """
    check_python_target(target)
    module_name, _, function_name = target.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in any way the user's module does
        raise HandlerError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HandlerError(f"{module_name!r} has no callable {function_name!r}")
    return function  # type: ignore[no-any-return]
