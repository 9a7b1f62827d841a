"""The local scheduler as the job layer uses it: one-time at() schedules and cron() schedules with a time zone,
compressed by the stack's time scale on a ManualClock, context attributes in the target input, FIFO targets and a
dead-letter queue for failed deliveries. Schedules are made with boto3 against moto and read back from SQS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqsloops.jobs.cron import fire_times_between
from tests.conftest import ACCOUNT, REGION, Clients
from tests.functional.test_scheduler import Env

ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scheduler"


def test_an_at_schedule_an_hour_out_fires_a_minute_later_at_x60_and_deletes_itself(aws: Clients) -> None:
    # Given a scheduler at x60 and a one-time schedule one hour out, with context attributes in its input
    env = Env(aws, time_scale=60, now="2025-03-07T08:30:00")
    url, arn = env.queue()
    env.scheduler.tick()
    env.schedule(
        "job-42",
        "at(2025-03-07T09:30:00)",
        arn,
        Input='{"id": "42", "at": "<aws.scheduler.scheduled-time>", "run": "<aws.scheduler.execution-id>"}',
        ActionAfterCompletion="DELETE",
    )

    # When real time moves 59 s, then 1 s more, then on
    ticks = [env.advance_and_tick(step) for step in (0, 59, 1, 60)]

    # Then it fired once, after a compressed hour, reporting its own scheduled time, and deleted itself
    assert ticks == [[], [], ["job-42"], []]
    [body] = env.read(url)
    sent = json.loads(body)
    assert (sent["id"], sent["at"]) == ("42", "2025-03-07T09:30:00Z")
    assert len(sent["run"]) == 36  # an execution id (a uuid), substituted
    assert env.schedules.list_schedules()["Schedules"] == []


def test_a_compressed_cron_follows_the_zone_across_a_dst_change(aws: Clients) -> None:
    # Given an every-30-minutes Paris cron on the night clocks spring forward (02:00 -> 03:00, 2025-03-30),
    # seen at 00:00 UTC (01:00 Paris), on a scheduler at x1800 (30 minutes of the schedule per real second)
    env = Env(aws, time_scale=1800, now="2025-03-30T00:00:00")
    url, arn = env.queue()
    env.schedule(
        "digest",
        "cron(0/30 * * * ? *)",
        arn,
        ScheduleExpressionTimezone="Europe/Paris",
        Input='"<aws.scheduler.scheduled-time>"',
    )
    env.scheduler.tick()

    # When four real seconds pass, a tick every quarter second
    for _ in range(16):
        env.advance_and_tick(0.25)

    # Then it fired at the schedule's times, the ones sqsloops.jobs.cron lists (Paris 01:30, 03:00, 03:30, 04:00;
    # 02:00 and 02:30 do not exist that night)
    fired = [json.loads(body) for body in env.read(url)]
    expected = fire_times_between(
        "cron(0/30 * * * ? *)", "Europe/Paris", datetime(2025, 3, 30, 0, 0, 1, tzinfo=UTC), at_utc("02:00:01")
    )
    assert fired == [moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in expected]
    assert fired == ["2025-03-30T00:30:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z", "2025-03-30T02:00:00Z"]


def test_the_scheduler_ticks_four_times_per_compressed_minute_with_a_cron_schedule(aws: Clients) -> None:
    env = Env(aws, time_scale=60)
    _, arn = env.queue()
    assert env.scheduler.tick_s() == 1.0
    env.schedule("minutely", "cron(* * * * ? *)", arn)
    env.scheduler.tick()
    assert env.scheduler.tick_s() == 0.25


def at_utc(clock: str) -> datetime:
    return datetime.fromisoformat(f"2025-03-30T{clock}").replace(tzinfo=UTC)


def test_a_cron_fires_once_on_the_hour_that_happens_twice(aws: Clients) -> None:
    # Given 02:30 New York daily, seen before clocks fall back (2025-11-02 02:00 EDT -> 01:00 EST)
    env = Env(aws, now="2025-11-02T05:00:00")  # 01:00 EDT
    url, arn = env.queue()
    env.schedule("night", "cron(30 1 * * ? *)", arn, ScheduleExpressionTimezone="America/New_York", Input="x")
    env.scheduler.tick()

    # When three hours pass (01:30 EDT and 01:30 EST both happen)
    for _ in range(180):
        env.advance_and_tick(60)

    # Then it fired once, at the first 01:30 (EDT, 05:30 UTC)
    assert env.read(url) == ["x"]


def test_a_fifo_target_gets_the_schedules_message_group(aws: Clients) -> None:
    env = Env(aws)
    url = aws.sqs.create_queue(
        QueueName="serial.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:serial.fifo"
    env.schedules.create_schedule(
        Name="job-7",
        ScheduleExpression="at(2025-03-07T08:31:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": ROLE_ARN, "Input": "hello", "SqsParameters": {"MessageGroupId": "cust-1"}},
    )
    env.advance_and_tick(60)
    [message] = aws.sqs.receive_message(QueueUrl=url, AttributeNames=["MessageGroupId"])["Messages"]
    assert (message["Body"], message["Attributes"]["MessageGroupId"]) == ("hello", "cust-1")


def test_a_failed_delivery_goes_to_the_schedules_dead_letter_queue(aws: Clients) -> None:
    # Given a schedule whose target queue does not exist, with a dead-letter queue
    env = Env(aws)
    dlq_url, dlq_arn = env.queue("scheduler-dlq")
    target: Any = {
        "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:gone",
        "RoleArn": ROLE_ARN,
        "Input": '{"id": "9"}',
        "DeadLetterConfig": {"Arn": dlq_arn},
    }
    env.schedules.create_schedule(
        Name="job-9", ScheduleExpression="at(2025-03-07T08:31:00)", FlexibleTimeWindow={"Mode": "OFF"}, Target=target
    )

    # When it fires
    assert env.advance_and_tick(60) == ["job-9"]

    # Then its input is in the dead-letter queue, with what failed
    [message] = aws.sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert message["Body"] == '{"id": "9"}'
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["TARGET_ARN"] == target["Arn"]
    assert attributes["SCHEDULE_ARN"].endswith(":schedule/default/job-9")
    assert attributes["ERROR_CODE"] == "AWS.SimpleQueueService.NonExistentQueue"
