"""Restart: every minute (EventBridge schedule), reconcile every queue's loop count and restart stale loops."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from sqsloops.launcher import Launcher
from sqsloops.registry import Registry
from sqsloops.restart import restart
from sqsloops.scaler import Scaler
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Collaborators:
    settings: Settings
    registry: Registry
    tokens: Tokens
    sqs: SQSClient
    scaler: Scaler
    launcher: Launcher


@functools.cache
def collaborators() -> Collaborators:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    settings = Settings.from_env()
    dynamodb = boto3.client("dynamodb")
    tokens = Tokens(table_name=settings.loops_table, dynamodb=dynamodb)
    launcher = Launcher(lambda_client=boto3.client("lambda"), function_name=settings.process_function)
    return Collaborators(
        settings=settings,
        registry=Registry(table_name=settings.queues_table, dynamodb=dynamodb),
        tokens=tokens,
        sqs=boto3.client("sqs"),
        scaler=Scaler(tokens=tokens, launcher=launcher, heartbeat_s=settings.heartbeat_s),
        launcher=launcher,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event (a Scheduled Event) carries nothing we need: every run looks at the whole table."""
    c = collaborators()
    summary = restart(
        registry=c.registry,
        tokens=c.tokens,
        sqs=c.sqs,
        scaler=c.scaler,
        launcher=c.launcher,
        stale_after_s=c.settings.stale_after_s,
    )
    return summary.as_dict()
