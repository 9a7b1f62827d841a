"""The local scheduler against moto: rules and schedules fire at SQS queues (read back) and Lambda functions.

moto runs Lambda code only in Docker. The Lambda target tests replace moto's container runner
(`LambdaFunction._invoke_lambda`, what would start the container) with one that records the event the function
receives; the Invoke API, the function lookup and the invocation type all stay moto's.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaFunction

from sqsloops.clock import ManualClock
from sqsloops.local.scheduler import Scheduler
from tests.conftest import ACCOUNT, REGION, Clients, create_function

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scheduler"
EVENT_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


def at(text: str) -> float:
    """Epoch seconds of a UTC time written 2025-03-07T08:30:00."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Env:
    """moto's EventBridge, Scheduler, Lambda and SQS, with a scheduler on an injected clock."""

    def __init__(self, aws: Clients, *, time_scale: float = 1.0, now: str = "2025-03-07T08:30:00") -> None:
        self.aws = aws
        self.events = boto3.client("events", region_name=REGION)
        self.schedules = boto3.client("scheduler", region_name=REGION)
        self.clock = ManualClock(at(now))
        self.scheduler = Scheduler(
            events=self.events,
            scheduler=self.schedules,
            lambda_client=aws.lambda_,
            sqs=aws.sqs,
            time_scale=time_scale,
            clock=self.clock,
        )

    def queue(self, name: str = "inbox") -> tuple[str, str]:
        url = self.aws.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def rule(self, name: str, expression: str, targets: list[dict[str, Any]], *, state: str = "ENABLED") -> str:
        arn = self.events.put_rule(Name=name, ScheduleExpression=expression, State=state)["RuleArn"]
        self.events.put_targets(Rule=name, Targets=targets)
        return str(arn)

    def schedule(self, name: str, expression: str, target_arn: str, **extra: Any) -> None:
        target = {"Arn": target_arn, "RoleArn": ROLE_ARN}
        if "Input" in extra:
            target["Input"] = extra.pop("Input")
        self.schedules.create_schedule(
            Name=name,
            ScheduleExpression=expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
            **extra,
        )

    def read(self, url: str) -> list[str]:
        """Every message body in the queue, oldest first, and the queue emptied."""
        bodies: list[str] = []
        while messages := self.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(message["Body"])
                self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def advance_and_tick(self, seconds: float) -> list[str]:
        self.clock.advance(seconds)
        return [fired.name for fired in self.scheduler.tick()]


