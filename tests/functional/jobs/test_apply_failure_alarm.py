"""`jobs apply` and each job's failure-rate alarm on moto: created beside the DLQ alarm, unchanged on a second apply,
updated when the threshold changes, deleted when turned off or with the job (`--prune`); and it watches the metrics
the runner's EMF lines really carry."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs import job
from sqsloops.jobs.errors import JobDefinitionError
from sqsloops.jobs.metrics import FAILED, SUCCEEDED, JobMetrics
from sqsloops.ops.job_alarms import alarm_name
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.functional.jobs.apply_kit import APP, STACK, JobStack, WriteCounter, count_writes, job_stack


@job(name="resize", concurrency=2, min_loops=1, timeout="20s", rate="5/s", failure_alarm=0.5)
def resize_tolerant(image: str) -> None:
    """resize, alarming only when more than half its attempts fail."""
    return None


@job(name="resize", concurrency=2, min_loops=1, timeout="20s", rate="5/s", failure_alarm=None)
def resize_unwatched(image: str) -> None:
    """resize with no failure-rate alarm."""
    return None


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    return job_stack(aws, settings, clock)


@pytest.fixture
def write_counter(monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    return count_writes(monkeypatch)


def alarm(stack: JobStack, job_name: str) -> dict[str, Any] | None:
    found = stack.aws.cloudwatch.describe_alarms(AlarmNames=[alarm_name(STACK, job_name)])["MetricAlarms"]
    return dict(found[0]) if found else None


def failure_steps(plan: Any) -> list[tuple[str, str]]:
    return [(step.action, step.name) for step in plan.steps if step.kind == "failure-alarm"]


def test_apply_creates_a_failure_rate_alarm_per_job_notifying_the_alerts_topic(stack: JobStack) -> None:
    plan = stack.run()

    assert failure_steps(plan) == [("create", alarm_name(STACK, name)) for name in sorted(APP)]
    created = alarm(stack, "resize")
    assert created is not None
    assert created["AlarmActions"] == created["OKActions"] == [stack.settings.alerts_topic_arn]
    assert created["TreatMissingData"] == "notBreaching"
    assert (created["ComparisonOperator"], created["Threshold"]) == ("GreaterThanThreshold", 0.2)
    queries = {query["Id"]: query for query in created["Metrics"]}
    assert queries["rate"]["ReturnData"] is True
    assert "failed" in queries["rate"]["Expression"]
    assert "succeeded" in queries["rate"]["Expression"]
    assert queries["failed"]["MetricStat"]["Metric"]["MetricName"] == FAILED
    assert queries["succeeded"]["MetricStat"]["Metric"]["MetricName"] == SUCCEEDED
    assert queries["failed"]["MetricStat"]["Stat"] == "Sum"
    assert alarm_name(STACK, "resize").startswith(f"{STACK}-")  # the Alerts topic's policy admits <stack>-* only


def test_the_alarm_watches_the_namespace_and_dimensions_the_runner_emits(stack: JobStack) -> None:
    stack.run()
    metrics = JobMetrics()
    metrics.count("resize", FAILED)
    out = io.StringIO()
    with redirect_stdout(out):
        metrics.flush()
    [line] = [json.loads(text) for text in out.getvalue().splitlines() if text.startswith("{")]
    [directive] = line["_aws"]["CloudWatchMetrics"]
    emitted = sorted((name, line[name]) for name in directive["Dimensions"][0])

    created = alarm(stack, "resize")
    assert created is not None
    for query in created["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            assert metric["Namespace"] == directive["Namespace"]
            assert sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]) == emitted


def test_a_second_apply_leaves_the_alarms_unchanged_and_writes_nothing(
    stack: JobStack, write_counter: WriteCounter
) -> None:
    stack.run()
    with write_counter.on() as writes:
        plan = stack.run()
    assert writes == []
    assert {action for action, _ in failure_steps(plan)} == {"unchanged"}


def test_a_changed_threshold_updates_that_jobs_alarm_only(stack: JobStack) -> None:
    stack.run()

    plan = stack.run({**APP, "resize": resize_tolerant})

    # (the catalog entry changes too: it names the module resize is declared in, this one)
    assert [(s.action, s.kind, s.name) for s in plan.changes if s.kind != "catalog"] == [
        ("update", "failure-alarm", alarm_name(STACK, "resize"))
    ]
    updated = alarm(stack, "resize")
    assert updated is not None
    assert updated["Threshold"] == 0.5
    assert stack.run({**APP, "resize": resize_tolerant}).changes == []


def test_failure_alarm_none_deletes_the_alarm(stack: JobStack) -> None:
    stack.run()

    plan = stack.run({**APP, "resize": resize_unwatched})

    assert failure_steps(plan) == [
        ("unchanged", alarm_name(STACK, "charge")),
        ("unchanged", alarm_name(STACK, "digest")),
        ("delete", alarm_name(STACK, "resize")),
        ("unchanged", alarm_name(STACK, "send_email")),
    ]
    assert alarm(stack, "resize") is None
    again = failure_steps(stack.run({**APP, "resize": resize_unwatched}))
    assert alarm_name(STACK, "resize") not in {name for _, name in again}  # nothing left to plan for it


def test_a_removed_job_keeps_its_alarm_without_prune_and_loses_it_with_prune(stack: JobStack) -> None:
    stack.run()
    rest = {name: fn for name, fn in APP.items() if name != "digest"}

    kept = stack.run(rest)
    assert alarm(stack, "digest") is not None
    assert kept.changes == []

    pruned = stack.run(rest, prune=True)
    assert ("delete", "failure-alarm", alarm_name(STACK, "digest")) in {
        (s.action, s.kind, s.name) for s in pruned.steps
    }
    assert alarm(stack, "digest") is None
    assert alarm(stack, "resize") is not None
    assert stack.run(rest, prune=True).changes == []


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, True, "20%", float("nan")])
def test_a_failure_alarm_that_is_not_a_rate_is_refused_at_import_naming_job_and_option(value: object) -> None:
    def nightly() -> None: ...

    with pytest.raises(JobDefinitionError) as caught:
        job(failure_alarm=value)(nightly)  # type: ignore[arg-type]
    assert "nightly" in str(caught.value)
    assert "failure_alarm" in str(caught.value)
    assert "between 0 and 1" in str(caught.value)
