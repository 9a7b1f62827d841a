"""The one composition root: every collaborator of the runtime, built once from one Settings, one Clients, one Clock.

Functions, the operator tools (their own root extends this one), benchmarks and tests all build through here, so a
collaborator is wired the same way everywhere. Each is built on first use and then reused by the execution
environment (a Lambda container keeps its Root between invocations).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Self

from sqsloops.alarm_scaling import AlarmScaling
from sqsloops.clients import ClientBudgets, Clients
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Dispatchers, HandlerKind, core_kinds
from sqsloops.fleet import Fleet
from sqsloops.launcher import Launcher
from sqsloops.registry import CachedRegistry, Registry
from sqsloops.settings import Settings
from sqsloops.tokens import Tokens

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class Root:
    """`launcher` replaces the one that invokes the stack's process function (a test seam).

    Clients built here get budgets from `settings` (see sqsloops.clients); given ones keep their own.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clients: Clients | None = None,
        clock: Clock = SYSTEM_CLOCK,
        launcher: Launcher | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients or Clients(budgets=ClientBudgets.for_settings(settings))
        self.clock = clock
        self._launcher = launcher

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Self:
        """What a function builds: the settings its template gives it, clients of its own role."""
        return cls(Settings.from_env(environ), clock=clock)

    @property
    def sqs(self) -> SQSClient:
        return self.clients.sqs

    @cached_property
    def registry(self) -> Registry:
        return Registry(table_name=self.settings.queues_table, dynamodb=self.clients.dynamodb, clock=self.clock)

    @cached_property
    def cached_registry(self) -> CachedRegistry:
        """The loop's view of registrations: re-read at most every CONFIG_TTL_S."""
        return CachedRegistry(self.registry, clock=self.clock)

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(table_name=self.settings.loops_table, dynamodb=self.clients.dynamodb, clock=self.clock)

    @cached_property
    def launcher(self) -> Launcher:
        return self._launcher or Launcher(
            lambda_client=self.clients.lambda_, function_name=self.settings.process_function, clock=self.clock
        )

    @cached_property
    def fleet(self) -> Fleet:
        return Fleet(
            tokens=self.tokens, launcher=self.launcher, heartbeat_s=self.settings.heartbeat_s, clock=self.clock
        )

    def handler_kinds(self) -> dict[str, HandlerKind]:
        """The handler kinds this root's loops may run: the core ones; a wing's root adds its own (jobs.root)."""
        return core_kinds(self.clients.lambda_forwarding)

    @cached_property
    def dispatchers(self) -> Dispatchers:
        return Dispatchers(kinds=self.handler_kinds())

    @cached_property
    def alarm_scaling(self) -> AlarmScaling:
        return AlarmScaling(registry=self.registry, sqs=self.sqs, fleet=self.fleet)
