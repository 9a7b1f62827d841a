"""`register` refuses a handler that can never work, before it writes anything; `--no-check` skips the checks.

- lambda: the function must exist (GetFunction, on moto) and, when the stack is in CloudFormation, the process
  role's inline policies must allow lambda:InvokeFunction on it (a stack created in moto with that role);
- python: the process function answers a synchronous check event. Its answer is the real app's (called directly
  here); the round trip through Lambda runs on moto's Docker-less Lambda with queued replies, and for real on the
  embedded AWS in tests/e2e/test_register_check.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from process import lambda_function as process_app
from sqsloops.cli import main
from sqsloops.errors import ConfigError
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.registry import QueueConfig
from sqsloops.root import Root
from sqsloops.settings import Settings
from tests.conftest import ACCOUNT, REGION, Clients, create_function
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import queue_lambda_replies, use_lambda_without_docker
from tests.functional.test_registration import (
    RecordingLauncher,
    alarms_in_cloudwatch,
    registrations_in_table,
    tokens_in_table,
)


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def service(aws: Clients, settings: Settings, launcher: RecordingLauncher) -> QueueAdmin:
    return OpsRoot(settings, clients=aws, launcher=launcher).admin


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("orders")


def nothing_written(aws: Clients, settings: Settings, launcher: RecordingLauncher) -> bool:
    return (
        not registrations_in_table(aws, settings)
        and not tokens_in_table(aws, settings)
        and not alarms_in_cloudwatch(aws)
        and not launcher.started
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- lambda: -------------------------------------------------------------------------------------------------------


def test_a_lambda_handler_that_does_not_exist_is_refused_and_nothing_is_written(
    aws: Clients, settings: Settings, service: QueueAdmin, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    with pytest.raises(ConfigError, match="lambda handler function does not exist: no-such-function"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:no-such-function", min_loops=1))

    assert nothing_written(aws, settings, launcher)


def test_an_existing_lambda_handler_is_registered(
    aws: Clients, settings: Settings, service: QueueAdmin, queue: MadeQueue
) -> None:
    create_function(aws, "orders-worker")

    registered = service.register(QueueConfig(queue_url=queue.url, handler="lambda:orders-worker"))

    assert registered.config.handler == "lambda:orders-worker"
    assert registered.warnings == []


def test_the_cli_says_so_on_one_line_and_exits_1_and_no_check_skips_the_check(
    aws: Clients, env: Settings, queue: MadeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "register", queue.url, "--handler", "lambda:no-such-function")

    assert (code, out) == (1, "")
    assert err.splitlines() == ["sqsloops: error: lambda handler function does not exist: no-such-function"]
    assert registrations_in_table(aws, env) == []

    code, _, err = run(capsys, "register", queue.url, "--handler", "lambda:no-such-function", "--no-check")

    assert code == 0, err
    assert [item["handler"]["S"] for item in registrations_in_table(aws, env)] == ["lambda:no-such-function"]


def _stack_with_process_role(aws: Clients, stack_name: str, invocable: list[str]) -> None:
    """A CloudFormation stack (in moto) whose ProcessFunctionRole may invoke `invocable`, as the template's is."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "HandOver", "Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"},
            {"Sid": "ForwardToHandlers", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": invocable},
        ],
    }
    # The policy is put through IAM: moto's CloudFormation stores a role's inline policies unparseably.
    template = {
        "Resources": {
            "ProcessFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}}
        }
    }
    aws.cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    role = aws.cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId="ProcessFunctionRole")
    aws.iam.put_role_policy(
        RoleName=role["StackResourceDetail"]["PhysicalResourceId"],
        PolicyName="ProcessFunctionRolePolicy0",
        PolicyDocument=json.dumps(policy),
    )


