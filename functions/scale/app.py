"""Scale-up and scale-down: SNS delivers a depth alarm's notification; move the loop count toward the backlog.

Two functions (one per topic) share this code: `scale_up` acts on ALARM, `scale_down` on ALARM->OK.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3

from sqsloops.launcher import Launcher
from sqsloops.registry import Registry
from sqsloops.scaler import Scaler
from sqsloops.scaling import AlarmScaling
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens


@functools.cache
def scaling() -> AlarmScaling:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    settings = Settings.from_env()
    dynamodb = boto3.client("dynamodb")
    launcher = Launcher(lambda_client=boto3.client("lambda"), function_name=settings.process_function)
    return AlarmScaling(
        registry=Registry(table_name=settings.queues_table, dynamodb=dynamodb),
        sqs=boto3.client("sqs"),
        scaler=Scaler(
            tokens=Tokens(table_name=settings.loops_table, dynamodb=dynamodb),
            launcher=launcher,
            heartbeat_s=settings.heartbeat_s,
        ),
    )


def scale_up(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add loops up to what the backlog calls for. Never raises for a message it cannot use: SNS would retry it."""
    return {"results": [result.as_dict() for result in scaling().on_event(event, up=True)]}


def scale_down(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """On ALARM->OK, stop loops the backlog no longer needs (never below min_loops)."""
    return {"results": [result.as_dict() for result in scaling().on_event(event, up=False)]}
