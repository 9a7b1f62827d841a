"""Fault specs (sqsloops.local.faults): what a spec means, a one-line error for a bad one, and what is answered.

The faults' effect on the real stack (throttled calls from a function, failed and dropped invokes, kills) is
tested on the embedded AWS in tests/e2e/test_faults.py; here the spec, the windows and the HTTP answers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from sqsloops.cli import main
from sqsloops.local.faults import FaultInjector, Faults, FaultSpecError, Window

LAMBDA_UA = "Boto3/1.43 md/Botocore#1.43 ua/2.1 os/linux exec-env/AWS_Lambda_python3.11 cfg/retry-mode#standard"
CLI_UA = "Boto3/1.43 md/Botocore#1.43 ua/2.1 os/linux cfg/retry-mode#standard"
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ddb_request(operation: str, *, agent: str = LAMBDA_UA, table: str = "loops") -> dict[str, Any]:
    body = json.dumps({"TableName": table}).encode()
    return {
        "HTTP_USER_AGENT": agent,
        "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "PATH_INFO": "/",
    }


def invoke_request(invocation_type: str = "Event", *, agent: str = LAMBDA_UA) -> dict[str, Any]:
    return {
        "HTTP_USER_AGENT": agent,
        "PATH_INFO": "/2015-03-31/functions/stack-process/invocations",
        "HTTP_X_AMZ_INVOCATION_TYPE": invocation_type,
    }


# ---------------------------------------------------------------- the spec


def test_a_full_spec_parses_into_every_fault_and_prints_back() -> None:
    spec = "ddb-throttle=0.2,ddb-storm=5s/30s,invoke-fail=5%,invoke-outage=10s/1m,invoke-drop=0.05,kill=every:500ms"
    faults = Faults.parse(spec + ",seed=7")
    assert faults == Faults(
        ddb_throttle=0.2,
        ddb_storm=Window(5.0, 30.0),
        invoke_fail=0.05,
        invoke_outage=Window(10.0, 60.0),
        invoke_drop=0.05,
        kill_every_s=0.5,
        seed=7,
    )
    assert Faults.parse(str(faults)) == faults
    assert faults.any


@pytest.mark.parametrize("spec", ["", "  "])
def test_an_empty_spec_injects_nothing(spec: str) -> None:
    assert Faults.parse(spec) == Faults()
    assert not Faults.parse(spec).any
    assert str(Faults()) == "none"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("ddb-throttle", "not name=value"),
        ("ddb-throttle=", "not name=value"),
        ("ddb-throtle=0.2", "unknown fault 'ddb-throtle'"),
        ("ddb-throttle=1.5", "share from 0 to 1"),
        ("ddb-throttle=lots", "share from 0 to 1"),
        ("ddb-throttle=-5%", "share from 0 to 1"),
        ("ddb-storm=5s", "DURATION/PERIOD"),
        ("ddb-storm=30s/5s", "must not exceed the period"),
        ("invoke-outage=0s/10s", "positive duration"),
        ("invoke-outage=5 parsecs/10s", "positive duration"),
        ("kill=5s", "every:DURATION"),
        ("kill=every:", "positive duration"),
        ("seed=x", "integer"),
        ("kill=every:1s,kill=every:2s", "given twice"),
        ("ddb-throttle=0.1,", "not name=value"),
    ],
)
def test_a_bad_spec_is_one_line_naming_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        Faults.parse(spec)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_local_up_refuses_a_bad_spec_in_one_line_with_exit_1_before_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["local", "up", "--template", str(TEMPLATE), "--faults", "ddb-throttle=2"])
    _, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "ddb-throttle=2" in lines[0]
    assert "share from 0 to 1" in lines[0]


# ---------------------------------------------------------------- windows, in compressed time


def test_a_window_is_on_at_the_end_of_each_period() -> None:
    storm = Window(5.0, 30.0)
    moments = (0, 24.9, 25, 29.9, 30, 54.9, 55)
    assert [storm.active(t) for t in moments] == [False, False, True, True, False, False, True]


def test_a_storm_counts_in_the_stacks_compressed_time() -> None:
    clock = Clock()
    injector = FaultInjector(Faults.parse("ddb-storm=5s/30s"), time_scale=10, clock=clock)
    clock.now += 2.4  # 24 s of stack time
    assert not injector.ddb_throttled()
    clock.now += 0.2  # 26 s
    assert injector.ddb_throttled()
    clock.now += 0.5  # 31 s: the next period
    assert not injector.ddb_throttled()
    assert injector.counts.ddb_throttled == 1


def test_a_share_throttles_about_that_share_of_calls() -> None:
    injector = FaultInjector(Faults.parse("ddb-throttle=20%,seed=3"))
    throttled = sum(injector.ddb_throttled() for _ in range(5000))
    assert 850 < throttled < 1150
    assert injector.counts.ddb_throttled == throttled


# ---------------------------------------------------------------- what the hook answers


def test_a_throttled_dynamodb_call_gets_what_aws_answers() -> None:
    injector = FaultInjector(Faults.parse("ddb-throttle=1"))
    status, headers, body = injector.answer(ddb_request("UpdateItem", table="stack-loops")) or ("", [], b"")
    assert status.startswith("400 ")
    assert ("Content-Type", "application/x-amz-json-1.0") in headers
    error = json.loads(body)
    assert error["__type"].endswith("#ProvisionedThroughputExceededException")
    assert error["ThrottlingReasons"] == [
        {
            "reason": "TableWriteKeyRangeThroughputExceeded",
            "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/stack-loops",
        }
    ]
    _, _, read_body = injector.answer(ddb_request("GetItem")) or ("", [], b"")
    assert json.loads(read_body)["ThrottlingReasons"][0]["reason"] == "TableReadKeyRangeThroughputExceeded"


def test_calls_from_outside_a_function_are_never_faulted() -> None:
    injector = FaultInjector(Faults.parse("ddb-throttle=1,invoke-fail=1"))
    assert injector.answer(ddb_request("UpdateItem", agent=CLI_UA)) is None
    assert injector.answer(invoke_request(agent=CLI_UA)) is None
    assert injector.counts.ddb_throttled == 0


def test_an_outage_fails_async_invokes_with_a_service_exception_but_not_synchronous_ones() -> None:
    injector = FaultInjector(Faults.parse("invoke-outage=1m/1m"))
    status, headers, _ = injector.answer(invoke_request("Event")) or ("", [], b"")
    assert status.startswith("500 ")
    assert ("x-amzn-ErrorType", "ServiceException") in headers
    assert injector.answer(invoke_request("RequestResponse")) is None
    assert injector.counts.invoke_failed == 1


def test_a_dropped_invoke_is_accepted_and_never_reaches_moto() -> None:
    injector = FaultInjector(Faults.parse("invoke-drop=1"))
    status, _, body = injector.answer(invoke_request("Event")) or ("", [], b"x")
    assert status.startswith("202 ")
    assert body == b""
    assert injector.counts.invoke_dropped == 1
