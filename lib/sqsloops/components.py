"""The stack's collaborators, wired once from its Settings: what every function and the CLI compose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.fleet import Fleet
from sqsloops.launcher import Launcher
from sqsloops.registry import Registry
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient


@dataclass(frozen=True)
class Components:
    """Registry, Tokens, Launcher and Fleet of one stack, sharing one clock (the Fleet's grace needs the Tokens')."""

    settings: Settings
    registry: Registry
    tokens: Tokens
    launcher: Launcher
    fleet: Fleet

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        dynamodb: DynamoDBClient,
        lambda_client: LambdaClient,
        clock: Clock = SYSTEM_CLOCK,
        launcher: Launcher | None = None,
    ) -> Components:
        """`launcher` replaces the one that invokes the stack's process function (a test seam)."""
        tokens = Tokens(table_name=settings.loops_table, dynamodb=dynamodb, clock=clock)
        launcher = launcher or Launcher(
            lambda_client=lambda_client, function_name=settings.process_function, clock=clock
        )
        return cls(
            settings=settings,
            registry=Registry(table_name=settings.queues_table, dynamodb=dynamodb, clock=clock),
            tokens=tokens,
            launcher=launcher,
            fleet=Fleet(tokens=tokens, launcher=launcher, heartbeat_s=settings.heartbeat_s, clock=clock),
        )
