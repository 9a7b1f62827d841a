"""`sqsloops watch` against moto: what it shows is read from real queues, registrations and tokens.

Output is captured, not a terminal, so each refresh prints a plain table (the Live view is for terminals).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from rich.console import Console

from sqsloops.cli import main
from sqsloops.cli.watch import follow
from sqsloops.clock import Clock, ManualClock
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.ops.watch import Rates, Watcher
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row(text: str, name: str) -> list[str]:
    """The last table's cells for one queue: queue, visible, in flight, delayed, dlq, running, stale, desired, ..."""
    lines = [line for line in text.splitlines() if line.strip().startswith(f"{name} ")]
    assert lines, text
    return re.split(r"\s{2,}", lines[-1].strip())


@pytest.fixture
def orders(env: Settings, make_queue: Callable[..., MadeQueue], capsys: pytest.CaptureFixture[str]) -> MadeQueue:
    """A queue registered through the CLI with two to four loops."""
    queue = make_queue("orders")
    code, _, err = run(
        capsys, "register", queue.url, "--handler", "lambda:orders-worker", "--min", "2", "--max", "4", "--no-check"
    )
    assert code == 0, err
    return queue


def test_watch_once_shows_depth_and_loops(orders: MadeQueue, aws: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    # Given three visible messages, one in flight, and one dead letter
    for body in ("a", "b", "c", "d"):
        aws.sqs.send_message(QueueUrl=orders.url, MessageBody=body)
    aws.sqs.receive_message(QueueUrl=orders.url, MaxNumberOfMessages=1)
    aws.sqs.send_message(QueueUrl=orders.dlq_url, MessageBody="dead")

    code, out, err = run(capsys, "watch", "--once")

    assert (code, err) == (0, "")
    assert out.count("sqsloops watch ·") == 1
    assert "stack sqsloops-test" in out.splitlines()[0]
    _, visible, in_flight, delayed, dlq, running, stale, desired, bounds, processed, failed, handler = row(
        out, "orders"
    )
    assert (visible, in_flight, delayed, dlq) == ("3", "1", "0", "1")
    assert (running, stale, desired, bounds) == ("2", "0", "2", "2..4")
    assert (processed, failed) == ("-", "-")
    assert handler == "lambda:orders-worker"


def test_watch_one_queue_by_url(
    orders: MadeQueue, make_queue: Callable[..., MadeQueue], capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_queue("emails")
    assert run(capsys, "register", other.url, "--handler", "lambda:mailer", "--no-check")[0] == 0

    code, out, _ = run(capsys, "watch", orders.url, "--once")

    assert code == 0
    assert "orders" in out
    assert "emails" not in out


def test_a_deleted_queue_shows_an_error_row(
    orders: MadeQueue, aws: Clients, make_queue: Callable[..., MadeQueue], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a second registered queue that was deleted afterwards
    gone = make_queue("gone")
    assert run(capsys, "register", gone.url, "--handler", "lambda:w", "--no-check")[0] == 0
    aws.sqs.delete_queue(QueueUrl=gone.url)

    code, out, _ = run(capsys, "watch", "--once")

    assert code == 0
    cells = row(out, "gone")
    assert cells[1:4] == ["?", "?", "?"]
    assert cells[-1].startswith("queue does not exist")
    assert row(out, "orders")[5] == "2"  # the healthy queue is still shown


def test_duration_ends_the_watch(orders: MadeQueue, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "watch", "--interval-s", "0.05", "--duration-s", "0.2")

    assert (code, err) == (0, "")
    assert out.count("sqsloops watch ·") >= 2
    assert row(out, "orders")[5] == "2"


def test_an_unregistered_queue_exits_1_with_one_line(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/nope"

    code, out, err = run(capsys, "watch", url, "--once")

    assert (code, out) == (1, "")
    assert err == f"sqsloops: error: queue is not registered: {url}\n"


def test_no_registrations(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "watch", "--once")

    assert code == 0
    assert "no queues registered" in out


def test_ctrl_c_exits_cleanly_with_0(
    orders: MadeQueue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(self: Clock, seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Clock, "sleep", interrupt)

    code, out, err = run(capsys, "watch")

    assert (code, err) == (0, "")
    assert out.count("sqsloops watch ·") == 1


# --- the watcher on real tokens -------------------------------------------------------------------------------------


@pytest.fixture
def service(aws: Clients, settings: Settings) -> QueueAdmin:
    return OpsRoot(settings, clients=aws).admin


def test_rates_follow_the_counters_loops_add_at_heartbeats(orders: MadeQueue, service: QueueAdmin) -> None:
    clock = ManualClock()
    watcher = Watcher(service, window_s=20, clock=clock)
    tokens = service.tokens.list(orders.url)

    first = watcher.sample()
    clock.sleep(10.0)
    for token in tokens:  # each of the two loops flushes 25 processed and 5 failed at its heartbeat
        service.tokens.heartbeat(orders.url, token.slot, token.loop_id, processed=25, failed=5)
    second = watcher.sample()

    assert first.rates_of(orders.url) == Rates(None, None)
    assert second.rates_of(orders.url) == Rates(processed_per_s=5.0, failed_per_s=1.0)


def test_an_aws_error_on_one_refresh_shows_and_the_view_keeps_refreshing(
    orders: MadeQueue, service: QueueAdmin, aws: Clients, settings: Settings
) -> None:
    # Given the queues table disappears after the first refresh
    clock = FakeClock()  # refreshes at 0, 1 and 2 s: the table goes between the first two
    clock.at(0.5, lambda: aws.dynamodb.delete_table(TableName=settings.queues_table))
    out = io.StringIO()

    follow(
        Watcher(service, clock=clock),
        console=Console(file=out, width=250),
        interval_s=1.0,
        duration_s=2.5,
        clock=clock,
    )

    tables = out.getvalue().split("sqsloops watch ·")[1:]
    assert len(tables) == 3
    assert "refresh failed" not in tables[0]
    assert all("refresh failed: ResourceNotFoundException" in table for table in tables[1:])
    assert all(row(table, "orders")[5] == "2" for table in tables)  # the last good values stay on show
