"""The `sqsloops` command end to end through main([...]) against moto, with settings from the environment or a stack.

The process function does not exist in moto, so the loops' start fails (and the CLI says the restart sweep will
start them); the tokens, registrations and alarms are real items read back from moto.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from sqsloops.cli import main
from sqsloops.errors import ConfigError
from sqsloops.ops.stack import resolve_settings, settings_from_stack
from sqsloops.settings import Settings
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("orders")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def token_count(aws: Clients, settings: Settings) -> int:
    """Live tokens: a stopped loop's token stays, retired, until the restart sweep deletes it after its grace."""
    items = aws.dynamodb.scan(TableName=settings.loops_table, ConsistentRead=True)["Items"]
    return sum("retired_at" not in item for item in items)


def registered_urls(aws: Clients, settings: Settings) -> list[str]:
    items = aws.dynamodb.scan(TableName=settings.queues_table, ConsistentRead=True)["Items"]
    return [item["queue_url"]["S"] for item in items]


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sqsloops: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# --- the whole life of a registration -----------------------------------------------------------------------------


@pytest.fixture
def registered(env: Settings, queue: MadeQueue, capsys: pytest.CaptureFixture[str]) -> MadeQueue:
    """The queue registered through the CLI with one to three loops."""
    code, _, err = run(
        capsys, "register", queue.url, "--handler", "lambda:orders-worker", "--min", "1", "--max", "3", "--no-check"
    )
    assert code == 0, err
    return queue


def test_register_writes_registration_token_and_alarms(
    env: Settings, aws: Clients, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "register", queue.url, "--handler", "lambda:orders-worker", "--min", "1", "--max", "3", "--no-check"
    )

    assert code == 0, err
    assert out == "registered orders: handler lambda:orders-worker, loops 1 (min 1, max 3), alarms 2\n"
    assert "restart sweep" in err  # the process function is not deployed in moto: the sweep will start the loop
    assert registered_urls(aws, env) == [queue.url]
    assert token_count(aws, env) == 1
    assert len(aws.cloudwatch.describe_alarms()["MetricAlarms"]) == 2  # levels 2 and 3


