"""Finding a deployed stack's settings: from its CloudFormation Outputs, or from SQSLOOPS_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from sqsloops.errors import ConfigError
from sqsloops.settings import PREFIX, Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STACK_ENV = PREFIX + "STACK"  # a stack name: the CLI reads that stack's Outputs


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


def settings_from_stack(cloudformation: CloudFormationClient, stack_name: str) -> Settings:
    return Settings.from_outputs(stack_name, stack_outputs(cloudformation, stack_name))


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
