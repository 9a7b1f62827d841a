"""`jobs apply`: the plan, what it creates, idempotence (no write on a second run), prune, force, FIFO replacement."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs.catalog import read_catalog
from sqsloops.jobs.envelope import Envelope
from sqsloops.ops.jobs_apply import MAX_RECEIVE_COUNT, SCHEDULED_TIME, JobsApply, import_jobs
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.functional.jobs.apply_kit import (
    APP,
    GROUP,
    MODULE,
    ROLE_ARN,
    STACK,
    JobStack,
    WriteCounter,
    count_writes,
    job_stack,
    redrive,
    resize_slower,
    send_email_serial,
)


@pytest.fixture
def write_counter(monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    return count_writes(monkeypatch)


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    return job_stack(aws, settings, clock)


def without(name: str) -> dict[str, object]:
    return {k: v for k, v in APP.items() if k != name}


def test_the_first_apply_creates_everything_the_jobs_need(stack: JobStack) -> None:
    # Given a module with four jobs (one cron, one serial) on a stack with nothing of them yet
    # When it is applied
    plan = stack.run()

    # Then every step was a create, per queue: queue, DLQ, registration, alarms, DLQ alarm; the schedule; the catalog
    assert {step.action for step in plan.steps} == {"create"}
    assert stack.queue_names() == sorted(
        [f"{STACK}-{q}{s}" for q in ("send_email", "resize", "digest") for s in ("", "-dlq")]
        + [f"{STACK}-charge.fifo", f"{STACK}-charge-dlq.fifo", f"{STACK}-schedules-dlq"]
    )
    resize = stack.attributes(f"{STACK}-resize")
    assert resize["SqsManagedSseEnabled"] == "true"
    assert int(resize["VisibilityTimeout"]) >= 6 * 20
    policy = redrive(resize)
    assert policy["deadLetterTargetArn"] == stack.attributes(f"{STACK}-resize-dlq")["QueueArn"]
    assert int(policy["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert stack.attributes(f"{STACK}-resize-dlq")["SqsManagedSseEnabled"] == "true"
    charge = stack.attributes(f"{STACK}-charge.fifo")
    assert charge["FifoQueue"] == "true"
    assert charge["ContentBasedDeduplication"] == "true"
    # the registration: the jobs: handler, max loops = concurrency, min loops, the rate
    config = stack.root.registry.get(stack.url(f"{STACK}-resize"))
    assert (config.handler, config.max_loops, config.min_loops, config.rate_per_s) == (f"jobs:{MODULE}", 2, 1, 5.0)
    assert config.visibility_timeout_s == int(resize["VisibilityTimeout"])
    assert stack.root.alarms.names(config.queue_url)  # depth alarms, through QueueAdmin
    # the DLQ alarm notifies the Alerts topic
    [alarm] = stack.aws.cloudwatch.describe_alarms(AlarmNames=[f"{STACK}-resize-dlq-not-empty"])["MetricAlarms"]
    assert alarm["AlarmActions"] == [stack.settings.alerts_topic_arn]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": f"{STACK}-resize-dlq"}]
    # one schedule per cron job, in its zone, targeting its queue with a tick envelope
    schedule = stack.schedule("cron-digest")
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["Target"]["Arn"] == stack.attributes(f"{STACK}-digest")["QueueArn"]
    assert schedule["Target"]["RoleArn"] == ROLE_ARN
    fired = Envelope.parse(schedule["Target"]["Input"].replace(SCHEDULED_TIME, "2026-03-30T07:00:00Z"))
    assert (fired.id, fired.job, fired.attempt) == ("digest@2026-03-30T07:00:00Z", "digest", 0)
    # the catalog names every job's queue
    catalog = read_catalog(stack.aws.dynamodb, table_name=stack.settings.jobs_table)
    assert sorted(catalog.entries) == ["charge", "digest", "resize", "send_email"]
    assert catalog.entries["charge"].queue_url == stack.url(f"{STACK}-charge.fifo")


def test_a_dry_run_plans_and_writes_nothing(stack: JobStack, write_counter: WriteCounter) -> None:
    with write_counter.on() as writes:
        plan = stack.plan()
    assert writes == []
    assert len(plan.changes) == len(plan.steps) == 26  # 22, and a failure-rate alarm per job
    assert stack.queue_names() == [f"{STACK}-schedules-dlq"]


def test_a_second_apply_changes_nothing_and_writes_nothing(stack: JobStack, write_counter: WriteCounter) -> None:
    stack.run()
    with write_counter.on() as writes:
        plan = stack.run()
    assert writes == []
    assert {step.action for step in plan.steps} == {"unchanged"}


def test_a_changed_timeout_updates_its_queue_and_registration_only(
    stack: JobStack, write_counter: WriteCounter
) -> None:
    stack.run()
    with write_counter.on() as writes:
        plan = stack.run({**APP, "resize": resize_slower})
    assert [(s.action, s.kind) for s in plan.changes] == [
        ("update", "queue"),
        ("update", "registration"),
        ("update", "alarms"),
    ]
    assert "sqs:SetQueueAttributes" in writes
    assert int(stack.attributes(f"{STACK}-resize")["VisibilityTimeout"]) >= 6 * 40
    assert stack.root.registry.get(stack.url(f"{STACK}-resize")).visibility_timeout_s >= 6 * 40


def test_a_removed_job_is_kept_without_prune_and_removed_with_it(stack: JobStack) -> None:
    stack.run()
    kept = stack.run(without("digest"))  # type: ignore[arg-type]
    assert kept.changes == []
    assert any("digest" in text and "--prune" in text for text in kept.warnings)
    assert f"{STACK}-digest" in stack.queue_names()

    pruned = stack.run(without("digest"), prune=True)  # type: ignore[arg-type]
    assert {(s.action, s.kind) for s in pruned.changes} == {
        ("delete", "schedule"),
        ("update", "catalog"),
        ("delete", "registration"),
        ("delete", "dlq-alarm"),
        ("delete", "failure-alarm"),
        ("delete", "queue"),
        ("delete", "dlq"),
    }
    assert f"{STACK}-digest" not in stack.queue_names()
    assert f"{STACK}-digest-dlq" not in stack.queue_names()
    assert stack.aws.scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
    assert "digest" not in read_catalog(stack.aws.dynamodb, table_name=stack.settings.jobs_table).entries
    assert stack.run(without("digest"), prune=True).changes == []  # type: ignore[arg-type]


def test_a_queue_with_messages_is_deleted_only_with_force(stack: JobStack) -> None:
    stack.run()
    stack.send(f"{STACK}-digest-dlq")  # a dead job waiting for a redrive

    blocked = stack.run(without("digest"), prune=True)  # type: ignore[arg-type]
    assert [(s.action, s.name) for s in blocked.blocked] == [("blocked", f"{STACK}-digest")]
    assert f"{STACK}-digest-dlq" in stack.queue_names()
    assert stack.root.registry.find(stack.url(f"{STACK}-digest")) is not None  # still registered: it drains

    forced = stack.run(without("digest"), prune=True, force=True)  # type: ignore[arg-type]
    assert ("delete", "queue") in {(s.action, s.kind) for s in forced.changes}
    assert f"{STACK}-digest-dlq" not in stack.queue_names()


def test_standard_to_fifo_is_a_replacement(stack: JobStack) -> None:
    stack.run()
    old = stack.url(f"{STACK}-send_email")

    plan = stack.run({**APP, "send_email": send_email_serial})

    assert ("replace", "queue", f"{STACK}-send_email") in {(s.action, s.kind, s.name) for s in plan.steps}
    names = stack.queue_names()
    assert f"{STACK}-send_email.fifo" in names
    assert f"{STACK}-send_email-dlq.fifo" in names
    assert f"{STACK}-send_email" not in names  # it was empty: retired
    assert stack.root.registry.find(old) is None
    entry = read_catalog(stack.aws.dynamodb, table_name=stack.settings.jobs_table).entries["send_email"]
    assert entry.queue_url == stack.url(f"{STACK}-send_email.fifo")


def test_a_replaced_queue_with_messages_keeps_draining(stack: JobStack) -> None:
    stack.run()
    stack.send(f"{STACK}-send_email", json.dumps({"pending": True}))

    plan = stack.run({**APP, "send_email": send_email_serial})

    assert [s.name for s in plan.blocked] == [f"{STACK}-send_email"]
    assert stack.root.registry.find(stack.url(f"{STACK}-send_email")) is not None
    entry = read_catalog(stack.aws.dynamodb, table_name=stack.settings.jobs_table).entries["send_email"]
    assert entry.queue_url.endswith(".fifo")  # new jobs go to the new queue


def test_a_paused_job_stays_paused(stack: JobStack, write_counter: WriteCounter) -> None:
    stack.run()
    url = stack.url(f"{STACK}-resize")
    stack.root.admin.update(url, enabled=False)
    with write_counter.on() as writes:
        plan = stack.run()
    assert writes == []
    assert plan.changes == []
    assert stack.root.registry.get(url).enabled is False


def test_settings_without_the_job_layer_are_refused_before_any_write(
    aws: Clients, settings: Settings, clock: ManualClock, write_counter: WriteCounter
) -> None:
    stack = job_stack(aws, settings, clock)
    bare = JobsApply(
        settings=replace(stack.settings, alerts_topic_arn="", schedule_group=""),
        admin=stack.root.admin,
        sqs=aws.sqs,
        cloudwatch=aws.cloudwatch,
        scheduler=aws.scheduler,
        dynamodb=aws.dynamodb,
    )
    with write_counter.on() as writes, pytest.raises(ConfigError, match="SQSLOOPS_ALERTS_TOPIC_ARN"):
        bare.plan(MODULE, APP)
    assert writes == []


def test_a_queue_name_too_long_for_sqs_is_refused(stack: JobStack) -> None:
    long_stack = replace(stack.settings, stack_name="s" * 40)
    applier = JobsApply(
        settings=long_stack,
        admin=stack.root.admin,
        sqs=stack.aws.sqs,
        cloudwatch=stack.aws.cloudwatch,
        scheduler=stack.aws.scheduler,
        dynamodb=stack.aws.dynamodb,
    )
    from sqsloops.jobs import job

    @job(queue="q" * 40)
    def wide() -> None:
        return None

    with pytest.raises(ConfigError, match=r"over SQS's 80"):
        applier.plan(MODULE, {"wide": wide})


def test_a_module_that_does_not_import_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"cannot import 'no_such_app\.jobs'"):
        import_jobs("no_such_app.jobs")
    with pytest.raises(ConfigError, match="declares no @job"):
        import_jobs("sqsloops.examples")


def test_the_example_app_imports_with_its_demo_jobs() -> None:
    _, jobs = import_jobs("app.jobs")
    assert set(jobs) == {
        "hello",
        "later",
        "minutely",
        "charge_once",
        "flaky",
        "poison",
        "one_at_a_time",
        "limited",
    }
    assert jobs["minutely"].options.tz == "Europe/Paris"
    assert jobs["one_at_a_time"].options.concurrency == 1


def test_the_app_layer_ships_the_package_under_its_name() -> None:
    # the embedded AWS packages app/ as app/Makefile does for sam build: python/app/..., so jobs:app.jobs imports
    import io
    import zipfile
    from pathlib import Path

    from sqsloops.local.provision import zip_layer

    names = zipfile.ZipFile(io.BytesIO(zip_layer(Path(__file__).resolve().parents[3] / "app"))).namelist()
    assert "python/app/jobs.py" in names
    assert "python/app/__init__.py" in names
    assert "python/jobs.py" not in names
