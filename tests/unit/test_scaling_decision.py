"""The scaling decisions (sqsloops.scaling): desired loops per occasion, and the one stale bound everyone uses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sqsloops import defaults, fleet, scaling, tokens
from sqsloops.alarm_scaling import AlarmNotification, queue_hash
from sqsloops.errors import AlarmNotificationError
from sqsloops.ops import alarms
from sqsloops.queues import Depth
from sqsloops.registry import QueueConfig
from sqsloops.scaling import Target
from sqsloops.tokens import Token

EVENTS = Path(__file__).resolve().parents[2] / "events"
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def config(**changes: Any) -> QueueConfig:
    values: dict[str, Any] = {"min_loops": 1, "max_loops": 5, "backlog_per_loop": 10, **changes}
    return QueueConfig(queue_url=URL, handler="python:sqsloops.examples:noop", **values)


def depth(visible: int, in_flight: int = 0) -> Depth:
    return Depth(visible=visible, in_flight=in_flight, delayed=0)


# --- desired loops ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [(0, 1), (1, 1), (10, 1), (11, 2), (49, 5), (50, 5), (10_000, 5), (-3, 1)],
)
def test_desired_loops_is_the_backlog_over_backlog_per_loop_rounded_up_within_min_and_max(
    backlog: int, expected: int
) -> None:
    assert scaling.desired_loops(config(), backlog) == expected
    assert config().desired_loops(backlog) == expected  # the registration asks the same function


@pytest.mark.parametrize("inactive", [{"enabled": False}, {"broken_reason": "queue does not exist", "broken_at": 1.0}])
def test_a_disabled_or_broken_registration_wants_no_loop_on_any_occasion(inactive: dict[str, Any]) -> None:
    limits = config(min_loops=2, **inactive)

    assert scaling.desired_loops(limits, 1_000) == 0
    for target in (
        scaling.on_alarm(limits, depth(1_000)),
        scaling.on_ok(limits, depth(1_000, 1_000)),
        scaling.on_reconcile(limits, depth(1_000)),
        scaling.on_register(limits),
        scaling.on_update(limits, current=3),
    ):
        assert target.down_to == 0, target
        assert target.up_to in (None, 0), target


def test_an_alarm_scales_up_to_the_visible_backlog_and_never_down() -> None:
    assert scaling.on_alarm(config(), depth(25, in_flight=100)) == Target(up_to=3, down_to=None, desired=3)


def test_an_ok_scales_down_to_visible_plus_in_flight_and_never_up() -> None:
    assert scaling.on_ok(config(), depth(5, in_flight=25)) == Target(up_to=None, down_to=3, desired=3)


def test_reconcile_goes_down_only_to_max_loops_while_busy_and_to_min_loops_once_idle() -> None:
    assert scaling.on_reconcile(config(), depth(25)) == Target(up_to=3, down_to=5, desired=3)
    assert scaling.on_reconcile(config(), depth(0, in_flight=1)) == Target(up_to=1, down_to=5, desired=1)
    assert scaling.on_reconcile(config(), depth(0)) == Target(up_to=1, down_to=1, desired=1)


def test_register_starts_min_loops_and_update_keeps_the_loops_within_the_new_bounds() -> None:
    assert scaling.on_register(config(min_loops=2)) == Target(up_to=2, down_to=2, desired=2)
    assert scaling.on_update(config(min_loops=2), current=0).desired == 2
    assert scaling.on_update(config(max_loops=3), current=4).desired == 3
    assert scaling.on_update(config(), current=4).desired == 4


# --- the stale bound -------------------------------------------------------------------------------------------


def test_the_retirement_grace_is_the_longest_a_live_loop_goes_unproven_everywhere_it_is_used() -> None:
    grace = scaling.unproven_s(heartbeat_s=10, visibility_timeout_s=60)

    assert grace == defaults.UNPROVEN_HEARTBEATS * 10 + scaling.LONG_POLL_FLOOR_S + 60
    assert scaling.retirement_grace_s(heartbeat_s=10, visibility_timeout_s=60) == grace
    assert tokens.retirement_grace_s(heartbeat_s=10, visibility_timeout_s=60) == grace
    assert tokens.LONG_POLL_FLOOR_S == scaling.LONG_POLL_FLOOR_S
    assert fleet.Fleet(tokens=None, launcher=None, heartbeat_s=10).grace_s(60) == grace  # type: ignore[arg-type]


def test_a_token_is_stale_only_once_more_than_stale_after_has_passed() -> None:
    token = Token(queue_url=URL, slot="slot-0000", loop_id="a", created_at=0.0, last_used=100.0)

    assert not scaling.is_stale(100.0, 220.0, stale_after_s=120)
    assert scaling.is_stale(100.0, 220.5, stale_after_s=120)
    assert not token.is_stale(220.0, 120)
    assert token.is_stale(220.5, 120)


@pytest.mark.parametrize(("heartbeat_s", "stale_after_s"), [(10, 120), (1, 12), (1, 7.5), (0.5, 6), (3, 20), (10, 20)])
def test_the_longest_visibility_timeout_is_the_last_whole_second_that_fits_stale_after(
    heartbeat_s: float, stale_after_s: float
) -> None:
    longest = scaling.longest_visibility_timeout_s(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
    fits = [
        scaling.fits_stale_after(visibility_timeout_s=v, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        for v in (longest, longest + 1)
    ]

    assert fits == [True, False]  # (negative: not even a 0 s timeout fits that stack)
    # a loop busy with batches that long proves itself before the sweep calls it dead
    assert scaling.unproven_s(heartbeat_s=heartbeat_s, visibility_timeout_s=longest) <= stale_after_s


def test_the_longest_visibility_timeout_of_the_default_stack_is_unchanged() -> None:
    assert scaling.longest_visibility_timeout_s(heartbeat_s=defaults.HEARTBEAT_S, stale_after_s=120) == 99
    assert math.isclose(scaling.unproven_s(heartbeat_s=defaults.HEARTBEAT_S, visibility_timeout_s=99), 120)


# --- the alarm's queue, by key ----------------------------------------------------------------------------------


def alarm_message(**changes: Any) -> dict[str, Any]:
    event = json.loads((EVENTS / "alarm_scale_up.json").read_text())
    body: dict[str, Any] = json.loads(event["Records"][0]["Sns"]["Message"])
    body.update(changes)
    return body


def test_the_runtime_hashes_queue_urls_as_the_alarms_are_named() -> None:
    named = alarms.Alarms(
        cloudwatch=None,  # type: ignore[arg-type]
        stack_name="sqsloops",
        scale_up_topic_arn="up",
        scale_down_topic_arn="down",
    ).name(URL, 3)

    assert queue_hash(URL) == alarms.queue_hash(URL)
    assert named == f"sqsloops-work-{queue_hash(URL)}-depth-3"


def test_the_registered_url_comes_first_among_the_spellings_tried() -> None:
    local = "http://sqs.us-east-1.localhost.localstack.cloud:4566/123456789012/work"
    body = alarm_message(
        AlarmName=f"stack-work-{queue_hash(local)}-depth-1", AlarmDescription=f"sqsloops: 1 loop(s) ... in {local}"
    )

    urls = AlarmNotification.from_message(json.dumps(body)).queue_urls(endpoint_url="http://localhost:4566")

    assert urls[0] == local
    assert URL in urls
    assert "http://localhost:4566/123456789012/work" in urls
    assert all(url.endswith("/123456789012/work") for url in urls)


def test_a_description_naming_another_queue_is_not_tried() -> None:
    body = alarm_message(AlarmDescription="sqsloops: in https://sqs.us-east-1.amazonaws.com/210987654321/other")

    assert AlarmNotification.from_message(json.dumps(body)).queue_urls() == [
        URL,
        "https://us-east-1.queue.amazonaws.com/123456789012/work",
        "https://queue.amazonaws.com/123456789012/work",
    ]


@pytest.mark.parametrize("dimensions", [7, "QueueName", {"name": "QueueName", "value": "work"}, [3, None]])
def test_dimensions_that_are_not_a_list_of_objects_are_a_bad_record_not_a_crash(dimensions: Any) -> None:
    body = alarm_message()
    body["Trigger"]["Dimensions"] = dimensions
    good = json.loads((EVENTS / "alarm_scale_up.json").read_text())["Records"][0]
    bad = json.loads(json.dumps(good))
    bad["Sns"]["Message"] = json.dumps(body)

    results = AlarmNotification.from_sns_event({"Records": [bad, good]})

    assert isinstance(results[0], AlarmNotificationError)
    assert isinstance(results[1], AlarmNotification)
    assert results[1].queue_name == "work"
