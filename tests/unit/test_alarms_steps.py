"""The alarm threshold rule: staggered levels in (min_loops, max_loops], each where desired_loops reaches it."""

from __future__ import annotations

import pytest

from sqsloops import defaults
from sqsloops.ops.alarms import Alarms, AlarmStep, alarm_steps, queue_hash
from sqsloops.registry import QueueConfig

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def config(**overrides: object) -> QueueConfig:
    return QueueConfig(queue_url=URL, handler="lambda:worker", **overrides)  # type: ignore[arg-type]


def test_scale_from_zero_the_lowest_alarm_fires_on_the_first_visible_message() -> None:
    steps = alarm_steps(config(min_loops=0, max_loops=10, backlog_per_loop=100))

    assert steps[0] == AlarmStep(level=1, threshold=0)  # GreaterThanThreshold 0: one message is enough


def test_with_a_minimum_the_lowest_alarm_asks_for_one_loop_more() -> None:
    steps = alarm_steps(config(min_loops=2, max_loops=10, backlog_per_loop=50))

    assert steps[0] == AlarmStep(level=3, threshold=100)


def test_a_small_range_gets_one_alarm_per_loop_count() -> None:
    steps = alarm_steps(config(min_loops=0, max_loops=3, backlog_per_loop=10))

    assert steps == [AlarmStep(1, 0), AlarmStep(2, 10), AlarmStep(3, 20)]


def test_a_wide_range_is_spread_geometrically_up_to_max_loops() -> None:
    steps = alarm_steps(config(min_loops=0, max_loops=1000, backlog_per_loop=10))

    assert [s.level for s in steps] == [1, 10, 100, 1000]


@pytest.mark.parametrize(
    ("min_loops", "max_loops", "backlog_per_loop"),
    [(0, 1, 1), (0, 5, 100), (1, 20, 7), (3, 4, 1000), (0, 1000, 1), (10, 999, 3), (0, 7, 25)],
)
def test_every_alarm_fires_exactly_where_desired_loops_reaches_its_level(
    min_loops: int, max_loops: int, backlog_per_loop: int
) -> None:
    queue = config(min_loops=min_loops, max_loops=max_loops, backlog_per_loop=backlog_per_loop)

    steps = alarm_steps(queue)

    assert 1 <= len(steps) <= defaults.ALARM_STEPS
    assert steps[0].level == min_loops + 1
    assert steps[-1].level == max_loops
    assert [s.level for s in steps] == sorted({s.level for s in steps})
    for step in steps:
        assert queue.desired_loops(step.threshold) < step.level  # at the threshold: not yet (alarm is OK)
        assert queue.desired_loops(step.threshold + 1) == step.level  # one more message: ALARM, and this level


@pytest.mark.parametrize(
    "queue",
    [config(min_loops=4, max_loops=4), config(min_loops=0, max_loops=0), config(max_loops=10, enabled=False)],
    ids=["fixed-count", "max-zero", "disabled"],
)
def test_queues_that_cannot_scale_up_get_no_alarms(queue: QueueConfig) -> None:
    assert alarm_steps(queue) == []


def test_alarm_names_follow_the_pinned_pattern() -> None:
    alarms = Alarms(cloudwatch=None, stack_name="mystack", scale_up_topic_arn="up", scale_down_topic_arn="down")  # type: ignore[arg-type]

    assert alarms.name(URL, 3) == f"mystack-work-{queue_hash(URL)}-depth-3"
    assert len(queue_hash(URL)) == 8
    assert queue_hash(URL) != queue_hash(URL.replace("us-east-1", "eu-west-1"))