def test_a_lambda_handler_the_process_role_may_not_invoke_is_refused(
    aws: Clients, settings: Settings, service: QueueAdmin, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    # Given the stack's role may invoke only its own handler functions
    prefix = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{settings.stack_name}-handler-"
    _stack_with_process_role(aws, settings.stack_name, [f"{prefix}*"])
    create_function(aws, "someone-elses")
    create_function(aws, f"{settings.stack_name}-handler-orders")

    # Then a function outside that scope is refused, naming the way to widen it
    with pytest.raises(ConfigError, match=r"may not invoke .*someone-elses.*HandlerFunctionArns"):
        service.register(QueueConfig(queue_url=queue.url, handler="lambda:someone-elses"))
    assert nothing_written(aws, settings, launcher)

    # And one inside it is registered
    registered = service.register(
        QueueConfig(queue_url=queue.url, handler=f"lambda:{settings.stack_name}-handler-orders")
    )
    assert registered.warnings == []


# --- python: -------------------------------------------------------------------------------------------------------


def _no_root() -> Root:
    raise AssertionError("a handler check builds no root: it touches no table and no queue")


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("python:nosuch.module:fn", "cannot import 'nosuch.module': ModuleNotFoundError"),
        ("python:sqsloops.examples:nosuch", "'sqsloops.examples' has no callable 'nosuch'"),
        ("lambda:worker", "only python: handlers are checked here"),
        ("python:not a target", "python handler must be 'package.module:function'"),
        (42, "check_handler must be a handler string"),
        ("python:x:" + "y" * 5_000_000, "check_handler must be a handler string"),
    ],
)
def test_the_process_function_answers_a_handler_check_with_the_reason(handler: Any, error: str) -> None:
    answer = process_app.handle({"check_handler": handler}, None, _no_root)

    assert answer["ok"] is False
    assert error in answer["error"]
    assert len(json.dumps(answer)) < 1_000


def test_the_process_function_answers_ok_for_a_handler_that_imports() -> None:
    assert process_app.handle({"check_handler": "python:sqsloops.examples:noop"}, None, _no_root) == {
        "ok": True,
        "error": "",
    }


@pytest.fixture
def process_function(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's process function in moto's Docker-less Lambda: synchronous invokes answer queued replies."""
    use_lambda_without_docker(monkeypatch)
    return create_function(aws, settings.process_function)


def test_a_python_handler_the_process_function_cannot_import_is_refused_and_nothing_is_written(
    aws: Clients,
    settings: Settings,
    service: QueueAdmin,
    launcher: RecordingLauncher,
    queue: MadeQueue,
    process_function: str,
) -> None:
    answer = process_app.handle({"check_handler": "python:nosuch.module:fn"}, None, _no_root)
    queue_lambda_replies(json.dumps(answer))

    with pytest.raises(ConfigError, match=r"does not load in the process function: cannot import 'nosuch\.module'"):
        service.register(QueueConfig(queue_url=queue.url, handler="python:nosuch.module:fn", min_loops=1))

    assert nothing_written(aws, settings, launcher)


def test_a_python_handler_the_process_function_imports_is_registered(
    service: QueueAdmin, queue: MadeQueue, process_function: str
) -> None:
    queue_lambda_replies(
        json.dumps(process_app.handle({"check_handler": "python:sqsloops.examples:noop"}, None, _no_root))
    )

    registered = service.register(QueueConfig(queue_url=queue.url, handler="python:sqsloops.examples:noop"))

    assert registered.config.handler == "python:sqsloops.examples:noop"


def test_a_process_function_that_does_not_answer_checks_is_refused_with_the_way_out(
    aws: Clients,
    settings: Settings,
    service: QueueAdmin,
    launcher: RecordingLauncher,
    queue: MadeQueue,
    process_function: str,
) -> None:
    # A process function deployed before handler checks takes the check for a malformed loop event
    queue_lambda_replies(json.dumps({"reason": "malformed_event", "recursed": False, "error": "lacks queue_url"}))

    with pytest.raises(ConfigError, match=r"did not answer the handler check .*--no-check"):
        service.register(QueueConfig(queue_url=queue.url, handler="python:sqsloops.examples:noop"))

    assert nothing_written(aws, settings, launcher)


def test_no_process_function_to_ask_is_refused_unless_the_check_is_skipped(
    aws: Clients, settings: Settings, service: QueueAdmin, launcher: RecordingLauncher, queue: MadeQueue
) -> None:
    with pytest.raises(ConfigError, match=r"cannot check python handler .*ResourceNotFoundException"):
        service.register(QueueConfig(queue_url=queue.url, handler="python:sqsloops.examples:noop"))
    assert nothing_written(aws, settings, launcher)

    registered = service.register(
        QueueConfig(queue_url=queue.url, handler="python:sqsloops.examples:noop"), check=False
    )
    assert registered.config.handler == "python:sqsloops.examples:noop"
