"""The local alarm evaluator against moto: states read back from CloudWatch, notifications read from SQS inboxes."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from sqsloops.clock import ManualClock
from sqsloops.local.evaluator import AlarmEvaluator, Transition
from tests.conftest import ACCOUNT, REGION, Clients

NOTIFICATION_KEYS = [
    "AlarmName",
    "AlarmDescription",
    "AWSAccountId",
    "AlarmConfigurationUpdatedTimestamp",
    "NewStateValue",
    "NewStateReason",
    "StateChangeTime",
    "Region",
    "AlarmArn",
    "OldStateValue",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "Trigger",
]
TRIGGER_KEYS = [
    "MetricName",
    "Namespace",
    "StatisticType",
    "Statistic",
    "Unit",
    "Dimensions",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "ComparisonOperator",
    "Threshold",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
]


class Inbox:
    """An SQS queue subscribed to a topic: what the topic's subscribers would receive."""

    def __init__(self, aws: Clients, topic_arn: str, *, raw: bool = True) -> None:
        self._sqs = aws.sqs
        name = f"inbox-{topic_arn.rsplit(':', 1)[1]}-{'raw' if raw else 'envelope'}"
        self.url = aws.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = aws.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true" if raw else "false"},
        )

    def read(self) -> list[dict[str, Any]]:
        """Every message delivered so far, JSON-parsed, and the inbox emptied."""
        bodies: list[dict[str, Any]] = []
        while True:
            messages = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_741_336_200.0)  # 2025-03-07T08:30:00Z


@pytest.fixture
def topics(aws: Clients) -> dict[str, str]:
    return {name: aws.sns.create_topic(Name=f"sqsloops-{name}")["TopicArn"] for name in ("scale-up", "scale-down")}


@pytest.fixture
def evaluator(aws: Clients, clock: ManualClock) -> AlarmEvaluator:
    return AlarmEvaluator(cloudwatch=aws.cloudwatch, sqs=aws.sqs, sns=aws.sns, clock=clock)


def put_depth_alarm(aws: Clients, topics: dict[str, str], name: str = "depth-1", **overrides: Any) -> None:
    """A queue-depth alarm shaped like sqsloops.ops.alarms writes them; an override of None leaves the setting out."""
    spec: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": "sqsloops: 1 loop(s) wanted when more than 2 messages are visible",
        "ActionsEnabled": True,
        "AlarmActions": [topics["scale-up"]],
        "OKActions": [topics["scale-down"]],
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": "work"}],
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 2.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    spec.update(overrides)
    aws.cloudwatch.put_metric_alarm(**{key: value for key, value in spec.items() if value is not None})


