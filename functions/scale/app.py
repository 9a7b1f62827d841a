"""Scale-up and scale-down: SNS delivers a depth alarm's notification; move the loop count toward the backlog.

Two functions (one per topic) share this code: `scale_up` acts on ALARM, `scale_down` on ALARM->OK.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3

from sqsloops.alarm_scaling import AlarmScaling
from sqsloops.components import Components
from sqsloops.settings import Settings


@functools.cache
def scaling() -> AlarmScaling:
    """Built on the first invocation, then reused by every invocation of this execution environment."""
    components = Components.build(
        Settings.from_env(), dynamodb=boto3.client("dynamodb"), lambda_client=boto3.client("lambda")
    )
    return AlarmScaling(registry=components.registry, sqs=boto3.client("sqs"), fleet=components.fleet)


def scale_up(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add loops up to what the backlog calls for. Never raises for a message it cannot use: SNS would retry it."""
    return {"results": [result.as_dict() for result in scaling().on_event(event, up=True)]}


def scale_down(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """On ALARM->OK, stop loops the backlog no longer needs (never below min_loops)."""
    return {"results": [result.as_dict() for result in scaling().on_event(event, up=False)]}
