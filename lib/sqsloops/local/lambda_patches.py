"""The moto 5.2.5 patches that hand Lambda invocations, and SNS deliveries to Lambda, to the active executor.

moto 5.2.5 runs Lambda code only in Docker. These replace `LambdaFunction.invoke` (every Invoke),
`LambdaBackend.send_sns_message` and `Subscription.publish` for `lambda` subscriptions (SNS deliveries, which are
asynchronous invocations with SNS's event shape). With no executor active they call moto's originals.

Pinned: they refuse, loudly, any other moto version or a changed shape of what they replace.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from typing import Any, Protocol

import moto
from moto.awslambda import models as lambda_models
from moto.sns import models as sns_models

from sqsloops.errors import MotoChangedError
from sqsloops.local.sns_events import sns_event

PINNED_MOTO_VERSION = "5.2.5"


class Target(Protocol):
    """What the patches call: the executor."""

    def invoke(self, fn: Any, body: Any, request_headers: Any, response_headers: dict[str, Any]) -> bytes: ...

    def submit(self, function_ref: str, payload: bytes) -> None: ...


_install_lock = threading.Lock()
_active: Target | None = None
_originals: dict[str, Any] = {}


def activate(target: Target) -> None:
    """Patch moto (once per process) and route its invocations to `target`: one at a time, backends are global."""
    global _active  # noqa: PLW0603 - one executor per process: moto's backends are process-wide
    with _install_lock:
        if _active is not None and _active is not target:
            raise RuntimeError("another LambdaExecutor is active in this process; stop it first")
        _patch_moto()
        _active = target


def deactivate(target: Target) -> None:
    """Give moto's originals back their calls, if `target` is the active one; the patches stay installed."""
    global _active  # noqa: PLW0603
    with _install_lock:
        if _active is target:
            _active = None


def is_installed() -> bool:
    return lambda_models.LambdaFunction.invoke is _patched_invoke  # type: ignore[comparison-overlap]


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
            f"sqsloops.local.lambda_patches patches moto {PINNED_MOTO_VERSION} only and found: {'; '.join(problems)}. "
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


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters) if callable(function) else []


# ---------------------------------------------------------------- the replacements


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
