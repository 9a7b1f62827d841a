"""What a new user meets in the first hour (issue 8): a busy port, a pipe closed early, a bare `sqsloops`,
`--version`, and registering with the defaults on a time-compressed stack.

`local up` and the closed pipe run the installed command in a subprocess (what a shell runs, interpreter exit
included); the rest run main([...]) in-process against moto.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sqsloops.cli import main
from sqsloops.ops.demo import embedded_parameters
from sqsloops.ops.registration import default_visibility_timeout_s, longest_visibility_timeout_s
from sqsloops.settings import Settings
from tests.conftest import Clients, create_function
from tests.conftest import TestQueue as MadeQueue

SQSLOOPS = Path(sys.executable).with_name("sqsloops")  # the console script of this virtualenv


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def worker(aws: Clients) -> str:
    """A handler register accepts: a Lambda function that exists."""
    create_function(aws, "orders-worker")
    return "lambda:orders-worker"


# --- local up on a busy port ---------------------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_local_up_on_a_busy_port_says_so_on_one_line_and_exits_1(busy_port: int) -> None:
    result = subprocess.run(
        [str(SQSLOOPS), "local", "up", "--port", str(busy_port), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"sqsloops: error: port {busy_port} is in use; pass another --port (0 picks a free one)"
    ]


# --- a closed stdout ---------------------------------------------------------------------------------------------


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader has already gone (as `| head` leaves it once head has its lines)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    yield write_end
    os.close(write_end)


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "--rate", "50/s", "--handler-ms", "100", "--memory", "512"],  # plain lines
        ["cost", "--rate", "50/s", "--handler-ms", "100", "--memory", "512", "--json"],  # json.dump
    ],
    ids=["lines", "json"],
)
def test_a_command_whose_reader_went_away_exits_0_quietly(argv: list[str], closed_pipe: int) -> None:
    result = subprocess.run(
        [str(SQSLOOPS), *argv], stdout=closed_pipe, stderr=subprocess.PIPE, text=True, timeout=60, check=False
    )

    assert (result.returncode, result.stderr) == (0, "")


def test_watch_into_a_closed_pipe_exits_0_quietly(
    env: Settings,
    worker: str,
    make_queue: Callable[..., MadeQueue],
    closed_pipe: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """watch prints through rich, whose own handling of a closed pipe is a silent SystemExit(1)."""
    queue = make_queue("orders")
    assert main(["register", queue.url, "--handler", worker]) == 0
    capsys.readouterr()
    with os.fdopen(os.dup(closed_pipe), "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)

        code = main(["watch", "--once"])

    assert code == 0
    assert capsys.readouterr().err == ""


# --- bare sqsloops and --version -------------------------------------------------------------------------------


def test_bare_sqsloops_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)

    assert (code, err) == (2, "")
    assert out.startswith("usage: sqsloops")
    for command in ("register", "status", "watch", "local", "demo"):
        assert f"    {command} " in out


def test_only_global_options_is_bare_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--region", "eu-west-1")

    assert (code, err) == (2, "")
    assert out.startswith("usage: sqsloops")


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--version")

    assert (code, out, err) == (0, f"sqsloops {importlib.metadata.version('sqsloops')}\n", "")


# --- default registrations on a time-compressed stack -------------------------------------------------------------


def compressed(settings: Settings, time_scale: float) -> Settings:
    """The settings `sqsloops local up --time-scale K` deploys (at 1, the template's defaults: these settings')."""
    parameters = embedded_parameters(time_scale)
    return replace(
        settings,
        heartbeat_s=float(parameters.get("HeartbeatSeconds", settings.heartbeat_s)),
        stale_after_s=float(parameters.get("StaleAfterSeconds", settings.stale_after_s)),
    )


@pytest.fixture
def compressed_env(env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test stack at ten times real speed, as the CLI reads it from SQSLOOPS_*."""
    fast = compressed(env, 10)
    monkeypatch.setenv("SQSLOOPS_HEARTBEAT_S", f"{fast.heartbeat_s:g}")
    monkeypatch.setenv("SQSLOOPS_STALE_AFTER_S", f"{fast.stale_after_s:g}")
    return fast


def stored_visibility_timeout_s(aws: Clients, settings: Settings, queue_url: str) -> int:
    item = aws.dynamodb.get_item(TableName=settings.queues_table, Key={"queue_url": {"S": queue_url}})["Item"]
    return int(item["visibility_timeout_s"]["N"])


def test_a_default_registration_on_a_compressed_stack_fits_it_without_a_warning(
    compressed_env: Settings,
    worker: str,
    aws: Clients,
    make_queue: Callable[..., MadeQueue],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = make_queue("orders")

    code, _, err = run(capsys, "register", queue.url, "--handler", worker)

    assert code == 0
    assert "warning" not in err
    visibility_s = stored_visibility_timeout_s(aws, compressed_env, queue.url)
    assert 1 <= visibility_s <= longest_visibility_timeout_s(compressed_env)


def test_an_explicit_visibility_timeout_too_long_for_the_stack_still_warns_and_names_one_that_fits(
    compressed_env: Settings,
    worker: str,
    aws: Clients,
    make_queue: Callable[..., MadeQueue],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = make_queue("orders")

    code, _, err = run(capsys, "register", queue.url, "--handler", worker, "--visibility-timeout-s", "60")

    assert code == 0
    [warning] = [line for line in err.splitlines() if "stale_after_s" in line]
    assert f"visibility timeout of {longest_visibility_timeout_s(compressed_env)} s at most" in warning
    assert stored_visibility_timeout_s(aws, compressed_env, queue.url) == 60


def test_a_real_time_stack_keeps_the_usual_default(
    env: Settings,
    worker: str,
    aws: Clients,
    make_queue: Callable[..., MadeQueue],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = make_queue("orders")

    code, _, err = run(capsys, "register", queue.url, "--handler", worker)

    assert (code, "warning" in err) == (0, False)
    assert stored_visibility_timeout_s(aws, env, queue.url) == 60


@pytest.mark.parametrize("time_scale", [1, 2, 5, 10, 30, 60])
def test_the_default_visibility_timeout_passes_the_check_at_every_time_scale(
    settings: Settings, time_scale: float
) -> None:
    stack = compressed(settings, time_scale)

    visibility_s = default_visibility_timeout_s(stack)

    assert 1 <= visibility_s <= 60
    assert visibility_s + 2 * stack.heartbeat_s < stack.stale_after_s  # the check's own inequality, written out
