"""sqsloops.local's Event invocations: retried as EventInvokeConfig says, dropped once older than its event age.

A LambdaExecutor installed over in-process moto runs real worker subprocesses, at a time scale that makes
Lambda's 1 and 2 minute retry delays 0.6 s and 1.2 s, and the smallest MaximumEventAgeInSeconds (60) 0.6 s.
(The e2e package's embedded AWS cannot host these: one executor per process, and its time scale is 10.) The
handler appends one line per attempt to a file, so a test reads back what ran and when.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sqsloops.local.async_invoke import ASYNC_RETRY_DELAYS_S
from sqsloops.local.executor import LambdaExecutor
from tests.conftest import ACCOUNT, REGION, Clients

TIME_SCALE = 100.0
FIRST_RETRY_S = ASYNC_RETRY_DELAYS_S[0] / TIME_SCALE
SECOND_RETRY_S = ASYNC_RETRY_DELAYS_S[1] / TIME_SCALE
MIN_EVENT_AGE_S = 60  # the smallest MaximumEventAgeInSeconds Lambda (and botocore) accept: 0.6 s here
SLACK_S = 1.0  # how long past its due time an attempt that should not happen is waited for
DEADLINE_S = 30.0

HANDLER = """
import json
import os
import time

def handler(event, context):
    def log(step):
        with open(event["log"], "a") as file:
            file.write(json.dumps({"name": event["name"], "step": step, "at": time.time()}) + "\\n")

    log("started")
    time.sleep(event.get("sleep_s", 0))
    give_up_at = time.time() + 20
    while event.get("hold_until") and not os.path.exists(event["hold_until"]) and time.time() < give_up_at:
        time.sleep(0.02)
    log("finished")
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return "ok"
"""

TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture
def echoed() -> list[str]:
    return []


@pytest.fixture
def executor(aws: Clients, echoed: list[str]) -> Iterator[LambdaExecutor]:
    lambda_executor = LambdaExecutor(
        endpoint_url="http://127.0.0.1:9", region=REGION, account_id=ACCOUNT, time_scale=TIME_SCALE, echo=echoed.append
    )
    lambda_executor.install()
    yield lambda_executor
    lambda_executor.stop()


@pytest.fixture
def make_function(aws: Clients, executor: LambdaExecutor) -> Callable[..., str]:
    """Deploy HANDLER with an EventInvokeConfig made of the given fields (none: Lambda's defaults)."""
    role_arn = aws.iam.create_role(RoleName="async-test-role", AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))[
        "Role"
    ]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", HANDLER)

    def make(*, reserved_concurrency: int | None = None, **event_invoke_config: int) -> str:
        name = f"async-{uuid.uuid4().hex[:8]}"
        aws.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=900,  # 9 s per invocation at this time scale
        )
        if reserved_concurrency is not None:
            aws.lambda_.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved_concurrency)
        if event_invoke_config:
            aws.lambda_.put_function_event_invoke_config(FunctionName=name, **event_invoke_config)
        return name

    return make


def invoke_async(aws: Clients, function_name: str, **event: Any) -> None:
    response = aws.lambda_.invoke(FunctionName=function_name, InvocationType="Event", Payload=json.dumps(event))
    assert response["StatusCode"] == 202


def attempts(log: Path, name: str, step: str = "started") -> list[float]:
    """When each attempt of `name` reached `step` (epoch seconds), in order."""
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return [line["at"] for line in lines if line["name"] == name and line["step"] == step]


