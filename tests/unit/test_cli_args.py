"""The command line itself, no AWS: what each command parses to, and that every usage error is one line, exit 2."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sqsloops.cli import main
from sqsloops.cli.context import quiet_logs
from sqsloops.cli.demo_jobs import print_result
from sqsloops.cli.output import table
from sqsloops.cli.parser import build_parser
from sqsloops.cli.registration import config_changes
from sqsloops.errors import ConfigError
from sqsloops.log import SERVICE
from sqsloops.ops.demo_jobs import Check, JobsDemoResult
from sqsloops.settings import Settings

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_register_maps_every_option_to_a_registration_field() -> None:
    args = parse(
        "register", URL, "--handler", "python:jobs.mail:send", "--min", "1", "--max", "20",
        "--backlog-per-loop", "50", "--batch-size", "5", "--wait-s", "10", "--visibility-timeout-s", "120",
        "--backoff-base-s", "1.5", "--backoff-max-s", "60", "--rate-per-s", "2.5", "--handler-mode", "batch",
        "--disabled",
    )  # fmt: skip

    assert args.queue_url == URL
    assert config_changes(args) == {
        "handler": "python:jobs.mail:send",
        "min_loops": 1,
        "max_loops": 20,
        "backlog_per_loop": 50,
        "batch_size": 5,
        "wait_s": 10,
        "visibility_timeout_s": 120,
        "backoff_base_s": 1.5,
        "backoff_max_s": 60.0,
        "rate_per_s": 2.5,
        "handler_mode": "batch",
        "enabled": False,
    }


def test_register_leaves_unset_options_to_the_registration_defaults() -> None:
    assert config_changes(parse("register", URL, "--handler", "lambda:w")) == {"handler": "lambda:w"}


@pytest.mark.parametrize(
    ("options", "changes"),
    [
        ([], {}),
        (["--max", "3"], {"max_loops": 3}),
        (["--handler", "lambda:other"], {"handler": "lambda:other"}),
        (["--enabled"], {"enabled": True}),
        (["--disabled"], {"enabled": False}),
        (["--no-rate-limit"], {"rate_per_s": None}),
        (["--rate-per-s", "4"], {"rate_per_s": 4.0}),
    ],
)
def test_update_changes_only_what_is_given(options: list[str], changes: dict[str, object]) -> None:
    assert config_changes(parse("update", URL, *options)) == changes


def test_other_commands_parse() -> None:
    assert parse("scale", URL, "4").loops == 4
    assert parse("status").queue_url is None
    assert parse("status", URL, "--json").json is True
    assert parse("list", "--json").json is True
    assert parse("deregister", URL).queue_url == URL
    global_options = parse("--stack", "prod", "--region", "eu-west-1", "list")
    assert (global_options.stack, global_options.region) == ("prod", "eu-west-1")


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["register"],
        ["register", URL],
        ["register", URL, "--handler"],
        ["register", URL, "--handler", "lambda:w", "--min", "one"],
        ["register", URL, "--handler", "lambda:w", "--batch-size", "1.5"],
        ["register", URL, "--handler", "lambda:w", "--rate-per-s", "fast"],
        ["register", URL, "--handler", "lambda:w", "--handler-mode", "sometimes"],
        ["register", URL, "--handler", "lambda:w", "--bogus"],
        ["register", URL, "--handler", "lambda:w", "--no-rate-limit"],
        ["update", URL, "--enabled", "--disabled"],
        ["scale", URL],
        ["scale", URL, "many"],
        ["scale", URL, "1", "2"],
        ["status", URL, "extra"],
        ["list", "--json", "--yaml"],
        ["--region"],
        ["demo", "jobs", "--burst", "1"],
        ["demo", "jobs", "--rate-jobs", "many"],
        ["demo", "jobs", "--time-scale", "500"],
        ["demo", "party"],
    ],
    ids=lambda argv: " ".join(argv) or "(nothing)",
)
def test_usage_errors_are_one_line_on_stderr_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sqsloops: error: ")
    assert "Traceback" not in err


def test_help_exits_0_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out, _ = capsys.readouterr()
    for command in ("register", "update", "deregister", "list", "scale", "status", "local", "demo"):
        assert command in out


def test_demo_help_names_its_options_without_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out, _ = capsys.readouterr()
    for option in ("--messages", "--time-scale", "--max-loops", "--out"):
        assert option in out


def test_demo_jobs_help_names_its_options_without_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "jobs", "--help"]) == 0
    out, _ = capsys.readouterr()
    for option in ("--time-scale", "--burst", "--rate-jobs", "--deadline-s", "--out"):
        assert option in out


def test_demo_jobs_prints_each_check_and_the_reason_of_a_failed_one(capsys: pytest.CaptureFixture[str]) -> None:
    checks = (Check("hello", "3 succeed", "3 succeeded", True), Check("later", "after 1h", "not scheduled", False))
    result = JobsDemoResult(checks=checks, applied=3, reapply_changes=0, time_scale=60, run_s=1.0)

    print_result(result, wall_s=2.0, log_path=Path("functions.log"))

    out = capsys.readouterr().out
    assert "check hello: ok: 3 succeeded" in out.splitlines()
    assert "check later: FAILED: not scheduled" in out.splitlines()
    assert result.failure == "later: expected after 1h, observed not scheduled"


def test_logs_are_quiet_during_a_command_and_restored_after() -> None:
    log = logging.getLogger(SERVICE)
    before = log.level

    with quiet_logs(verbose=False):
        assert log.level == logging.ERROR
    with quiet_logs(verbose=True):
        assert log.level == logging.INFO

    assert log.level == before


def test_table_falls_back_to_plain_columns_without_rich(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "sqsloops.cli.console", None)  # rich's console, if a test imported it before

    table("queues", ("queue", "loops"), [("orders", 3), ("mail", None)])

    assert capsys.readouterr().out.splitlines() == ["queues", "queue   loops", "orders  3", "mail"]


def test_runtime_modules_do_not_import_rich() -> None:
    """rich is the `cli` extra: the Lambda layer has no rich, so nothing outside a table may import it."""

    code = "import sys, sqsloops.ops.registration, sqsloops.ops.stack, sqsloops.cli; print('rich' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- stack outputs -------------------------------------------------------------------------------------------------

OUTPUTS = {
    "QueuesTableName": "q",
    "LoopsTableName": "l",
    "ProcessFunctionName": "p",
    "ScaleUpTopicArn": "arn:up",
    "ScaleDownTopicArn": "arn:down",
}


def test_timing_outputs_are_optional_and_default() -> None:
    settings = Settings.from_outputs("s", OUTPUTS)
    assert (settings.stack_name, settings.queues_table, settings.alarm_period_s) == ("s", "q", 60)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({**OUTPUTS, "HeartbeatSeconds": "soon"}, "HeartbeatSeconds must be a number"),
        ({**OUTPUTS, "StaleAfterSeconds": "0"}, "StaleAfterSeconds must be positive"),
        ({"QueuesTableName": "q"}, "missing outputs LoopsTableName, ProcessFunctionName"),
    ],
)
def test_malformed_stack_outputs_are_refused(outputs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_outputs("s", outputs)