@pytest.fixture
def function_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """(function name, event) for every invocation moto's Lambda would have run in a container."""
    received: list[tuple[str, Any]] = []

    def run(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        received.append((function.function_name, event))
        return "null", False, ""

    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", run)
    return received


def test_a_rate_rule_fires_once_per_scaled_interval(aws: Clients) -> None:
    # Given a rate(1 minute) rule at 60x (every second), with an SQS target taking the event and one an Input
    env = Env(aws, time_scale=60)
    url, arn = env.queue()
    input_url, input_arn = env.queue("input")
    rule_arn = env.rule(
        "restart",
        "rate(1 minute)",
        [{"Id": "event", "Arn": arn}, {"Id": "input", "Arn": input_arn, "Input": '{"hello": "world"}'}],
    )

    # When injected time moves on in steps, ticking each time (twice at the same instant once)
    ticks = [env.advance_and_tick(step) for step in (0, 0.5, 0.5, 0, 0.5, 0.5)]

    # Then it fired at 1 s and 2 s only, each target once per firing
    assert ticks == [[], [], ["restart"], [], [], ["restart"]]
    events = [json.loads(body) for body in env.read(url)]
    assert [list(event) for event in events] == [EVENT_KEYS, EVENT_KEYS]
    assert events[0] | {"id": "x"} == {
        "version": "0",
        "id": "x",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2025-03-07T08:30:01Z",
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }
    assert events[1]["time"] == "2025-03-07T08:30:02Z"
    assert events[0]["id"] != events[1]["id"]
    assert env.read(input_url) == ['{"hello": "world"}', '{"hello": "world"}']


def test_a_rate_rule_invokes_its_lambda_target_asynchronously_with_the_scheduled_event(
    aws: Clients, function_events: list[tuple[str, Any]]
) -> None:
    # Given a rate(2 minutes) rule whose target is a Lambda function
    env = Env(aws)
    function_arn = create_function(aws, "sqsloops-restart")
    rule_arn = env.rule("restart", "rate(2 minutes)", [{"Id": "fn", "Arn": function_arn}])
    env.scheduler.tick()

    # When two minutes pass
    env.clock.advance(120)
    fired = env.scheduler.tick()

    # Then the function was invoked once, with the Scheduled Event of the rule
    assert [(f.name, f.delivered, f.failed) for f in fired] == [("restart", (function_arn,), ())]
    [(name, event)] = function_events
    assert name == "sqsloops-restart"
    assert (event["detail-type"], event["source"], event["resources"]) == (
        "Scheduled Event",
        "aws.events",
        [rule_arn],
    )
    assert event["time"] == "2025-03-07T08:32:00Z"


def test_a_stall_catches_up_one_firing_not_a_burst(aws: Clients) -> None:
    # Given a rate(1 minute) rule seen at 08:30:00
    env = Env(aws)
    url, arn = env.queue()
    env.rule("every-minute", "rate(1 minute)", [{"Id": "q", "Arn": arn}])
    env.scheduler.tick()

    # When the process stalls for five and a half minutes, then ticks on
    after_stall = env.advance_and_tick(330)
    half_a_minute_later = env.advance_and_tick(29)
    at_the_next_minute = env.advance_and_tick(1)

    # Then the stall cost one late firing, and the cadence resumed on its minute grid
    assert (after_stall, half_a_minute_later, at_the_next_minute) == (["every-minute"], [], ["every-minute"])
    assert [json.loads(body)["time"] for body in env.read(url)] == ["2025-03-07T08:31:00Z", "2025-03-07T08:36:00Z"]


def test_a_cron_schedule_fires_in_its_timezone(aws: Clients) -> None:
    # Given a 09:30 New York cron schedule (14:30 UTC in March before DST) with context attributes in its Input
    # (compressed cron schedules: tests/functional/test_local_scheduler_jobs.py)
    env = Env(aws, now="2025-03-07T14:28:00")
    url, arn = env.queue()
    env.schedule(
        "morning",
        "cron(30 9 ? * MON-FRI *)",
        arn,
        ScheduleExpressionTimezone="America/New_York",
        Input='{"at": "<aws.scheduler.scheduled-time>", "by": "<aws.scheduler.schedule-arn>"}',
    )

    # When time reaches 14:29:59 UTC, then 14:30:00 UTC, then a day later
    ticks = [env.advance_and_tick(step) for step in (0, 119, 1, 86400)]

    # Then it fired at 09:30 New York time only, on Friday (not on Saturday)
    assert ticks == [[], [], ["morning"], []]
    [body] = env.read(url)
    assert json.loads(body) == {
        "at": "2025-03-07T14:30:00Z",
        "by": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/morning",
    }


def test_a_cron_rule_reads_aws_day_of_week_numbers(aws: Clients) -> None:
    # Given a rule at 12:00 UTC on AWS day-of-week 6 (Friday; AWS counts SUN=1), seen on Thursday 11:00
    env = Env(aws, now="2025-03-06T11:00:00")
    url, arn = env.queue()
    env.rule("fridays", "cron(0 12 ? * 6 *)", [{"Id": "q", "Arn": arn}])
    env.scheduler.tick()

    # When Thursday noon and Friday noon pass
    thursday = env.advance_and_tick(3600)
    friday = env.advance_and_tick(86400)

    # Then only Friday's fired
    assert (thursday, friday) == ([], ["fridays"])
    assert json.loads(env.read(url)[0])["time"] == "2025-03-07T12:00:00Z"


@pytest.mark.parametrize(("after_completion", "remains"), [("DELETE", False), ("NONE", True)])
def test_an_at_schedule_fires_once(aws: Clients, after_completion: str, remains: bool) -> None:
    # Given a one-time schedule at 09:00 Paris time (08:00 UTC), seen at 07:59:30 UTC
    env = Env(aws, now="2025-03-07T07:59:30")
    url, arn = env.queue()
    env.schedule(
        "once",
        "at(2025-03-07T09:00:00)",
        arn,
        ScheduleExpressionTimezone="Europe/Paris",
        Input="wake up",
        ActionAfterCompletion=after_completion,
    )

    # When 08:00 UTC comes and goes
    ticks = [env.advance_and_tick(step) for step in (0, 29, 1, 60, 3600)]

    # Then it fired once, at 08:00 UTC, and is deleted after completion only when it says DELETE
    assert ticks == [[], [], ["once"], [], []]
    assert env.read(url) == ["wake up"]
    names = [s["Name"] for s in env.schedules.list_schedules()["Schedules"]]
    assert names == (["once"] if remains else [])


def test_a_schedule_fires_only_between_its_start_and_end_dates(aws: Clients) -> None:
    # Given a rate(1 minute) schedule at 60x (every second) that starts in 10 s and ends 2.5 s later
    env = Env(aws, time_scale=60)
    url, arn = env.queue()
    now = env.clock.now()
    env.schedule(
        "window",
        "rate(1 minute)",
        arn,
        Input="tick",
        StartDate=datetime.fromtimestamp(now + 10, UTC),
        EndDate=datetime.fromtimestamp(now + 12.5, UTC),
        ActionAfterCompletion="DELETE",
    )

    # When time moves through the window second by second
    ticks = [env.advance_and_tick(step) for step in [0] + [1] * 14]

    # Then it fired at 11 s and 12 s only, and was deleted once its end date had passed
    fired_at = [i for i, names in enumerate(ticks) if names]
    assert fired_at == [11, 12]
    assert env.read(url) == ["tick", "tick"]
    assert env.schedules.list_schedules()["Schedules"] == []


def test_disabled_rules_and_schedules_do_not_fire(aws: Clients) -> None:
    # Given a disabled rule and a disabled schedule
    env = Env(aws)
    url, arn = env.queue()
    env.rule("off", "rate(1 minute)", [{"Id": "q", "Arn": arn}], state="DISABLED")
    env.schedule("off", "rate(1 minute)", arn, State="DISABLED")

    # When ten minutes pass
    ticks = [env.advance_and_tick(60) for _ in range(10)]

    # Then nothing fired
    assert ticks == [[]] * 10
    assert env.read(url) == []


def test_invalid_expressions_are_skipped_and_the_rest_still_fire(aws: Clients) -> None:
    # Given rules and schedules AWS would reject (or croniter cannot run) next to a valid rule
    env = Env(aws)
    url, arn = env.queue()
    env.rule("both-days", "cron(0 12 * * * *)", [{"Id": "q", "Arn": arn}])
    env.rule("bad-minute", "cron(61 * * * ? *)", [{"Id": "q", "Arn": arn}])
    env.rule("last-weekday", "cron(0 12 LW * ? *)", [{"Id": "q", "Arn": arn}])
    env.schedule("words", "rate(five minutes)", arn)
    env.schedule("plural", "rate(1 minutes)", arn)
    env.schedule("zone", "rate(1 minute)", arn, ScheduleExpressionTimezone="Mars/Olympus_Mons")
    env.rule("good", "rate(1 minute)", [{"Id": "q", "Arn": arn}])

    # When a few minutes pass
    ticks = [env.advance_and_tick(step) for step in (0, 60, 60)]

    # Then only the valid rule fired
    assert ticks == [[], ["good"], ["good"]]
    assert len(env.read(url)) == 2


def test_a_target_that_fails_does_not_stop_the_others(aws: Clients) -> None:
    # Given a rule whose first target queue does not exist
    env = Env(aws)
    url, arn = env.queue()
    missing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:gone"
    env.rule("restart", "rate(1 minute)", [{"Id": "gone", "Arn": missing}, {"Id": "q", "Arn": arn}])
    env.scheduler.tick()

    # When it fires
    env.clock.advance(60)
    [fired] = env.scheduler.tick()

    # Then the existing queue got its event and the missing one is reported as failed
    assert (fired.delivered, fired.failed) == ((arn,), (missing,))
    assert len(env.read(url)) == 1


def test_the_thread_ticks_until_stopped(aws: Clients) -> None:
    # Given a rate(1 minute) rule on a real-clock scheduler at 600x (every 0.1 s)
    url = aws.sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="fast", ScheduleExpression="rate(1 minute)")
    events.put_targets(Rule="fast", Targets=[{"Id": "q", "Arn": arn}])
    scheduler = Scheduler(
        events=events,
        scheduler=boto3.client("scheduler", region_name=REGION),
        lambda_client=aws.lambda_,
        sqs=aws.sqs,
        time_scale=600,
    )

    # When it runs on its thread until two events arrived (or 3 s passed)
    scheduler.start()
    try:
        deadline, count = time.monotonic() + 3, 0
        while count < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            count = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    finally:
        scheduler.stop()

    # Then it fired repeatedly, and stopped when told
    assert count >= 2
    assert scheduler.tick_s() == pytest.approx(0.025)


def test_a_deleted_at_schedule_is_gone_from_the_api(aws: Clients) -> None:
    # Given a one-time schedule with ActionAfterCompletion DELETE that has fired
    env = Env(aws)
    _, arn = env.queue()
    env.schedule("once", "at(2025-03-07T08:31:00)", arn, ActionAfterCompletion="DELETE")
    env.advance_and_tick(60)

    # When it is looked up
    with pytest.raises(ClientError) as error:
        env.schedules.get_schedule(Name="once")

    # Then it does not exist
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
