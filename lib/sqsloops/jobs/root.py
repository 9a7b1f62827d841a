"""The composition root of a function that runs or enqueues jobs: the core Root plus the job layer's collaborators.

The core root (sqsloops.root) knows nothing of jobs, so arrows keep pointing down (jobs -> core): the process
function, the jobs API, the restart function (for the missed-run sweep of cron jobs) and the operator tools
(OpsRoot) build a JobsRoot; the scale functions, which never touch a job, build the core Root.
"""

from __future__ import annotations

from functools import cached_property

from sqsloops.dispatch import HandlerKind
from sqsloops.errors import ConfigError
from sqsloops.handlers import HTTP, JOBS
from sqsloops.jobs.catalog import CatalogReader
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.http import HttpKind, SecretSource
from sqsloops.jobs.missed import CatalogSweep, sweep_catalog
from sqsloops.jobs.receipts import ReceiptDesk
from sqsloops.jobs.runner import JobsKind
from sqsloops.jobs.store import JobStore
from sqsloops.root import Root


class JobsRoot(Root):
    """Adds the Jobs table's store, the job client and the `jobs:` handler kind to the core root."""

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
    def http_secrets(self) -> SecretSource | None:
        """The http: workers' signing secret, read (and cached) on first use; None when the stack has none."""
        if not self.settings.http_secret_arn:
            return None
        return SecretSource(
            secretsmanager=self.clients.get("secretsmanager"), secret_id=self.settings.http_secret_arn, clock=self.clock
        )

    @cached_property
    def receipt_desk(self) -> ReceiptDesk | None:
        """Where http: workers' receipts land (POST /jobs/{id}/receipt); None without a Jobs table or a secret."""
        store, secrets = self.job_store, self.http_secrets
        if store is None or secrets is None:
            return None
        return ReceiptDesk(store=store, sqs=self.sqs, secrets=secrets)

    def handler_kinds(self) -> dict[str, HandlerKind]:
        """The core kinds, the job runner (`jobs:`), which asks for the Jobs table only when it runs a job, and the
        web-app workers (`http:`), which ask for the table and the secret when a registration first uses them."""
        jobs = JobsKind(sqs=self.sqs, store=lambda: self.job_store, clock=self.clock)
        http = HttpKind(store=lambda: self.job_store, secrets=lambda: self.http_secrets, clock=self.clock)
        return {**super().handler_kinds(), JOBS: jobs, HTTP: http}

    def sweep_missed_runs(self) -> CatalogSweep | None:
        """The missed-run sweep of the catalog's cron jobs (jobs/missed.py), with the stack's schedule group, so a
        disabled schedule is left alone; None when the stack has no Jobs table. Never raises."""
        store = self.job_store
        if store is None:
            return None
        return sweep_catalog(
            dynamodb=self.clients.dynamodb,
            table_name=self.settings.jobs_table,
            store=store,
            client=lambda: self.job_client,
            clock=self.clock,
            scheduler=self.clients.scheduler if self.settings.schedule_group else None,
            schedule_group=self.settings.schedule_group,
        )
