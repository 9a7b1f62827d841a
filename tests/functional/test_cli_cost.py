"""`sqsloops cost` end to end through main([...]): no stack, no credentials, one line per usage error."""

from __future__ import annotations

import json
import sys

import boto3
import pytest

from sqsloops.cli import main

STEADY = ["cost", "--rate", "50/s", "--handler-ms", "20", "--memory", "256"]


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, no region, no stack settings; and any attempt at an AWS session fails the test loudly."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION", "SQSLOOPS_STACK"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SQSLOOPS_QUEUES_TABLE", "SQSLOOPS_LOOPS_TABLE", "SQSLOOPS_PROCESS_FUNCTION"):
        monkeypatch.delenv(name, raising=False)

    def no_session(*args: object, **kwargs: object) -> None:
        raise AssertionError("sqsloops cost must not open an AWS session")

    monkeypatch.setattr(boto3.session, "Session", no_session)


def test_json_gives_both_estimates_the_ratio_and_every_price_with_its_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a steady workload, without any AWS configuration
    # When it is priced for a script
    code = main([*STEADY, "--json"])

    # Then both totals, the ratio and the prices come back as JSON
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["sqsloops"]["total"] == pytest.approx(29.04, abs=0.005)
    assert result["native"]["total"] == pytest.approx(22.12, abs=0.005)
    assert result["ratio"] == pytest.approx(1.313, abs=0.001)
    assert result["loops"]["busy_loops"] == 2
    assert result["job_tracking"]["writes_per_job"] == 2
    assert result["job_tracking"]["total_usd"] == pytest.approx(3.36, abs=0.005)
    assert set(result["sqsloops"]["line_items"]) == {
        "lambda_compute",
        "lambda_requests",
        "sqs",
        "dynamodb",
        "cloudwatch",
        "sns",
        "eventbridge",
    }
    assert all(price["source"].startswith("https://aws.amazon.com/") for price in result["prices"].values())
    assert result["assumptions"]["heartbeat_s"] == 10


def test_piped_output_is_a_plain_table_with_the_ratio_and_the_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(STEADY) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("sqsloops cost: 50 msgs/s all day, handler 20 ms, 256 MB")
    rows = {line.split("  ")[0]: line.split() for line in lines[1:11]}
    assert rows["Lambda compute"][-2:] == ["$17.53", "$8.98"]
    assert rows["total"][-2:] == ["$29.04", "$22.12"]
    assert rows["DynamoDB"][-1] == "-"
    assert "ratio: sqsloops costs 1.31x the native trigger" in out
    assert "loops: 2 while busy" in out
    assert "  heartbeat_s " in out
    assert "\x1b[" not in out  # no terminal codes when piped


def test_a_terminal_gets_a_rich_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    assert main([*STEADY, "--busy-hours-per-day", "2"]) == 0

    out = capsys.readouterr().out
    assert "┃" in out or "│" in out  # drawn with box characters
    assert "native SQS trigger" in out
    assert "ratio: sqsloops costs" in out


def test_assumptions_can_be_changed_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    idle = ["cost", "--rate", "0/s", "--handler-ms", "20", "--memory", "256", "--json"]

    assert main([*idle, "--assume", "native_idle_pollers=2", "--assume", "stack_alarms=0"]) == 0

    result = json.loads(capsys.readouterr().out)
    # 2 pollers * 2,628,000 s / 20 s = 262,800 receives; 4 depth alarms and none of the stack's
    assert result["native"]["usage"]["sqs_request"] == pytest.approx(262_800)
    assert result["sqsloops"]["line_items"]["cloudwatch"] == pytest.approx(0.40)


def test_a_rate_max_loops_cannot_keep_up_with_is_costed_and_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*STEADY, "--max-loops", "1"]) == 0

    out, err = capsys.readouterr()
    assert err.startswith("sqsloops: warning: max_loops 1 moves at most 43.5 msgs/s")
    assert len(err.splitlines()) == 1
    assert "loops: 1 while busy" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["cost"],
        ["cost", "--rate", "fast", "--handler-ms", "20", "--memory", "256"],
        ["cost", "--rate", "5/week", "--handler-ms", "20", "--memory", "256"],
        ["cost", "--rate", "5/s", "--handler-ms", "0", "--memory", "256"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "64"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "lots"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "256", "--batch-size", "11"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "256", "--min-loops", "3", "--max-loops", "2"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "256", "--busy-hours-per-day", "30"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "256", "--assume", "nope=1"],
        ["cost", "--rate", "5/s", "--handler-ms", "20", "--memory", "256", "--assume", "sweep_ms"],
    ],
    ids=lambda argv: " ".join(argv[1:]) or "(nothing)",
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sqsloops: error: ")
    assert "Traceback" not in err
