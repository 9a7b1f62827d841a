"""The one composition root: every collaborator of the runtime, built once from one Settings, one Clients, one Clock.

Functions, the CLI (through `sqsloops.ops.root.OpsRoot`), benchmarks and tests all build through here, so a
collaborator is wired the same way everywhere. Each is built on first use and then reused by the execution
environment (a Lambda container keeps its Root between invocations).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from sqsloops.alarm_scaling import AlarmScaling
from sqsloops.clients import ClientBudgets, Clients
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.dispatch import Dispatchers, core_kinds
from sqsloops.errors import ConfigError
from sqsloops.fleet import Fleet
from sqsloops.handlers import JOBS
from sqsloops.jobs.catalog import CatalogReader
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.runner import JobsKind
from sqsloops.jobs.store import JobStore
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
    def from_env(cls, environ: Mapping[str, str] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> Root:
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

    @cached_property
    def job_store(self) -> JobStore | None:
        """The Jobs table's store, built on first use; None when the stack has no Jobs table (no job layer)."""
        if not self.settings.jobs_table:
            return None
        return JobStore(table_name=self.settings.jobs_table, dynamodb=self.clients.dynamodb, clock=self.clock)

    @cached_property
    def job_client(self) -> JobClient:
        """Enqueues jobs (`fn.enqueue`, `jobs.enqueue`, the CLI and the HTTP API); installed as the process's
        enqueuer on first use. ConfigError naming what is missing on a stack without the job layer."""
        missing = [
            name
            for name, value in (
                ("JOBS_TABLE", self.settings.jobs_table),
                ("SCHEDULE_GROUP", self.settings.schedule_group),
                ("SCHEDULER_ROLE_ARN", self.settings.scheduler_role_arn),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"the stack has no job layer: SQSLOOPS_{', SQSLOOPS_'.join(missing)} not set")
        store = self.job_store
        assert store is not None  # jobs_table is set
        client = JobClient(
            sqs=self.sqs,
            scheduler=self.clients.scheduler,
            store=store,
            schedule_group=self.settings.schedule_group,
            scheduler_role_arn=self.settings.scheduler_role_arn,
            schedule_dlq_arn=self.settings.schedule_dlq_arn or None,
            catalog=CatalogReader(
                dynamodb=self.clients.dynamodb, table_name=self.settings.jobs_table, clock=self.clock
            ),
            clock=self.clock,
        )
        client.install()
        return client

    @cached_property
    def dispatchers(self) -> Dispatchers:
        """The core kinds, and the job runner (`jobs:`), which asks for the Jobs table only when it runs a job."""
        jobs = JobsKind(sqs=self.sqs, store=lambda: self.job_store, clock=self.clock)
        return Dispatchers(kinds={**core_kinds(self.clients.lambda_forwarding), JOBS: jobs})

    @cached_property
    def alarm_scaling(self) -> AlarmScaling:
        return AlarmScaling(registry=self.registry, sqs=self.sqs, fleet=self.fleet)