def test_list_as_table_and_as_json(registered: MadeQueue, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert registered.url in out
    assert "lambda:orders-worker" in out

    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert (listed["queue_url"], listed["min_loops"], listed["max_loops"]) == (registered.url, 1, 3)


def test_status_as_table_and_as_json(registered: MadeQueue, aws: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    aws.sqs.send_message(QueueUrl=registered.url, MessageBody="{}")

    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "orders" in out

    code, out, _ = run(capsys, "status", registered.url, "--json")
    assert code == 0
    (status,) = json.loads(out)
    assert status["queue_url"] == registered.url
    assert status["depth"] == {"visible": 1, "in_flight": 0, "delayed": 0}
    assert status["dlq_depth"]["visible"] == 0
    assert status["loops"] == {"running": 1, "stale": 0, "desired": 1}
    assert status["config"]["handler"] == "lambda:orders-worker"


def test_scale_moves_the_token_count(
    env: Settings, registered: MadeQueue, aws: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "scale", registered.url, "3")

    assert code == 0, err
    assert out == "scaled orders: 1 -> 3 loop(s)\n"
    assert token_count(aws, env) == 3


def test_update_changes_only_the_options_given(
    env: Settings, registered: MadeQueue, aws: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "update", registered.url, "--min", "2", "--batch-size", "5")

    assert code == 0, err
    assert out.startswith("updated (version 2) orders:")
    assert token_count(aws, env) == 2
    code, out, _ = run(capsys, "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["min_loops"], listed["max_loops"], listed["batch_size"], listed["version"]) == (2, 3, 5, 2)


def test_deregister_removes_everything(
    env: Settings, registered: MadeQueue, aws: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "deregister", registered.url)

    assert code == 0, err
    assert out == "deregistered orders: stopped 1 loop(s), deleted 2 alarm(s)\n"
    assert registered_urls(aws, env) == []
    assert token_count(aws, env) == 0
    assert aws.cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_list_and_status_without_registrations(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "list") == (0, "no queues registered\n", "")
    assert run(capsys, "status") == (0, "no queues registered\n", "")
    code, out, _ = run(capsys, "status", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_register_without_dead_letter_queue_warns_on_one_line(
    env: Settings, aws: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    url = aws.sqs.create_queue(QueueName="no-dlq")["QueueUrl"]

    code, _, err = run(capsys, "register", url, "--handler", "lambda:worker", "--no-check")

    assert code == 0
    assert any(line.startswith("sqsloops: warning: queue has no dead-letter queue") for line in err.splitlines())
    assert registered_urls(aws, env) == [url]


# --- errors: one line, exit 1 -------------------------------------------------------------------------------------


def test_nonexistent_queue_exits_1_with_one_line(
    env: Settings, aws: Clients, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://sqs.{REGION}.amazonaws.com/123456789012/missing"

    code, out, err = run(capsys, "register", url, "--handler", "lambda:worker")

    assert (code, out) == (1, "")
    assert_one_error_line(err, "queue does not exist", url)
    assert registered_urls(aws, env) == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--handler", "worker"], "handler must be"),
        (["--handler", "lambda:w", "--min", "4", "--max", "2"], "must not exceed"),
        (["--handler", "lambda:w", "--batch-size", "11"], "batch_size must be between 1 and 10"),
        (["--handler", "lambda:w", "--wait-s", "21"], "wait_s"),
        (["--handler", "lambda:w", "--visibility-timeout-s", "43201"], "visibility_timeout_s"),
        (["--handler", "lambda:w", "--backlog-per-loop", "0"], "backlog_per_loop"),
        (["--handler", "lambda:w", "--min", "-1"], "min_loops"),
        (["--handler", "lambda:w", "--rate-per-s", "nan"], "rate_per_s"),
        (["--handler", "lambda:w", "--batch-window-s", "301"], "batch_window_s must be between 0 and 300"),
        (["--handler", "lambda:w", "--batch-window-s", "-1"], "batch_window_s must be between 0 and 300"),
        (["--handler", "lambda:w", "--batch-size", "50"], "up to 10000 with batch_window_s of at least 1"),
        (["--handler", "lambda:w", "--batch-size", "10001", "--batch-window-s", "1"], "batch_size must be between"),
        (
            ["--handler", "python:sqsloops.examples:noop", "--batch-size", "50", "--batch-window-s", "1"],
            "handler_mode 'batch'",
        ),
        (
            ["--handler", "lambda:w", "--visibility-timeout-s", "43200", "--batch-window-s", "1"],
            "visibility_timeout_s + batch_window_s",
        ),
    ],
)
def test_invalid_registration_exits_1_with_one_line_and_writes_nothing(
    env: Settings,
    aws: Clients,
    queue: MadeQueue,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    fragment: str,
) -> None:
    code, _, err = run(capsys, "register", queue.url, *options)

    assert code == 1
    assert_one_error_line(err, fragment)
    assert registered_urls(aws, env) == []
    assert token_count(aws, env) == 0


def test_a_batch_window_is_registered_and_updated(
    env: Settings, aws: Clients, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "register",
        queue.url,
        "--handler",
        "lambda:w",
        "--no-check",
        "--batch-size",
        "500",
        "--batch-window-s",
        "2",
    )
    assert code == 0, err
    code, _, err = run(capsys, "update", queue.url, "--batch-window-s", "5")
    assert code == 0, err

    code, out, _ = run(capsys, "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["batch_size"], listed["batch_window_s"], listed["version"]) == (500, 5, 2)


def test_a_batch_window_that_is_no_whole_number_is_a_usage_error(
    env: Settings, aws: Clients, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "register", queue.url, "--handler", "lambda:w", "--batch-window-s", "1.5")

    assert code == 2
    assert_one_error_line(err, "--batch-window-s")
    assert registered_urls(aws, env) == []


def test_dropping_the_window_under_a_large_batch_is_refused_and_changes_nothing(
    env: Settings, aws: Clients, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        capsys,
        "register",
        queue.url,
        "--handler",
        "lambda:w",
        "--no-check",
        "--batch-size",
        "100",
        "--batch-window-s",
        "1",
    )

    code, _, err = run(capsys, "update", queue.url, "--batch-window-s", "0")

    assert code == 1
    assert_one_error_line(err, "batch_size must be between 1 and 10")
    code, out, _ = run(capsys, "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["batch_size"], listed["batch_window_s"], listed["version"]) == (100, 1, 1)


def test_scale_out_of_bounds_exits_1_and_says_the_bounds(
    env: Settings, aws: Clients, registered: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scale", registered.url, "7")

    assert code == 1
    assert_one_error_line(err, "between min_loops 1 and max_loops 3")
    assert token_count(aws, env) == 1


@pytest.mark.parametrize(
    "command",
    [["deregister", "{url}"], ["scale", "{url}", "1"], ["status", "{url}"], ["update", "{url}", "--max", "3"]],
)
def test_unregistered_queue_exits_1_with_one_line(
    env: Settings, queue: MadeQueue, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run(capsys, *(part.format(url=queue.url) for part in command))

    assert code == 1
    assert_one_error_line(err, "not registered", queue.url)


def test_aws_error_exits_1_with_one_line(env: Settings, aws: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the tables named by the environment do not exist
    aws.dynamodb.delete_table(TableName=env.queues_table)

    code, _, err = run(capsys, "list")

    assert code == 1
    assert_one_error_line(err, "ResourceNotFoundException")


def test_missing_settings_exit_1_with_one_line(
    aws: Clients, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("STACK", "QUEUES_TABLE", "LOOPS_TABLE"):
        monkeypatch.delenv(f"SQSLOOPS_{name}", raising=False)

    code, _, err = run(capsys, "list")

    assert code == 1
    assert_one_error_line(err, "--stack NAME", "SQSLOOPS_STACK")


def test_usage_errors_exit_2_with_one_line_even_with_aws_at_hand(
    env: Settings, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "register", queue.url, "--min", "one", "--handler", "lambda:w")

    assert (code, out) == (2, "")
    assert_one_error_line(err, "--min", "invalid int value")


# --- finding the stack ----------------------------------------------------------------------------------------------

STACK = "sqsloops-demo"


def create_stack(settings: Settings, **overrides: str) -> Any:
    """A tiny stack whose Outputs are literal values: what the CLI reads from a deployed sqsloops stack."""
    outputs = {
        "QueuesTableName": settings.queues_table,
        "LoopsTableName": settings.loops_table,
        "ProcessFunctionName": settings.process_function,
        "ScaleUpTopicArn": settings.scale_up_topic_arn,
        "ScaleDownTopicArn": settings.scale_down_topic_arn,
        "HeartbeatSeconds": "7",
        "StaleAfterSeconds": "45",
        "AlarmPeriodSeconds": "10",
        **overrides,
    }
    template = {
        "Resources": {"Alerts": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items() if value},
    }
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return cloudformation


def test_settings_come_from_the_stack_outputs(settings: Settings) -> None:
    cloudformation = create_stack(settings)

    found = settings_from_stack(cloudformation, STACK)

    assert found == Settings(
        queues_table=settings.queues_table,
        loops_table=settings.loops_table,
        process_function=settings.process_function,
        scale_up_topic_arn=settings.scale_up_topic_arn,
        scale_down_topic_arn=settings.scale_down_topic_arn,
        stack_name=STACK,
        heartbeat_s=7,
        stale_after_s=45,
        alarm_period_s=10,
    )


def test_sqsloops_stack_variable_names_the_stack(settings: Settings) -> None:
    cloudformation = create_stack(settings)

    found = resolve_settings(
        stack_name=None,
        cloudformation=lambda: cloudformation,
        environ={"SQSLOOPS_STACK": STACK, "SQSLOOPS_QUEUES_TABLE": "ignored", "SQSLOOPS_LOOPS_TABLE": "ignored"},
    )

    assert (found.stack_name, found.queues_table) == (STACK, settings.queues_table)


def test_a_stack_without_the_sqsloops_outputs_is_refused(settings: Settings) -> None:
    cloudformation = create_stack(settings, LoopsTableName="", ScaleUpTopicArn="")

    with pytest.raises(ConfigError, match="missing outputs LoopsTableName, ScaleUpTopicArn"):
        settings_from_stack(cloudformation, STACK)


def test_cli_with_stack_option_registers_into_that_stack(
    settings: Settings,
    aws: Clients,
    queue: MadeQueue,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given no SQSLOOPS_* variables, only a deployed stack
    for name in ("STACK", "QUEUES_TABLE", "LOOPS_TABLE", "STACK_NAME"):
        monkeypatch.delenv(f"SQSLOOPS_{name}", raising=False)
    create_stack(settings)

    code, _, err = run(
        capsys, "--stack", STACK, "--region", REGION, "register", queue.url, "--handler", "lambda:w", "--no-check"
    )

    assert code == 0, err
    assert registered_urls(aws, settings) == [queue.url]
    alarm_names = [a["AlarmName"] for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]]
    assert alarm_names
    assert all(name.startswith(f"{STACK}-orders-") for name in alarm_names)


def test_cli_with_a_missing_stack_exits_1_with_one_line(aws: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--stack", "no-such-stack", "list")

    assert code == 1
    assert_one_error_line(err, "stack not found: no-such-stack")


# --- AWS unreachable: one line, exit 1 (no moto here, and nothing leaves the machine) -----------------------------


@pytest.fixture
def tables_only_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQSLOOPS_QUEUES_TABLE", "queues")
    monkeypatch.setenv("SQSLOOPS_LOOPS_TABLE", "loops")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")


def test_no_credentials_exits_1_with_one_line(
    tables_only_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    code, _, err = run(capsys, "list")

    assert code == 1
    assert_one_error_line(err, "Unable to locate credentials")


def test_unreachable_endpoint_exits_1_with_one_line(
    tables_only_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens

    code, _, err = run(capsys, "list")

    assert code == 1
    assert_one_error_line(err, "Could not connect to the endpoint URL")
