"""A registration's depth alarms in (moto's) CloudWatch: created, updated in place, pruned and deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from sqsloops.ops.alarms import TAG_QUEUE_URL, Alarms
from sqsloops.registry import QueueConfig
from sqsloops.settings import Settings
from tests import conftest
from tests.conftest import Clients


@pytest.fixture
def alarms(aws: Clients, settings: Settings) -> Alarms:
    return Alarms(
        cloudwatch=aws.cloudwatch,
        stack_name=settings.stack_name,
        scale_up_topic_arn=settings.scale_up_topic_arn,
        scale_down_topic_arn=settings.scale_down_topic_arn,
        period_s=settings.alarm_period_s,
    )


@pytest.fixture
def queue(make_queue: Callable[..., conftest.TestQueue]) -> conftest.TestQueue:
    return make_queue("work")


def stored(aws: Clients, names: list[str]) -> dict[str, dict[str, Any]]:
    """The alarms as CloudWatch describes them, by name."""
    found = aws.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] if names else []
    return {alarm["AlarmName"]: alarm for alarm in found}


def all_alarm_names(aws: Clients) -> set[str]:
    return {alarm["AlarmName"] for alarm in aws.cloudwatch.describe_alarms()["MetricAlarms"]}


def test_put_creates_one_depth_alarm_per_step_wired_to_the_scaling_topics(
    aws: Clients, settings: Settings, alarms: Alarms, queue: conftest.TestQueue
) -> None:
    # Given a registration that scales from zero to 10 loops, 100 messages per loop
    config = QueueConfig(queue_url=queue.url, handler="lambda:worker", min_loops=0, max_loops=10, backlog_per_loop=100)

    # When its alarms are put
    names = alarms.put(config)

    # Then CloudWatch holds one alarm per step, each on this queue's visible depth
    found = stored(aws, names)
    assert set(found) == set(names)
    assert [found[n]["Threshold"] for n in names] == [0.0, 100.0, 400.0, 900.0]  # levels 1, 2, 5, 10
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2", "5", "10"]
    for name in names:
        alarm = found[name]
        assert name.startswith(f"{settings.stack_name}-work-")
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "work"}]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Period"] == settings.alarm_period_s
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [settings.scale_up_topic_arn]
        assert alarm["OKActions"] == [settings.scale_down_topic_arn]
        assert queue.url in alarm["AlarmDescription"]
        tags = aws.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
        assert {"Key": TAG_QUEUE_URL, "Value": queue.url} in tags
    assert alarms.names(queue.url) == names


def test_put_again_changes_nothing_and_keeps_each_alarm_state(
    aws: Clients, alarms: Alarms, queue: conftest.TestQueue
) -> None:
    # Given a queue's alarms, the lowest of them in ALARM
    config = QueueConfig(queue_url=queue.url, handler="lambda:worker", max_loops=3)
    names = alarms.put(config)
    aws.cloudwatch.set_alarm_state(AlarmName=names[0], StateValue="ALARM", StateReason="backlog")

    # When the same registration is put again
    again = alarms.put(config)

    # Then the same alarms exist, and the one in ALARM is still in ALARM (no spurious notifications)
    assert again == names
    assert all_alarm_names(aws) == set(names)
    assert stored(aws, [names[0]])[names[0]]["StateValue"] == "ALARM"


def test_an_update_rewrites_changed_alarms_and_deletes_obsolete_ones(
    aws: Clients, alarms: Alarms, queue: conftest.TestQueue
) -> None:
    # Given alarms for min 0, max 10
    config = QueueConfig(queue_url=queue.url, handler="lambda:worker", max_loops=10, backlog_per_loop=100)
    before = alarms.put(config)

    # When the registration changes to min 1, max 3, 50 messages per loop
    after = alarms.put(replace(config, min_loops=1, max_loops=3, backlog_per_loop=50))

    # Then only the new steps remain, with their new thresholds
    found = stored(aws, after)
    assert all_alarm_names(aws) == set(after)
    assert [n.rsplit("-", 1)[1] for n in after] == ["2", "3"]
    assert [found[n]["Threshold"] for n in after] == [50.0, 100.0]
    assert set(before) - set(after)  # some old ones were really removed


def test_disabling_a_queue_removes_its_alarms(aws: Clients, alarms: Alarms, queue: conftest.TestQueue) -> None:
    config = QueueConfig(queue_url=queue.url, handler="lambda:worker", max_loops=5)
    alarms.put(config)

    assert alarms.put(replace(config, enabled=False)) == []

    assert all_alarm_names(aws) == set()


def test_delete_removes_every_alarm_of_the_queue_and_no_other(
    aws: Clients, alarms: Alarms, make_queue: Callable[..., conftest.TestQueue]
) -> None:
    # Given two registered queues, one named like a prefix of the other
    work, work_more = make_queue("work"), make_queue("work-1")
    alarms.put(QueueConfig(queue_url=work.url, handler="lambda:worker", max_loops=5))
    kept = alarms.put(QueueConfig(queue_url=work_more.url, handler="lambda:worker", max_loops=5))

    # When the first queue's alarms are deleted
    deleted = alarms.delete(work.url)

    # Then exactly its alarms are gone
    assert deleted
    assert alarms.names(work.url) == []
    assert all_alarm_names(aws) == set(kept)
    assert alarms.delete(work.url) == []  # deleting again is harmless
