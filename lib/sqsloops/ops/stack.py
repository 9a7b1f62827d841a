"""Finding a deployed stack's settings: from its CloudFormation Outputs, or from SQSLOOPS_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from sqsloops import defaults
from sqsloops.errors import ConfigError
from sqsloops.settings import PREFIX, Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STACK_ENV = PREFIX + "STACK"  # a stack name: the CLI reads that stack's Outputs

# The template's Outputs the CLI needs (Settings fields: queues_table, loops_table, ...), and its timing knobs.
REQUIRED_OUTPUTS = ("QueuesTableName", "LoopsTableName", "ProcessFunctionName", "ScaleUpTopicArn", "ScaleDownTopicArn")
NUMERIC_OUTPUTS = {
    "HeartbeatSeconds": ("heartbeat_s", defaults.HEARTBEAT_S),
    "StaleAfterSeconds": ("stale_after_s", defaults.STALE_AFTER_S),
    "AlarmPeriodSeconds": ("alarm_period_s", defaults.ALARM_PERIOD_S),
}


def stack_outputs(cloudformation: CloudFormationClient, stack_name: str) -> dict[str, str]:
    """A stack's Outputs as {key: value}; ConfigError (one line) when the stack does not exist."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise ConfigError(f"stack not found: {stack_name} (check --stack and --region)") from exc
        raise
    if not stacks:
        raise ConfigError(f"stack not found: {stack_name} (check --stack and --region)")
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


def settings_from_outputs(stack_name: str, outputs: Mapping[str, str]) -> Settings:
    """Settings from a stack's Outputs; ConfigError naming every missing or malformed key."""
    missing = sorted(key for key in REQUIRED_OUTPUTS if not outputs.get(key))
    if missing:
        raise ConfigError(f"stack {stack_name} is not an sqsloops stack: missing outputs {', '.join(missing)}")
    numbers: dict[str, float] = {}
    for key, (name, default) in NUMERIC_OUTPUTS.items():
        raw = outputs.get(key, "")
        try:
            value = float(raw) if raw else float(default)
        except ValueError as exc:
            raise ConfigError(f"stack {stack_name} output {key} must be a number, got {raw!r}") from exc
        if value <= 0:
            raise ConfigError(f"stack {stack_name} output {key} must be positive, got {raw!r}")
        numbers[name] = value
    return Settings(
        stack_name=stack_name,
        queues_table=outputs["QueuesTableName"],
        loops_table=outputs["LoopsTableName"],
        process_function=outputs["ProcessFunctionName"],
        scale_up_topic_arn=outputs["ScaleUpTopicArn"],
        scale_down_topic_arn=outputs["ScaleDownTopicArn"],
        heartbeat_s=numbers["heartbeat_s"],
        stale_after_s=numbers["stale_after_s"],
        alarm_period_s=int(numbers["alarm_period_s"]),
    )


def settings_from_stack(cloudformation: CloudFormationClient, stack_name: str) -> Settings:
    return settings_from_outputs(stack_name, stack_outputs(cloudformation, stack_name))


def resolve_settings(
    *,
    stack_name: str | None,
    cloudformation: Callable[[], CloudFormationClient],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The CLI's settings: `--stack NAME`, else the stack named by SQSLOOPS_STACK, else SQSLOOPS_* variables.

    `cloudformation` is a factory so that no client is built when the settings come from the environment.
    """
    env = os.environ if environ is None else environ
    name = stack_name or env.get(STACK_ENV, "")
    if name:
        return settings_from_stack(cloudformation(), name)
    if not env.get(PREFIX + "QUEUES_TABLE") and not env.get(PREFIX + "LOOPS_TABLE"):
        raise ConfigError(
            f"which stack? pass --stack NAME, set {STACK_ENV}=NAME, "
            f"or set {PREFIX}QUEUES_TABLE, {PREFIX}LOOPS_TABLE and the other {PREFIX}* variables"
        )
    return Settings.from_env(env)