def wait_until(check: Callable[[], Any], *, what: str) -> None:
    give_up_at = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() >= give_up_at:
            raise AssertionError(f"not within {DEADLINE_S:g} s: {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("event_invoke_config", "expected_attempts"),
    [
        pytest.param({}, 3, id="no-config-means-lambdas-2-retries"),
        pytest.param({"MaximumRetryAttempts": 1}, 2, id="one-retry"),
        pytest.param({"MaximumRetryAttempts": 0}, 1, id="no-retry-as-the-stack-deploys-its-loops"),
    ],
)
def test_a_failed_event_invocation_is_retried_as_many_times_as_configured_then_given_up(
    aws: Clients,
    make_function: Callable[..., str],
    tmp_path: Path,
    echoed: list[str],
    event_invoke_config: dict[str, int],
    expected_attempts: int,
) -> None:
    # Given a function that always fails
    name = make_function(**event_invoke_config)
    log = tmp_path / "attempts.jsonl"
    # When it is invoked asynchronously once
    invoke_async(aws, name, log=str(log), name="job", fail=True)
    # Then it ran the expected number of times, and no more even after one more retry would have been due
    wait_until(lambda: len(attempts(log, "job", "finished")) >= expected_attempts, what=f"{expected_attempts} runs")
    time.sleep((SECOND_RETRY_S if expected_attempts > 1 else FIRST_RETRY_S) + SLACK_S)
    started = attempts(log, "job")
    assert len(started) == expected_attempts
    # And each retry came only after Lambda's delay (1 then 2 minutes, scaled), counted from the failure
    finished = attempts(log, "job", "finished")
    for retry, delay_s in zip(started[1:], ASYNC_RETRY_DELAYS_S, strict=False):
        previous_failure = max(at for at in finished if at < retry)
        assert retry - previous_failure >= delay_s / TIME_SCALE * 0.95  # timers never fire early; clocks may jitter
    wait_until(lambda: any("no retries left" in line for line in echoed), what="the give-up log line")


def test_a_successful_event_invocation_is_not_retried(
    aws: Clients, make_function: Callable[..., str], tmp_path: Path
) -> None:
    name = make_function()
    log = tmp_path / "attempts.jsonl"
    invoke_async(aws, name, log=str(log), name="job")
    wait_until(lambda: attempts(log, "job", "finished"), what="the first run")
    time.sleep(FIRST_RETRY_S + SLACK_S)
    assert len(attempts(log, "job")) == 1


# ---------------------------------------------------------------- maximum event age


def test_a_retry_is_dropped_once_the_event_is_older_than_its_maximum_age_counted_from_the_first_enqueue(
    aws: Clients, make_function: Callable[..., str], tmp_path: Path, echoed: list[str]
) -> None:
    # Given a failing function allowed retries, with MaximumEventAgeInSeconds 120 (1.2 s here)
    name = make_function(MaximumRetryAttempts=2, MaximumEventAgeInSeconds=120)
    log = tmp_path / "attempts.jsonl"
    # When its first attempt takes 1 s before failing, so the retry (0.6 s later) would start at an age of 1.6 s,
    # though only 0.6 s after the failure that caused it
    invoke_async(aws, name, log=str(log), name="job", fail=True, sleep_s=1.0)
    # Then the retry is dropped for its age, not run
    wait_until(lambda: any("over MaximumEventAgeInSeconds" in line for line in echoed), what="the drop")
    time.sleep(SLACK_S)
    assert len(attempts(log, "job")) == 1


