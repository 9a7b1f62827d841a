"""The whole scaling cycle on the embedded AWS: a burst raises the loops to max through real alarm notifications
(evaluator -> SNS -> scale-up function), the loops drain the queue, and the loops fall back to min."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqsloops.ops.registration import QueueAdmin
from sqsloops.registry import QueueConfig
from tests.e2e.conftest import eventually, is_empty, send_bodies
from tests.e2e.handlers import read_log

pytestmark = pytest.mark.e2e

BURST = 400
MIN_LOOPS, MAX_LOOPS = 1, 4
BACKLOG_PER_LOOP = 25  # alarms at levels 2, 3, 4: more than 25, 50, 75 visible messages


def alarm_states(registrations: QueueAdmin, cloudwatch: Any, queue_url: str) -> dict[str, str]:
    names = registrations.alarms.names(queue_url)
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] if names else []
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def test_a_burst_scales_loops_up_to_max_through_alarms_drains_the_queue_and_scales_back_to_min(
    embedded_aws: Any,
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    tmp_path: Path,
) -> None:
    sqs, cloudwatch = embedded_aws.client("sqs"), embedded_aws.client("cloudwatch")
    tokens = registrations.tokens
    # Given a queue registered with one loop at least and four at most, handled at ~25 messages/s per loop
    queue_url, dlq_url = make_queue_with_dlq("cycle")
    register(
        queue_url,
        handler="python:tests.e2e.handlers:slow",
        min_loops=MIN_LOOPS,
        max_loops=MAX_LOOPS,
        backlog_per_loop=BACKLOG_PER_LOOP,
        batch_size=10,
        visibility_timeout_s=30,
    )
    alarm_names = registrations.alarms.names(queue_url)
    assert len(alarm_names) == MAX_LOOPS - MIN_LOOPS
    assert tokens.count(queue_url) == MIN_LOOPS

    # When a burst arrives
    log = tmp_path / "processed.jsonl"
    ids = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(BURST)]
    send_bodies(sqs, queue_url, [{"id": message_id, "log": str(log)} for message_id in ids])

    # Then the depth alarms go to ALARM and the loops grow to max_loops (their tokens, read back)
    seen_alarm: set[str] = set()

    def scaled_to_max() -> bool:
        states = alarm_states(registrations, cloudwatch, queue_url)
        seen_alarm.update(name for name, state in states.items() if state == "ALARM")
        return bool(seen_alarm) and tokens.count(queue_url) == MAX_LOOPS

    eventually(scaled_to_max, what=f"an alarm in ALARM and {MAX_LOOPS} loops", interval_s=0.2)

    # And the queue drains, every message handled at least once (moto may deliver one twice to concurrent loops)
    eventually(lambda: is_empty(sqs, queue_url), what="the queue drained")
    assert {entry["id"] for entry in read_log(log)} == set(ids)

    # And the alarms return to OK and the loops fall back to min_loops
    eventually(
        lambda: set(alarm_states(registrations, cloudwatch, queue_url).values()) == {"OK"},
        what="every alarm back to OK",
    )
    eventually(lambda: tokens.count(queue_url) == MIN_LOOPS, what=f"{MIN_LOOPS} loop left")
    # And nothing failed on the way
    assert is_empty(sqs, dlq_url)
