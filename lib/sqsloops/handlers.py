"""Handler strings: `lambda:NAME_OR_ARN` forwards batches to a function, `python:module:function` runs in-process."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqsloops.errors import ConfigError, HandlerError

LAMBDA: Literal["lambda"] = "lambda"
PYTHON: Literal["python"] = "python"

# A function name, partial ARN or full ARN, with an optional version or alias (Lambda's own FunctionName pattern).
_LAMBDA_TARGET = re.compile(
    r"^(arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-gov)?-[a-z]+-\d{1}:\d{12}:function:)?"
    r"[a-zA-Z0-9-_]{1,64}(:(\$LATEST|[a-zA-Z0-9-_]{1,128}))?$"
)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class HandlerSpec:
    """A parsed handler string."""

    kind: Literal["lambda", "python"]
    target: str  # function name/ARN, or "package.module:function"

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_handler(handler: str) -> HandlerSpec:
    """Parse and validate a handler string, or raise ConfigError saying what a valid one looks like."""
    kind, sep, target = handler.partition(":")
    if not sep or not target:
        raise ConfigError(f"handler must be 'lambda:NAME_OR_ARN' or 'python:package.module:function', got {handler!r}")
    if kind == LAMBDA:
        if not _LAMBDA_TARGET.match(target):
            raise ConfigError(f"not a Lambda function name or ARN: {target!r}")
        return HandlerSpec(LAMBDA, target)
    if kind == PYTHON:
        module, sep, function = target.rpartition(":")
        if not sep or not _DOTTED.match(module) or not _IDENTIFIER.match(function):
            raise ConfigError(f"python handler must be 'package.module:function', got {target!r}")
        return HandlerSpec(PYTHON, target)
    raise ConfigError(f"unknown handler kind {kind!r}: use 'lambda:' or 'python:'")


def resolve_python(spec: HandlerSpec) -> Callable[..., Any]:
    """Import the function a python: handler names; HandlerError (never a crash) when it cannot."""
    module_name, _, function_name = spec.target.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in any way the user's module does
        raise HandlerError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HandlerError(f"{module_name!r} has no callable {function_name!r}")
    return function  # type: ignore[no-any-return]
