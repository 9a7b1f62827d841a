"""The demo and `sqsloops local up` on the embedded AWS: real loops, real alarms, real scaling, counted by a ledger.

The demo runs on the package's shared embedded AWS (one per process); `local up` runs in a subprocess of its own,
driven as a person would from a second shell: environment from its export lines, then the CLI.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from sqsloops.examples import LEDGER_ENV
from sqsloops.local.server import EmbeddedAws
from sqsloops.ops.chart import write_chart
from sqsloops.ops.demo import Demo, DemoOptions, DemoResult, format_summary
from tests.e2e.conftest import DEADLINE_S

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 500 messages at ~20 ms on one loop take ~10 s: longer than one alarm period (6 s at the package's time scale), so
# an evaluation always sees a backlog of more than backlog_per_loop and the loops must go up.
BURST = 500


@pytest.fixture(scope="module")
def demo_result(embedded_aws: EmbeddedAws, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    options = DemoOptions(
        messages=BURST,
        min_loops=1,
        max_loops=4,
        backlog_per_loop=20,
        deadline_s=150,
        tail_s=0,
        workdir=tmp_path_factory.mktemp("demo"),
    )
    return Demo(embedded_aws, options).run()


def test_a_demo_burst_is_processed_without_loss(demo_result: DemoResult) -> None:
    lines = format_summary(demo_result.summary())

    assert demo_result.failure is None
    assert f"sent: {BURST}" in lines
    assert f"processed: {BURST}" in lines
    assert "lost: 0" in lines
    assert "in dlq: 0" in lines


def test_demo_loops_go_above_min_and_come_back_to_min(demo_result: DemoResult) -> None:
    assert demo_result.peak_loops > demo_result.options.min_loops
    assert demo_result.samples[-1].loops == demo_result.options.min_loops
    assert demo_result.time_to_drain_s is not None
    assert demo_result.time_to_min_s is not None
    assert demo_result.time_to_min_s >= demo_result.time_to_drain_s


def test_the_demo_leaves_the_process_function_environment_as_it_found_it(
    demo_result: DemoResult, embedded_aws: EmbeddedAws
) -> None:
    configuration = embedded_aws.client("lambda").get_function_configuration(
        FunctionName=embedded_aws.settings.process_function
    )

    assert LEDGER_ENV not in configuration.get("Environment", {}).get("Variables", {})


def test_the_demo_deregisters_its_queue(demo_result: DemoResult, embedded_aws: EmbeddedAws) -> None:
    queues = embedded_aws.client("dynamodb").scan(TableName=embedded_aws.settings.queues_table, ConsistentRead=True)

    assert demo_result.queue_url not in [item["queue_url"]["S"] for item in queues["Items"]]


def test_the_demo_chart_is_a_png(demo_result: DemoResult, tmp_path: Path) -> None:
    chart = write_chart(demo_result, tmp_path / "charts" / "demo.png")

    assert chart.read_bytes().startswith(PNG_SIGNATURE)


# --- sqsloops local up ---------------------------------------------------------------------------------------------


def sqsloops_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("sqsloops")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from sqsloops.cli import main; sys.exit(main())", *args]


def read_exports(process: subprocess.Popen[str], *, deadline_s: float) -> dict[str, str]:
    """The `export NAME=VALUE` lines `local up` prints, up to its last one (SQSLOOPS_STACK)."""
    assert process.stdout is not None
    exports: dict[str, str] = {}
    give_up_at = time.monotonic() + deadline_s
    while "SQSLOOPS_STACK" not in exports and time.monotonic() < give_up_at:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = shlex.split(value)[0] if value else ""
    return exports


def run_cli(env: dict[str, str], *args: str) -> Any:
    completed = subprocess.run(
        sqsloops_command(*args), env=env, capture_output=True, text=True, timeout=DEADLINE_S, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_local_up_serves_the_stack_to_another_shell_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    # Given `sqsloops local up` running in its own process
    process = subprocess.Popen(
        sqsloops_command("local", "up", "--quiet", "--time-scale", "10", "--stack", "sqsloops-up"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        exports = read_exports(process, deadline_s=DEADLINE_S)
        assert exports["SQSLOOPS_STACK"] == "sqsloops-up"
        env = {**os.environ, **exports}
        sqs = boto3.client(
            "sqs",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        queue_url = sqs.create_queue(QueueName="second-shell")["QueueUrl"]

        # When another shell registers a queue with the CLI and sends messages to it
        run_cli(env, "register", queue_url, "--handler", "python:sqsloops.examples:noop", "--min", "1", "--max", "1")
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])

        # Then the loop that registration started processes them
        give_up_at = time.monotonic() + DEADLINE_S
        depth = -1
        while time.monotonic() < give_up_at:
            status = json.loads(run_cli(env, "status", queue_url, "--json"))[0]
            depth = status["depth"]["visible"] + status["depth"]["in_flight"]
            if depth == 0:
                break
            time.sleep(0.5)
        assert depth == 0
        assert status["loops"]["running"] == 1

        # And SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
