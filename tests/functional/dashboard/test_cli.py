"""`sqsloops dashboard` and the server it starts: a real socket on 127.0.0.1, uvicorn in a thread, moto behind it."""

from __future__ import annotations

import http.cookiejar
import socket
import threading
import urllib.error
import urllib.request

import pytest

from sqsloops.cli import main
from sqsloops.cli.dashboard import start_server
from sqsloops.errors import ConfigError
from tests.conftest import settings_env
from tests.functional.jobs.apply_kit import STACK, JobStack


def status_of(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, str]:
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_server_serves_the_pages_to_the_printed_url_only(stack: JobStack) -> None:
    server = start_server(stack.root, host="127.0.0.1", port=0, auth=True)
    try:
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        assert status_of(browser, server.base_url + "/")[0] == 403
        code, page = status_of(browser, server.url)  # redirected to / with the cookie set
        assert code == 200
        assert f"{STACK}-send_email" in page
        assert status_of(browser, server.base_url + "/jobs")[0] == 200  # the cookie alone is enough now
    finally:
        server.stop()


def test_a_port_in_use_is_one_clear_error(stack: JobStack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} is in use"):
            start_server(stack.root, host="127.0.0.1", port=port, auth=True)


def test_the_command_prints_the_url_with_its_token_and_serves_until_stopped(
    stack: JobStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**settings_env(stack.settings), **stack.settings.environment()}.items():
        monkeypatch.setenv(name, value)
    started = threading.Event()
    servers: list[object] = []

    import sqsloops.cli.dashboard as command

    real_start = command.start_server

    def start_and_stop_soon(*args: object, **kwargs: object) -> object:
        server = real_start(*args, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        started.set()
        threading.Timer(0.5, server.stop).start()  # as Ctrl-C would
        return server

    monkeypatch.setattr(command, "start_server", start_and_stop_soon)
    assert main(["dashboard", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert started.is_set()
    assert "sqsloops dashboard for stack sqsloops-test: open http://127.0.0.1:" in out
    assert "/?token=" in out


def test_bad_arguments_and_a_missing_stack_are_one_line_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "must be a port number" in err[0]
    assert main(["dashboard", "--refresh-s", "0"]) == 2
    capsys.readouterr()
    for name in ("SQSLOOPS_STACK", "SQSLOOPS_QUEUES_TABLE", "SQSLOOPS_LOOPS_TABLE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["dashboard", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sqsloops: error: ")
