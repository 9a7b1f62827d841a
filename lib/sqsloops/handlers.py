"""Handler strings, `kind:target`: which kinds exist, what their targets look like, and importing `python:` ones.

Every handler is `kind:target`. `KNOWN_KINDS` is the one list of kinds a registration may name, each with the
shape of its target, checked at registration without importing or calling anything:

- `lambda:NAME_OR_ARN` forwards batches to a function;
- `python:package.module:function` runs in the loop's process;
- `jobs:package.module` runs the jobs declared in that module (the job layer's runner).

What runs a kind is another matter: the composition root gives `sqsloops.dispatch.Dispatchers` one HandlerKind per
kind it wires (`core_kinds()` has lambda and python; the job layer adds its own). A kind named here that a loop was
not given fails its messages with that reason, into the DLQ, and never stops the loop.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqsloops.errors import ConfigError, HandlerError

LAMBDA = "lambda"
PYTHON = "python"
JOBS = "jobs"

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


# kind -> the check of its target's syntax. A new kind (http: is next) is one more line here, and one HandlerKind
# wired by the composition root.
KNOWN_KINDS: Mapping[str, Callable[[str], None]] = {
    LAMBDA: check_lambda_target,
    PYTHON: check_python_target,
    JOBS: check_jobs_target,
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
