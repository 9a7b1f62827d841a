"""`sqsloops jobs unroutable` and `jobs redrive --unroutable` through main([...]) on moto: the stack's entry topic, its
Unroutable queue and catch-all subscription as the template makes them, the example app applied.

Happy paths, and bad input: one line on stderr, exit 1 (what the command was given) or 2 (a usage error), nothing
written.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.ops.jobs_entry import catch_all_filter
from sqsloops.settings import Settings
from tests.conftest import Clients, settings_env
from tests.functional.jobs.apply_kit import STACK, JobStack, WriteCounter, count_writes, job_stack
from tests.functional.jobs.cli_kit import ROOT, one_error, run

UNROUTABLE = f"{STACK}-unroutable"


@pytest.fixture
def write_counter(monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    return count_writes(monkeypatch)


def entry_stack(aws: Clients, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> JobStack:
    """The job stack with the template's entry topic, Unroutable queue and catch-all, and the CLI's environment."""
    base = job_stack(aws, settings, clock)
    topic = aws.sns.create_topic(Name=f"{STACK}-entry")["TopicArn"]
    url = aws.sqs.create_queue(QueueName=UNROUTABLE)["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(catch_all_filter([]))},
    )
    full = replace(base.settings, entry_topic_arn=topic, unroutable_queue_url=url)
    monkeypatch.delenv("SQSLOOPS_STACK", raising=False)
    for name, value in {**settings_env(full), **full.environment()}.items():
        monkeypatch.setenv(name, value)
    return replace(base, settings=full)


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> JobStack:
    return entry_stack(aws, settings, clock, monkeypatch)


def publish(stack: JobStack, body: str, **attributes: str) -> None:
    stack.aws.sns.publish(
        TopicArn=stack.settings.entry_topic_arn,
        Message=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )


def held(stack: JobStack, name: str) -> list[dict[str, Any]]:
    """The queue's messages (received with their attributes, handed straight back)."""
    messages = stack.aws.sqs.receive_message(
        QueueUrl=stack.url(name), MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", [])
    return [dict(m) for m in messages]


def job_of(message: dict[str, Any]) -> str | None:
    value = message.get("MessageAttributes", {}).get("job", {}).get("StringValue")
    return str(value) if value is not None else None


def test_unroutable_lists_what_no_job_took_and_leaves_it_there(
    stack: JobStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an unknown job name and a message without a job attribute, published to the entry topic
    publish(stack, '["x"]', job="no_such_job")
    publish(stack, '{"a": 1}')
    # When they are listed, as a table then as JSON
    code, out, err = run(capsys, "jobs", "unroutable")
    assert code == 0, err
    assert "unroutable (2)" in out
    assert "no_such_job" in out
    assert "(no job attribute)" in out
    assert '["x"]' in out
    code, out, err = run(capsys, "jobs", "unroutable", "--json", "--limit", "1")
    assert code == 0, err
    [item] = json.loads(out)
    assert set(item) == {"message_id", "job", "age_s", "body_head"}
    # Then both are still in the queue, visible (listing hands them back at once)
    assert sorted(job_of(m) or "" for m in held(stack, UNROUTABLE)) == ["", "no_such_job"]


def test_redrive_unroutable_republishes_what_now_has_a_job_and_says_what_it_left(
    stack: JobStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given messages for a job not applied yet, for an unknown name and without a name: all in Unroutable
    publish(stack, '["ada"]', job="hello", id="hello-ada")
    publish(stack, "[1]", job="no_such_job")
    publish(stack, "[2]")
    # When the app is applied (hello now has a route), then Unroutable is redriven
    code, _, err = run(capsys, "jobs", "apply", "app.jobs", "--app-dir", ROOT)
    assert code == 0, err
    code, out, err = run(capsys, "jobs", "redrive", "--unroutable")
    # Then the hello message reached its job's queue, as published; the other two stay, each with a warning
    assert code == 0, err
    assert "re-published 1 message(s) to the entry topic" in out
    warnings = err.splitlines()
    assert len(warnings) == 2, err
    assert any("no job is named 'no_such_job' yet" in line for line in warnings)
    assert any("no job attribute" in line for line in warnings)
    [rerouted] = held(stack, f"{STACK}-hello")
    assert rerouted["Body"] == '["ada"]'
    assert rerouted["MessageAttributes"]["id"]["StringValue"] == "hello-ada"
    assert sorted(job_of(m) or "" for m in held(stack, UNROUTABLE)) == ["", "no_such_job"]
    # And a second redrive re-publishes nothing more
    code, out, _ = run(capsys, "jobs", "redrive", "--unroutable")
    assert code == 0
    assert "re-published 0 message(s)" in out
    assert len(held(stack, f"{STACK}-hello")) == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["unroutable", "--limit", "0"], "--limit must be at least 1"),
        (["redrive", "hello", "--unroutable"], "drop 'hello'"),
    ],
)
def test_a_bad_argument_is_one_line_exit_1_and_writes_nothing(
    stack: JobStack,
    capsys: pytest.CaptureFixture[str],
    write_counter: WriteCounter,
    argv: list[str],
    fragment: str,
) -> None:
    publish(stack, "[1]", job="hello")
    with write_counter.on() as writes:
        code, out, err = run(capsys, "jobs", *argv)
    assert code == 1
    assert out == ""
    one_error(err, fragment)
    assert writes == []
    assert len(held(stack, UNROUTABLE)) == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["redrive", "--unroutable", "--all"], "not allowed with"),
        (["unroutable", "--limit", "many"], "invalid int value"),
        (["unroutable", "extra"], "unrecognized arguments"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    stack: JobStack, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, out, err = run(capsys, "jobs", *argv)
    assert code == 2
    assert out == ""
    one_error(err, fragment)


@pytest.mark.parametrize(
    ("variable", "argv", "fragment"),
    [
        ("SQSLOOPS_ENTRY_TOPIC_ARN", ["redrive", "--unroutable"], "no entry topic"),
        ("SQSLOOPS_JOBS_TABLE", ["redrive", "--unroutable"], "no Jobs table"),
    ],
)
def test_a_stack_without_what_the_command_needs_is_one_line_exit_1(
    stack: JobStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    argv: list[str],
    fragment: str,
) -> None:
    monkeypatch.delenv(variable)
    code, _, err = run(capsys, "jobs", *argv)
    assert code == 1
    one_error(err, fragment)


def test_unroutable_without_an_unroutable_queue_is_one_line_exit_1(
    stack: JobStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQSLOOPS_UNROUTABLE_QUEUE_URL")
    stack.aws.sqs.delete_queue(QueueUrl=stack.settings.unroutable_queue_url)
    code, _, err = run(capsys, "jobs", "unroutable")
    assert code == 1
    one_error(err, "no Unroutable queue")
