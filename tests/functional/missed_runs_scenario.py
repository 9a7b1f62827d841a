"""The restart function's missed-run sweep, traced for tests/functional/test_template_policies.py: a cron job whose
firings were missed (one is enqueued, the others recorded skipped) and one whose queue is gone (its row is taken
back), swept from the catalog as the restart function does on its schedule.

Kept apart from the policies test (shared by every function's scenario): that module only hooks it in. It runs
after the jobs API's scenario, on the catalog and schedule group that one made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from restart import lambda_function as restart_app
from sqsloops.clock import ManualClock
from sqsloops.jobs.catalog import CatalogEntry, read_catalog, write_catalog
from sqsloops.jobs.missed import CRON_SCHEDULE_PREFIX
from sqsloops.jobs.root import JobsRoot
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.fixtures.fakes import RecordingLauncher
from tests.functional.jobs_api_scenario import scheduler_role_arn


def run_missed_runs(
    *,
    aws: Clients,
    settings: Settings,
    stack: str,
    account: str,
    recording: Callable[[], contextlib.AbstractContextManager[None]],
) -> dict[str, Any]:
    """One scheduled restart run, three hours after two hourly cron jobs' schedules were created; its result."""
    group = f"{stack}-jobs"
    groups = {g["Name"] for g in aws.scheduler.list_schedule_groups().get("ScheduleGroups", []) if "Name" in g}
    if group not in groups:
        aws.scheduler.create_schedule_group(Name=group)
    url = aws.sqs.create_queue(QueueName=f"{stack}-cron_ok")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    gone_url, gone_arn = url.replace("cron_ok", "cron_gone"), arn.replace("cron_ok", "cron_gone")
    catalog = read_catalog(aws.dynamodb, table_name=settings.jobs_table)
    hourly: dict[str, Any] = {"cron": "0 * * * *", "tz": "UTC", "missed": "run_once"}
    entries = {
        **catalog.entries,
        "cron_ok": CatalogEntry(job="cron_ok", queue_url=url, queue_arn=arn, **hourly),
        "cron_gone": CatalogEntry(job="cron_gone", queue_url=gone_url, queue_arn=gone_arn, **hourly),
    }
    write_catalog(aws.dynamodb, table_name=settings.jobs_table, entries=entries, expected_version=catalog.version)
    role = scheduler_role_arn(account, stack)
    for name, target in (("cron_ok", arn), ("cron_gone", gone_arn)):
        aws.scheduler.create_schedule(
            Name=CRON_SCHEDULE_PREFIX + name,
            GroupName=group,
            ScheduleExpression="cron(0 * * * ? *)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": target, "RoleArn": role},
        )
    # moto stamps a schedule's creation with the real clock: the sweep runs 3 h 10 min later
    clock = ManualClock(start_s=time.time() + 3 * 3600 + 600)
    root = JobsRoot(
        dataclasses.replace(settings, schedule_group=group, scheduler_role_arn=role),
        clients=aws,
        clock=clock,
        launcher=RecordingLauncher(),
    )
    with recording():
        result = restart_app.handle({"source": "aws.events"}, None, lambda: root)
    swept = {job["job"]: job for job in result["missed_runs"]["jobs"]}
    assert len(swept["cron_ok"]["enqueued"]) == 1, swept
    assert swept["cron_ok"]["skipped"], swept
    assert swept["cron_gone"]["state"] == "error", swept
    return result
