"""Process: one SQS poller loop. Polls its queue until the invocation's time runs low, then invokes itself again."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.components import Components
from sqsloops.dispatch import Dispatchers
from sqsloops.errors import ConfigError
from sqsloops.launcher import Launcher
from sqsloops.log import logger
from sqsloops.loop import LoopPayload, run_loop
from sqsloops.registry import CachedRegistry
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens

MALFORMED_EVENT = "malformed_event"

# A forwarded batch waits for the handler function, which may run up to Lambda's 15 minute limit.
_FORWARD_READ_TIMEOUT_S = 905

CLOCK: Clock = SYSTEM_CLOCK  # the loop's clock; tests set a controllable one before the first invocation


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    registry: CachedRegistry
    tokens: Tokens
    sqs: Any
    dispatchers: Dispatchers
    launcher: Launcher


@functools.cache
def collaborators(clock: Clock) -> Collaborators:
    """Built on the first invocation, then reused (with the registration cache) by this execution environment."""
    lambda_client = boto3.client("lambda", config=Config(read_timeout=_FORWARD_READ_TIMEOUT_S))
    components = Components.build(
        Settings.from_env(), dynamodb=boto3.client("dynamodb"), lambda_client=lambda_client, clock=clock
    )
    return Collaborators(
        settings=components.settings,
        registry=CachedRegistry(components.registry, clock=clock),
        tokens=components.tokens,
        sqs=boto3.client("sqs"),
        dispatchers=Dispatchers(lambda_client=lambda_client),
        launcher=components.launcher,
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Never raises for an event it cannot use: retrying it could not help."""
    try:
        payload = LoopPayload.parse(event)
    except ConfigError as exc:
        logger.error("malformed process event; ignoring it", extra={"error": str(exc), "event": repr(event)[:500]})
        return {"reason": MALFORMED_EVENT, "recursed": False, "error": str(exc)}
    c = collaborators(CLOCK)
    result = run_loop(
        payload,
        remaining_ms=context.get_remaining_time_in_millis,
        settings=c.settings,
        registry=c.registry,
        tokens=c.tokens,
        sqs=c.sqs,
        dispatchers=c.dispatchers,
        launcher=c.launcher,
        clock=CLOCK,
    )
    return {**payload.as_dict(), **result.as_dict()}
