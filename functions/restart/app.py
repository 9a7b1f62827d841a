"""Restart: every minute (EventBridge schedule), reconcile every queue's loop count and restart stale loops."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from sqsloops.components import Components
from sqsloops.restart import restart
from sqsloops.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Collaborators:
    components: Components
    sqs: SQSClient


@functools.cache
def collaborators() -> Collaborators:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    components = Components.build(
        Settings.from_env(), dynamodb=boto3.client("dynamodb"), lambda_client=boto3.client("lambda")
    )
    return Collaborators(components=components, sqs=boto3.client("sqs"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event (a Scheduled Event) carries nothing we need: every run looks at the whole table."""
    c = collaborators()
    components = c.components
    summary = restart(
        registry=components.registry,
        tokens=components.tokens,
        sqs=c.sqs,
        fleet=components.fleet,
        launcher=components.launcher,
        stale_after_s=components.settings.stale_after_s,
    )
    return summary.as_dict()