def alarm_state(aws: Clients, name: str = "depth-1") -> dict[str, Any]:
    return dict(aws.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def send(aws: Clients, url: str, count: int) -> None:
    for i in range(count):
        aws.sqs.send_message(QueueUrl=url, MessageBody=f"job {i}")


def drain(aws: Clients, url: str) -> None:
    while messages := aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_new_alarm_on_an_empty_queue_goes_from_insufficient_data_to_ok(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator
) -> None:
    # Given an empty queue, a new alarm on it, and inboxes on both action topics
    aws.sqs.create_queue(QueueName="work")
    put_depth_alarm(aws, topics)
    up, down = Inbox(aws, topics["scale-up"]), Inbox(aws, topics["scale-down"])

    # When the evaluator runs once
    transitions = evaluator.evaluate_once()

    # Then the alarm is OK, announced to the OK actions only, as a change from INSUFFICIENT_DATA
    assert transitions == [Transition("depth-1", "INSUFFICIENT_DATA", "OK", 0.0, transitions[0].reason)]
    state = alarm_state(aws)
    assert state["StateValue"] == "OK"
    assert state["StateReason"].startswith(
        "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (07/03/25 08:30:00)]"
    )
    assert state["StateReason"].endswith(
        "was not greater than the threshold (2.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    reason_data = json.loads(state["StateReasonData"])
    assert reason_data["recentDatapoints"] == [0.0]
    assert reason_data["statistic"] == "Maximum"
    assert reason_data["threshold"] == 2.0
    assert up.read() == []
    [notification] = down.read()
    assert (notification["OldStateValue"], notification["NewStateValue"]) == ("INSUFFICIENT_DATA", "OK")


def test_backlog_over_the_threshold_raises_the_alarm_with_cloudwatch_s_notification(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an OK alarm on a queue, with a raw and an enveloped inbox on the scale-up topic
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    put_depth_alarm(aws, topics)
    evaluator.evaluate_once()
    raw, envelope = Inbox(aws, topics["scale-up"]), Inbox(aws, topics["scale-up"], raw=False)

    # When 3 messages wait (threshold 2) and the next period is evaluated
    send(aws, url, 3)
    clock.advance(60)
    transitions = evaluator.evaluate_once()

    # Then the alarm is in ALARM and the scale-up topic got CloudWatch's notification, key for key
    assert [(t.old_state, t.new_state, t.value) for t in transitions] == [("OK", "ALARM", 3.0)]
    assert alarm_state(aws)["StateValue"] == "ALARM"
    [message] = raw.read()
    assert list(message) == NOTIFICATION_KEYS
    assert list(message["Trigger"]) == TRIGGER_KEYS
    alarm_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:depth-1"
    assert message["AlarmName"] == "depth-1"
    assert message["AlarmDescription"] == "sqsloops: 1 loop(s) wanted when more than 2 messages are visible"
    assert message["AWSAccountId"] == ACCOUNT
    assert message["AlarmConfigurationUpdatedTimestamp"].endswith("+0000")
    assert message["NewStateValue"] == "ALARM"
    assert message["OldStateValue"] == "OK"
    assert message["NewStateReason"] == (
        "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (07/03/25 08:31:00)] was greater than the "
        "threshold (2.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert message["StateChangeTime"] == "2025-03-07T08:31:00.000+0000"
    assert message["Region"] == "US East (N. Virginia)"
    assert message["AlarmArn"] == alarm_arn
    assert message["OKActions"] == [topics["scale-down"]]
    assert message["AlarmActions"] == [topics["scale-up"]]
    assert message["InsufficientDataActions"] == []
    assert message["Trigger"] == {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "StatisticType": "Statistic",
        "Statistic": "MAXIMUM",
        "Unit": None,
        "Dimensions": [{"value": "work", "name": "QueueName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 2.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    }
    [delivery] = envelope.read()
    assert delivery["Subject"] == 'ALARM: "depth-1" in US East (N. Virginia)'
    assert json.loads(delivery["Message"]) == message


def test_draining_the_queue_sends_ok_to_the_ok_actions(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an alarm in ALARM over a backlog
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    send(aws, url, 5)
    put_depth_alarm(aws, topics)
    evaluator.evaluate_once()
    assert alarm_state(aws)["StateValue"] == "ALARM"
    up, down = Inbox(aws, topics["scale-up"]), Inbox(aws, topics["scale-down"])

    # When the backlog is drained and the next period evaluated
    drain(aws, url)
    clock.advance(60)
    evaluator.evaluate_once()

    # Then the alarm is OK and the scale-down topic got an ALARM -> OK notification
    assert alarm_state(aws)["StateValue"] == "OK"
    assert up.read() == []
    [message] = down.read()
    assert (message["OldStateValue"], message["NewStateValue"]) == ("ALARM", "OK")
    assert message["NewStateReason"].endswith("(minimum 1 datapoint for ALARM -> OK transition).")


def test_notifications_parse_with_the_scaling_functions_parser(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    scaling = pytest.importorskip("sqsloops.alarm_scaling")
    # Given an alarm that goes OK, then ALARM
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    put_depth_alarm(aws, topics)
    down = Inbox(aws, topics["scale-down"], raw=False)
    up = Inbox(aws, topics["scale-up"], raw=False)
    evaluator.evaluate_once()
    send(aws, url, 3)
    clock.advance(60)
    evaluator.evaluate_once()

    # When the scaling functions parse what SNS delivered
    parsed = [scaling.AlarmNotification.from_message(d["Message"]) for d in down.read() + up.read()]

    # Then they see the queue, account, region and states
    assert [(p.old_state, p.new_state) for p in parsed] == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM")]
    assert {(p.queue_name, p.account_id, p.region) for p in parsed} == {("work", ACCOUNT, REGION)}


def test_two_evaluation_periods_need_two_breaching_datapoints(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an OK alarm that needs 2 out of 2 breaching datapoints
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    put_depth_alarm(aws, topics, EvaluationPeriods=2, DatapointsToAlarm=2)
    evaluator.evaluate_once()

    # When the queue is over the threshold for one period, then for a second
    send(aws, url, 3)
    clock.advance(60)
    after_one = evaluator.evaluate_once()
    state_after_one = alarm_state(aws)["StateValue"]
    clock.advance(60)
    after_two = evaluator.evaluate_once()

    # Then only the second breaching datapoint raises the alarm
    assert (after_one, state_after_one) == ([], "OK")
    assert [(t.old_state, t.new_state) for t in after_two] == [("OK", "ALARM")]
    assert alarm_state(aws)["StateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [3.0 ")
    assert (
        "were greater than the threshold (2.0) (minimum 2 datapoints for OK -> ALARM"
        in (alarm_state(aws)["StateReason"])
    )


def test_m_out_of_n_counts_breaching_datapoints_that_are_not_consecutive(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an alarm that needs 2 breaching datapoints out of 3
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    put_depth_alarm(aws, topics, EvaluationPeriods=3, DatapointsToAlarm=2)
    evaluator.evaluate_once()

    # When the queue breaches, recovers, then breaches again
    states = []
    for backlog in (3, 0, 3):
        drain(aws, url)
        send(aws, url, backlog)
        clock.advance(60)
        evaluator.evaluate_once()
        states.append(alarm_state(aws)["StateValue"])

    # Then the second breach (2 of the last 3) raises the alarm
    assert states == ["OK", "OK", "ALARM"]


@pytest.mark.parametrize(
    ("treat_missing_data", "backlog", "expected_state", "expected_reason"),
    [
        (None, 5, "INSUFFICIENT_DATA", "Insufficient Data: 1 datapoint was unknown."),
        ("missing", 5, "INSUFFICIENT_DATA", "Insufficient Data: 1 datapoint was unknown."),
        (
            "notBreaching",
            5,
            "OK",
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as "
            "[NonBreaching].",
        ),
        (
            "breaching",
            0,
            "ALARM",
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as "
            "[Breaching].",
        ),
    ],
)
def test_a_deleted_queue_is_missing_data(
    aws: Clients,
    topics: dict[str, str],
    evaluator: AlarmEvaluator,
    clock: ManualClock,
    treat_missing_data: str | None,
    backlog: int,
    expected_state: str,
    expected_reason: str,
) -> None:
    # Given an alarm evaluated once over a queue (ALARM with a backlog, else OK)
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    send(aws, url, backlog)
    put_depth_alarm(aws, topics, TreatMissingData=treat_missing_data)
    evaluator.evaluate_once()
    assert alarm_state(aws)["StateValue"] != expected_state

    # When the queue is deleted and the next period evaluated
    aws.sqs.delete_queue(QueueUrl=url)
    clock.advance(60)
    evaluator.evaluate_once()

    # Then the missing datapoint is treated as the alarm says
    state = alarm_state(aws)
    assert (state["StateValue"], state["StateReason"]) == (expected_state, expected_reason)


def test_disabled_actions_change_the_state_but_publish_nothing(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator
) -> None:
    # Given an alarm with actions disabled over a backlog
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    send(aws, url, 5)
    put_depth_alarm(aws, topics, ActionsEnabled=False)
    up, down = Inbox(aws, topics["scale-up"]), Inbox(aws, topics["scale-down"])

    # When it is evaluated
    evaluator.evaluate_once()

    # Then it is in ALARM, and nobody was told
    assert alarm_state(aws)["StateValue"] == "ALARM"
    assert up.read() == down.read() == []


def test_an_alarm_waits_for_its_scaled_period(aws: Clients, topics: dict[str, str], clock: ManualClock) -> None:
    # Given an evaluator at 10x (60 s periods last 6 s) that has evaluated a new alarm
    evaluator = AlarmEvaluator(cloudwatch=aws.cloudwatch, sqs=aws.sqs, sns=aws.sns, time_scale=10, clock=clock)
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    put_depth_alarm(aws, topics)
    first = evaluator.evaluate_due()
    send(aws, url, 3)

    # When 3 s, then 6 s have passed
    clock.advance(3)
    early = evaluator.evaluate_due()
    clock.advance(3)
    due = evaluator.evaluate_due()

    # Then the new alarm was evaluated at once, and again only when its period had elapsed
    assert [t.new_state for t in first] == ["OK"]
    assert early == []
    assert [t.new_state for t in due] == ["ALARM"]
    assert evaluator.tick_s() == 1.0  # a quarter of 6 s, capped at 1 s


def test_a_rewritten_alarm_keeps_its_state_as_in_aws(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an alarm in ALARM
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    send(aws, url, 5)
    put_depth_alarm(aws, topics)
    evaluator.evaluate_once()
    up = Inbox(aws, topics["scale-up"])

    # When its configuration is rewritten (moto resets its state) and it is evaluated again
    put_depth_alarm(aws, topics, AlarmDescription="rewritten")
    clock.advance(60)
    transitions = evaluator.evaluate_once()

    # Then it is still in ALARM with no new notification, as AWS keeps an updated alarm's state
    assert transitions == []
    assert alarm_state(aws)["StateValue"] == "ALARM"
    assert up.read() == []


def test_a_state_set_by_hand_is_corrected_by_the_next_evaluation(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator, clock: ManualClock
) -> None:
    # Given an OK alarm over an empty queue
    aws.sqs.create_queue(QueueName="work")
    put_depth_alarm(aws, topics)
    evaluator.evaluate_once()
    down = Inbox(aws, topics["scale-down"])

    # When someone sets it to ALARM by hand (as `aws cloudwatch set-alarm-state` does) and a period passes
    aws.cloudwatch.set_alarm_state(AlarmName="depth-1", StateValue="ALARM", StateReason="testing")
    clock.advance(60)
    evaluator.evaluate_once()

    # Then evaluation puts it back to OK and says so
    assert alarm_state(aws)["StateValue"] == "OK"
    assert [(m["OldStateValue"], m["NewStateValue"]) for m in down.read()] == [("ALARM", "OK")]


def test_alarms_it_cannot_compute_are_left_alone(
    aws: Clients, topics: dict[str, str], evaluator: AlarmEvaluator
) -> None:
    # Given a metric-math alarm, an EC2 alarm and an age-of-oldest-message alarm
    aws.sqs.create_queue(QueueName="work")
    aws.cloudwatch.put_metric_alarm(
        AlarmName="math",
        Metrics=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateNumberOfMessagesVisible",
                        "Dimensions": [{"Name": "QueueName", "Value": "work"}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
                "ReturnData": True,
            }
        ],
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    put_depth_alarm(aws, topics, AlarmName="ec2", Namespace="AWS/EC2", MetricName="CPUUtilization")
    put_depth_alarm(aws, topics, AlarmName="age", MetricName="ApproximateAgeOfOldestMessage")

    # When the evaluator runs
    transitions = evaluator.evaluate_once()

    # Then none of them was touched
    assert transitions == []
    for name in ("math", "ec2", "age"):
        assert alarm_state(aws, name)["StateReason"] == "Unchecked: Initial alarm creation"


def test_the_thread_evaluates_until_stopped_and_survives_errors(aws: Clients, topics: dict[str, str]) -> None:
    # Given an evaluator at 600x (60 s periods last 0.1 s) whose first DescribeAlarms fails
    failures = []

    def fail_once(**_: Any) -> None:
        if not failures:
            failures.append(1)
            raise EndpointConnectionError(endpoint_url="http://moto")

    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.meta.events.register("before-call.cloudwatch.DescribeAlarms", fail_once)
    url = aws.sqs.create_queue(QueueName="work")["QueueUrl"]
    send(aws, url, 5)
    put_depth_alarm(aws, topics)
    evaluator = AlarmEvaluator(cloudwatch=cloudwatch, sqs=aws.sqs, sns=aws.sns, time_scale=600)

    # When it runs on its thread for a moment
    evaluator.start()
    try:
        deadline = time.monotonic() + 3
        while alarm_state(aws)["StateValue"] != "ALARM" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        evaluator.stop()

    # Then it got past the failure and evaluated the alarm
    assert failures == [1]
    assert alarm_state(aws)["StateValue"] == "ALARM"