@pytest.mark.parametrize(
    ("event_invoke_config", "runs"),
    [
        pytest.param({"MaximumEventAgeInSeconds": MIN_EVENT_AGE_S}, False, id="older-than-its-age-is-dropped"),
        pytest.param({}, True, id="within-the-default-6-hours-it-runs"),
    ],
)
def test_an_event_waiting_for_a_free_slot_runs_only_if_still_young_enough(
    aws: Clients,
    make_function: Callable[..., str],
    tmp_path: Path,
    echoed: list[str],
    event_invoke_config: dict[str, int],
    runs: bool,
) -> None:
    # Given a function with reserved concurrency 1, busy with a first event until released
    name = make_function(reserved_concurrency=1, **event_invoke_config)
    log, release = tmp_path / "attempts.jsonl", tmp_path / "release"
    invoke_async(aws, name, log=str(log), name="first", hold_until=str(release))
    wait_until(lambda: attempts(log, "first"), what="the first event to start")
    # When a second event waits for the slot for well over 0.6 s (MaximumEventAgeInSeconds 60, scaled)
    invoke_async(aws, name, log=str(log), name="second")
    time.sleep(MIN_EVENT_AGE_S / TIME_SCALE * 2.5)
    release.touch()
    wait_until(lambda: attempts(log, "first", "finished"), what="the first event to finish")
    # Then it runs if it is still within its event age, and is dropped, never run, if not
    if runs:
        wait_until(lambda: attempts(log, "second"), what="the second event to run")
    else:
        wait_until(lambda: any("over MaximumEventAgeInSeconds" in line for line in echoed), what="the drop")
        time.sleep(SLACK_S)
        assert attempts(log, "second") == []


# ---------------------------------------------------------------- the OnFailure destination

RECORDER = """
import json
import os

def handler(event, context):
    with open(os.environ["RECORDS"], "a") as file:
        file.write(json.dumps(event) + "\\n")
"""


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def recorder(aws: Clients, tmp_path: Path) -> tuple[str, Path]:
    """A function that appends every event it gets to a file: the OnFailure destination under test."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", RECORDER)
    path = tmp_path / "records.jsonl"
    arn = aws.lambda_.create_function(
        FunctionName=f"recorder-{uuid.uuid4().hex[:8]}",
        Runtime="python3.11",
        Role=aws.iam.create_role(RoleName="recorder-role", AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))["Role"][
            "Arn"
        ],
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"RECORDS": str(path)}},
    )["FunctionArn"]
    return str(arn), path


def test_an_invocation_that_fails_its_last_attempt_is_sent_to_its_on_failure_destination(
    aws: Clients, make_function: Callable[..., str], tmp_path: Path, recorder: tuple[str, Path]
) -> None:
    # Given a failing function with no retries and a Lambda OnFailure destination, as the stack deploys its loops
    destination, recorded = recorder
    name = make_function()
    aws.lambda_.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": destination}}
    )
    log = tmp_path / "attempts.jsonl"

    # When it is invoked asynchronously and fails
    invoke_async(aws, name, log=str(log), name="job", fail=True)

    # Then the destination gets Lambda's invocation record: the condition, the event, and the error
    wait_until(lambda: records(recorded), what="the invocation record")
    [record] = records(recorded)
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"].split(":")[6] == name
    assert record["requestPayload"] == {"log": str(log), "name": "job", "fail": True}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert "failing on purpose" in json.dumps(record["responsePayload"])


def test_an_event_dropped_for_its_age_is_sent_to_its_on_failure_destination(
    aws: Clients, make_function: Callable[..., str], tmp_path: Path, recorder: tuple[str, Path]
) -> None:
    # Given a busy function with reserved concurrency 1, MaximumEventAgeInSeconds 60 (0.6 s) and a destination
    destination, recorded = recorder
    name = make_function(reserved_concurrency=1)
    aws.lambda_.put_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=MIN_EVENT_AGE_S,
        DestinationConfig={"OnFailure": {"Destination": destination}},
    )
    log, release = tmp_path / "attempts.jsonl", tmp_path / "release"
    invoke_async(aws, name, log=str(log), name="first", hold_until=str(release))
    wait_until(lambda: attempts(log, "first"), what="the first event to start")

    # When a second event waits for the slot past its age, and is dropped
    invoke_async(aws, name, log=str(log), name="second")
    time.sleep(MIN_EVENT_AGE_S / TIME_SCALE * 2.5)
    release.touch()

    # Then its record, EventAgeExceeded and never run, reaches the destination (the first one's success does not)
    wait_until(lambda: records(recorded), what="the invocation record")
    [record] = records(recorded)
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"]["name"] == "second"
    assert "responsePayload" not in record
    assert attempts(log, "second") == []
