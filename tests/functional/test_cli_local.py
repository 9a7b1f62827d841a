"""`sqsloops local up` and `sqsloops demo` before anything starts: arguments, template discovery, and the pieces
the demo is built from (ledger handler, ledger reading, compressed parameters, summary, chart).

Nothing here starts the embedded AWS: tests/e2e/test_demo.py runs both commands for real.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from sqsloops.cli import main
from sqsloops.cli.demo import progress_line
from sqsloops.cli.local import find_template, shell_lines
from sqsloops.cli.parser import build_parser
from sqsloops.errors import ConfigError
from sqsloops.examples import LEDGER_ENV, ledger
from sqsloops.ops.chart import write_chart
from sqsloops.ops.demo import DemoOptions, DemoResult, Ledger, Progress, Sample, embedded_parameters, format_summary

REPOSITORY = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sqsloops: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# --- arguments ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["local"], "ACTION"),
        (["local", "down"], "invalid choice"),
        (["local", "up", "--port", "70000"], "port number"),
        (["local", "up", "--port", "http"], "port number"),
        (["local", "up", "--time-scale", "0"], "from 1 (real time)"),
        (["local", "up", "--time-scale", "nan"], "from 1 (real time)"),
        (["local", "up", "--time-scale", "61"], "to 60"),
        (["demo", "--messages", "0"], "--messages"),
        (["demo", "--messages", "many"], "--messages"),
        (["demo", "--max-loops", "0"], "--max-loops"),
        (["demo", "--time-scale", "1000"], "--time-scale"),
        (["demo", "--deadline-s", "-5"], "--deadline-s"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert_one_error_line(err, fragment)


@pytest.mark.parametrize("command", [["local", "up"], ["demo"]])
def test_a_missing_template_is_one_line_and_exit_1_before_anything_starts(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"

    code, _, err = run(capsys, *command, "--template", str(missing))

    assert code == 1
    assert_one_error_line(err, "template not found", str(missing))


def test_local_up_takes_the_stack_name_before_or_after_the_command() -> None:
    parser = build_parser()

    assert parser.parse_args(["local", "up", "--stack", "after"]).stack == "after"
    assert parser.parse_args(["--stack", "before", "local", "up"]).stack == "before"
    assert parser.parse_args(["local", "up"]).stack is None


def test_local_up_defaults_to_real_time_and_a_free_port() -> None:
    args = build_parser().parse_args(["local", "up"])

    assert args.time_scale == 1.0
    assert args.port == 0
    assert args.quiet is False


# --- template, shell lines, parameters ---------------------------------------------------------------------------


def test_the_template_is_found_beside_the_package_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert find_template() == REPOSITORY / "template.yaml"


def test_an_explicit_template_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="template not found"):
        find_template(tmp_path / "missing.yaml")


def test_shell_lines_survive_a_round_trip_through_the_shell() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "SQSLOOPS_STACK": "it's mine"}

    lines = shell_lines(env)

    parsed = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert parsed == env


def test_real_time_deploys_the_template_defaults() -> None:
    assert embedded_parameters(1.0) == {}


@pytest.mark.parametrize("time_scale", [2.0, 10.0, 20.0, 60.0])
def test_compressed_time_leaves_each_invocation_more_than_its_reserve_and_the_stale_threshold_several_heartbeats(
    time_scale: float,
) -> None:
    parameters = embedded_parameters(time_scale)

    invocation_s = float(parameters["ProcessTimeoutSeconds"]) / time_scale
    assert invocation_s >= 5 * float(parameters["ReserveSeconds"])
    assert float(parameters["StaleAfterSeconds"]) >= 5 * float(parameters["HeartbeatSeconds"])


# --- the ledger --------------------------------------------------------------------------------------------------


def test_the_ledger_handler_appends_the_body_seq_or_else_the_message_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv(LEDGER_ENV, str(path))

    ledger({"messageId": "m-1", "body": json.dumps({"seq": 7})})
    ledger({"messageId": "m-2", "body": "not json"})

    assert path.read_text().splitlines() == ["7", "m-2"]


def test_the_ledger_handler_without_a_path_only_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    monkeypatch.chdir(tmp_path)

    ledger({"messageId": "m-1", "body": "{}"})

    assert os.listdir(tmp_path) == []


def test_reading_a_ledger_counts_whole_lines_only_and_each_identity(tmp_path: Path) -> None:
    path = tmp_path / "ledger.txt"
    path.write_text("1\n2\n1\n3")  # "3" is still being written
    reader = Ledger(path)

    assert reader.lines() == 3
    with path.open("a") as handle:
        handle.write("\n")
    assert reader.counts() == {"1": 2, "2": 1, "3": 1}


def test_reading_a_ledger_that_does_not_exist_yet_counts_nothing(tmp_path: Path) -> None:
    assert Ledger(tmp_path / "later.txt").lines() == 0


# --- the summary and the chart -----------------------------------------------------------------------------------


def make_result(**changes: object) -> DemoResult:
    samples = (
        Sample(0.0, 0, 0, 0, 1, 0),
        Sample(1.0, 800, 10, 0, 1, 10),
        Sample(2.0, 700, 80, 0, 8, 200),
        Sample(4.0, 0, 0, 0, 8, 1000),
        Sample(5.0, 0, 0, 0, 1, 1000),
    )
    values: dict[str, object] = {
        "options": DemoOptions(messages=1000),
        "queue_url": "http://127.0.0.1:4566/123456789012/demo",
        "time_scale": 20.0,
        "alarm_period_s": 3.0,
        "sent": 1000,
        "processed": 1000,
        "duplicates": 2,
        "in_dlq": 0,
        "left_in_queue": 0,
        "peak_loops": 8,
        "time_to_peak_s": 2.0,
        "time_to_drain_s": 4.0,
        "time_to_min_s": 5.0,
        "burst_sent_s": 1.0,
        "run_s": 6.0,
        "converged": True,
        "samples": samples,
    }
    values.update(changes)
    return DemoResult(**values)  # type: ignore[arg-type]


def test_the_summary_is_greppable_with_durations_in_seconds_and_alarm_periods() -> None:
    lines = format_summary(make_result().summary(wall_s=30.0))

    assert "lost: 0" in lines
    assert "duplicates: 2" in lines
    assert "time to drain: 4.0 s (1.3 alarm periods)" in lines
    assert "time back to min: 5.0 s (1.7 alarm periods)" in lines
    assert "wall time: 30.0 s" in lines


def test_a_run_that_lost_messages_fails_with_the_count() -> None:
    result = make_result(processed=997, in_dlq=1)

    assert result.lost == 2
    assert result.failure == "2 of 1000 messages lost (neither processed nor in the dead-letter queue)"


def test_messages_still_in_the_queue_are_not_lost_but_the_run_fails_for_not_settling() -> None:
    result = make_result(processed=900, left_in_queue=100, converged=False, time_to_min_s=None)

    assert result.lost == 0
    assert result.failure is not None
    assert result.failure.startswith("did not drain and scale back to min loops within 300 s")
    assert "time back to min: never" in format_summary(result.summary())


def test_the_progress_line_says_phase_time_and_counts() -> None:
    progress = Progress("draining", 3000, 3000, 6.0, 3.0, Sample(6.0, 1200, 80, 0, 8, 1700))

    line = progress_line(progress)

    assert line.startswith("[draining] t+6.0 s (2.0 alarm periods)")
    assert "visible 1,200" in line
    assert "loops 8" in line


def test_the_chart_is_written_as_a_png_with_its_directory(tmp_path: Path) -> None:
    path = write_chart(make_result(), tmp_path / "out" / "demo.png")

    assert path.read_bytes().startswith(PNG_SIGNATURE)
