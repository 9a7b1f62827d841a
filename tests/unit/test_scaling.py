"""Parsing alarm notifications as SNS delivers them to the scale functions (the events/*.json samples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sqsloops.alarm_scaling import ALARM, INSUFFICIENT_DATA, OK, AlarmNotification
from sqsloops.errors import AlarmNotificationError
from sqsloops.queues import QueueRef

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def one(event: dict[str, Any]) -> AlarmNotification:
    [parsed] = AlarmNotification.from_sns_event(event)
    assert isinstance(parsed, AlarmNotification), parsed
    return parsed


def with_message(message: str) -> dict[str, Any]:
    event = load("alarm_scale_up.json")
    event["Records"][0]["Sns"]["Message"] = message
    return event


def alarm_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load("alarm_scale_up.json")["Records"][0]["Sns"]["Message"])
    return body


def test_scale_up_sample_is_an_alarm_transition_of_the_work_queue() -> None:
    notification = one(load("alarm_scale_up.json"))

    assert (notification.old_state, notification.new_state) == (OK, ALARM)
    assert notification.queue_name == "work"
    assert notification.account_id == "123456789012"
    assert notification.region == "us-east-1"  # from AlarmArn: the message's "Region" is a display name
    assert notification.alarm_name.endswith("-depth-1")


def test_scale_down_sample_is_an_alarm_to_ok_transition() -> None:
    notification = one(load("alarm_scale_down.json"))

    assert (notification.old_state, notification.new_state) == (ALARM, OK)
    assert notification.queue_name == "work"


def test_insufficient_data_sample_is_an_ok_that_did_not_come_from_alarm() -> None:
    notification = one(load("alarm_insufficient.json"))

    assert (notification.old_state, notification.new_state) == (INSUFFICIENT_DATA, OK)


def test_samples_are_what_sns_delivers_to_lambda() -> None:
    for name in ("alarm_scale_up.json", "alarm_scale_down.json", "alarm_insufficient.json"):
        sns = load(name)["Records"][0]["Sns"]
        assert sns["Type"] == "Notification"
        assert isinstance(sns["Message"], str)  # the alarm JSON arrives as a string, parsed a second time
        for key in ("TopicArn", "Subject", "MessageId", "Timestamp", "SignatureVersion", "Signature"):
            assert sns[key]
        assert {"SigningCertUrl", "UnsubscribeUrl", "MessageAttributes"} <= sns.keys()


@pytest.mark.parametrize(
    "message",
    [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"hello": "world"}),
        json.dumps({**alarm_body(), "NewStateValue": "MAYBE"}),
        json.dumps({**alarm_body(), "Trigger": {"Dimensions": []}}),
        json.dumps({k: v for k, v in alarm_body().items() if k != "Trigger"}),
    ],
    ids=["malformed", "not-an-object", "not-an-alarm", "unknown-state", "no-queue-dimension", "no-trigger"],
)
def test_a_message_that_is_not_a_queue_alarm_is_an_error_result_not_an_exception(message: str) -> None:
    [parsed] = AlarmNotification.from_sns_event(with_message(message))

    assert isinstance(parsed, AlarmNotificationError)


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": [{"Sns": {}}]}, {"Records": ["x"]}])
def test_an_event_that_is_not_from_sns_is_an_error_result(event: dict[str, Any]) -> None:
    results = AlarmNotification.from_sns_event(event)

    assert results
    assert all(isinstance(r, AlarmNotificationError) for r in results)


def test_a_bad_record_does_not_hide_a_good_one() -> None:
    good = load("alarm_scale_up.json")["Records"][0]
    bad = json.loads(json.dumps(good))
    bad["Sns"]["Message"] = "{"

    results = AlarmNotification.from_sns_event({"Records": [bad, good]})

    assert isinstance(results[0], AlarmNotificationError)
    assert isinstance(results[1], AlarmNotification)


def test_dimension_keys_in_title_case_are_accepted_too() -> None:
    body = alarm_body()
    body["Trigger"]["Dimensions"] = [{"Name": "QueueName", "Value": "orders"}]

    assert AlarmNotification.from_message(json.dumps(body)).queue_name == "orders"


def test_a_notification_matches_the_registered_queue_by_account_name_and_region() -> None:
    notification = one(load("alarm_scale_up.json"))

    assert notification.matches(QueueRef.parse("https://sqs.us-east-1.amazonaws.com/123456789012/work"))
    assert notification.matches(QueueRef.parse("http://localhost:4566/123456789012/work"))  # no region in host
    assert not notification.matches(QueueRef.parse("https://sqs.eu-west-1.amazonaws.com/123456789012/work"))
    assert not notification.matches(QueueRef.parse("https://sqs.us-east-1.amazonaws.com/210987654321/work"))
    assert not notification.matches(QueueRef.parse("https://sqs.us-east-1.amazonaws.com/123456789012/work-2"))
