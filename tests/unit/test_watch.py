"""The watch model and view without AWS: throughput from counter samples, rendering, the refresh cadence, arguments."""

from __future__ import annotations

import io
import re
import threading

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from sqsloops.cli import main
from sqsloops.cli.watch import COLUMNS, follow, render, shown_columns
from sqsloops.clock import ManualClock
from sqsloops.errors import NotRegisteredError
from sqsloops.ops.registration import Counters, LoopCounts, QueueStatus
from sqsloops.ops.watch import Rates, Snapshot, Throughput, Watcher, default_window_s
from sqsloops.queues import Depth
from sqsloops.registry import QueueConfig

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
EPOCH_S = 1_700_000_000.0


def status(processed: int = 0, failed: int = 0, *, url: str = URL, error: str | None = None) -> QueueStatus:
    return QueueStatus(
        queue_url=url,
        config=QueueConfig(queue_url=url, handler="lambda:orders-worker", min_loops=1, max_loops=5),
        depth=None if error else Depth(visible=1234, in_flight=7, delayed=2),
        dlq_url=None,
        dlq_depth=None,
        loops=LoopCounts(running=2, stale=1, desired=None if error else 3),
        counters=Counters(processed=processed, failed=failed),
        error=error,
    )


class Source:
    """Statuses handed out one refresh at a time (an exception in the list is raised instead)."""

    def __init__(self, *answers: list[QueueStatus] | Exception) -> None:
        self.answers = list(answers)

    def status(self, queue_url: str | None = None) -> list[QueueStatus]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def text_of(snapshot: Snapshot, *, stack: str = "", endpoint: str | None = None) -> str:
    console = Console(file=io.StringIO(), width=250, record=True)
    console.print(render(snapshot, stack=stack, endpoint=endpoint))
    return console.export_text()


def cells(text: str, name: str) -> list[str]:
    """One queue's row, cell by cell (columns are at least two spaces apart)."""
    (line,) = [line for line in text.splitlines() if line.strip().startswith(f"{name} ")]
    return re.split(r"\s{2,}", line.strip())


# --- throughput -----------------------------------------------------------------------------------------------------


def test_one_sample_gives_no_rate() -> None:
    throughput = Throughput(window_s=10)
    throughput.add(0.0, Counters(processed=50))

    assert throughput.rates() == Rates(None, None)


def test_two_samples_give_the_counters_increase_per_second() -> None:
    throughput = Throughput(window_s=10)
    throughput.add(0.0, Counters(processed=100, failed=4))
    throughput.add(4.0, Counters(processed=140, failed=6))

    assert throughput.rates() == Rates(processed_per_s=10.0, failed_per_s=0.5)


def test_no_rate_until_the_samples_span_a_heartbeat() -> None:
    throughput = Throughput(window_s=20, min_span_s=10)
    throughput.add(0.0, Counters())
    throughput.add(5.0, Counters())
    assert throughput.rates() == Rates(None, None)

    throughput.add(10.0, Counters(processed=30))
    assert throughput.rates() == Rates(processed_per_s=3.0, failed_per_s=0.0)


def test_the_window_forgets_old_progress() -> None:
    # Given a burst early on, then nothing for longer than the window
    throughput = Throughput(window_s=10)
    throughput.add(0.0, Counters(processed=0))
    throughput.add(1.0, Counters(processed=500))
    for at_s in range(2, 20):
        throughput.add(float(at_s), Counters(processed=500))

    assert throughput.rates().processed_per_s == 0.0


def test_heartbeat_steps_are_smoothed_over_the_window() -> None:
    # Given a loop doing 10 msgs/s that flushes its counters every 5 s, sampled every second
    throughput = Throughput(window_s=10)
    for at_s in range(0, 21):
        throughput.add(float(at_s), Counters(processed=50 * (at_s // 5)))

    assert throughput.rates().processed_per_s == pytest.approx(10.0)


def test_a_deleted_token_lowering_the_sum_is_no_negative_throughput() -> None:
    throughput = Throughput(window_s=10)
    throughput.add(0.0, Counters(processed=100))
    throughput.add(1.0, Counters(processed=40))  # a scale-down took a token with 60 processed away
    throughput.add(2.0, Counters(processed=60))

    assert throughput.rates().processed_per_s == 10.0


def test_the_default_window_spans_two_heartbeats_and_at_least_ten_seconds() -> None:
    assert default_window_s(10) == 20
    assert default_window_s(1) == 10


# --- the watcher --------------------------------------------------------------------------------------------------


def test_watcher_rates_from_two_snapshots_with_an_injected_clock() -> None:
    clock = ManualClock(EPOCH_S)
    watcher = Watcher(Source([status(100, 1)], [status(130, 3)]), window_s=10, clock=clock)

    first = watcher.sample()
    clock.sleep(2.0)
    second = watcher.sample()

    assert first.rates_of(URL) == Rates(None, None)
    assert second.rates_of(URL) == Rates(processed_per_s=15.0, failed_per_s=1.0)
    assert second.taken_at == EPOCH_S + 2.0


def test_a_failed_refresh_keeps_the_last_values_and_says_why() -> None:
    clock = ManualClock(EPOCH_S)
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Scan")
    watcher = Watcher(Source([status(10)], throttled, [status(20)]), clock=clock)

    good = watcher.refresh()
    clock.sleep(1.0)
    failed = watcher.refresh()
    clock.sleep(1.0)
    recovered = watcher.refresh()

    assert failed.error == "ThrottlingException: Rate exceeded"
    assert failed.statuses == good.statuses
    assert failed.statuses_at == EPOCH_S
    assert recovered.error is None
    assert recovered.rates_of(URL).processed_per_s == 5.0


def test_sample_raises_so_a_first_read_can_fail_fast() -> None:
    watcher = Watcher(Source(NotRegisteredError(URL)))

    with pytest.raises(NotRegisteredError):
        watcher.sample()


# --- the view -------------------------------------------------------------------------------------------------------


def test_render_shows_depth_loops_rates_and_the_status_line() -> None:
    snapshot = Snapshot(
        taken_at=EPOCH_S, statuses=[status()], rates={URL: Rates(processed_per_s=12.25, failed_per_s=0.5)}
    )

    text = text_of(snapshot, stack="sqsloops", endpoint="http://127.0.0.1:5000")

    title = text.splitlines()[0]
    assert "stack sqsloops" in title
    assert "endpoint http://127.0.0.1:5000" in title
    assert "1 queue" in title
    assert cells(text, "orders") == [
        "orders", "1,234", "7", "2", "-", "2", "1", "3", "1..5", "12.2", "0.5", "lambda:orders-worker",
    ]  # fmt: skip


def test_render_without_samples_enough_shows_dashes_for_rates() -> None:
    text = text_of(Snapshot(taken_at=EPOCH_S, statuses=[status()]))

    assert cells(text, "orders")[9:11] == ["-", "-"]
    assert "endpoint" not in text.splitlines()[0]


def test_a_queue_with_an_error_shows_it_in_its_row() -> None:
    text = text_of(Snapshot(taken_at=EPOCH_S, statuses=[status(error="queue does not exist: orders")]))

    row = cells(text, "orders")
    assert row[1:5] == ["?", "?", "?", "?"]
    assert row[-1] == "queue does not exist: orders"


def test_a_failed_refresh_shows_under_the_table() -> None:
    snapshot = Snapshot(taken_at=EPOCH_S + 5, statuses=[status()], error="ExpiredToken: expired", statuses_at=EPOCH_S)

    text = text_of(snapshot)

    assert "refresh failed: ExpiredToken: expired; showing values from" in text
    assert cells(text, "orders")[1] == "1,234"


def test_a_narrow_screen_leaves_out_the_least_useful_columns_first() -> None:
    snapshot = Snapshot(taken_at=EPOCH_S, statuses=[status()], rates={URL: Rates(1.0, 0.0)})
    console = Console(file=io.StringIO(), width=80, record=True)

    console.print(render(snapshot, width=80))

    header = console.export_text().splitlines()[2].split()
    assert header == ["queue", "visible", "in", "flight", "dlq", "running", "stale", "desired", "done/s", "failed/s"]
    assert shown_columns(None) == COLUMNS


def test_no_registrations_says_so() -> None:
    assert "no queues registered" in text_of(Snapshot(taken_at=EPOCH_S, statuses=[]))


# --- the refresh cadence ------------------------------------------------------------------------------------------


def plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=250), out


def test_follow_refreshes_every_interval_until_the_duration_ends() -> None:
    clock = ManualClock(EPOCH_S)
    answers = [[status(10 * n)] for n in range(10)]
    console, out = plain_console()

    follow(Watcher(Source(*answers), clock=clock), console=console, interval_s=1.0, duration_s=3.5, clock=clock)

    assert out.getvalue().count("sqsloops watch ·") == 4  # at 0, 1, 2 and 3 s
    assert clock.elapsed_s == 3.5


def test_follow_keeps_refreshing_after_a_failed_refresh() -> None:
    clock = ManualClock(EPOCH_S)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "Scan")
    console, out = plain_console()

    follow(
        Watcher(Source([status()], denied, [status()]), clock=clock),
        console=console,
        interval_s=1.0,
        duration_s=2.5,
        clock=clock,
    )

    text = out.getvalue()
    assert text.count("sqsloops watch ·") == 3
    assert text.count("refresh failed: AccessDenied: no") == 1


def test_follow_in_a_terminal_redraws_in_place() -> None:
    clock = ManualClock(EPOCH_S)
    out = io.StringIO()
    console = Console(file=out, width=250, force_terminal=True)

    follow(
        Watcher(Source([status(0)], [status(10)]), clock=clock),
        console=console,
        interval_s=1.0,
        duration_s=1.5,
        stack="demo",
        clock=clock,
    )

    assert "stack demo" in out.getvalue()
    assert "\x1b[" in out.getvalue()  # cursor movement: the same table redrawn


def test_follow_stops_when_the_stop_event_is_set() -> None:
    stop = threading.Event()
    stop.set()
    console, out = plain_console()

    follow(Watcher(Source([status()])), console=console, interval_s=60.0, stop=stop)

    assert out.getvalue().count("sqsloops watch ·") == 1


# --- arguments --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["watch", "--interval-s", "0"], "--interval-s: must be a positive number of seconds"),
        (["watch", "--interval-s", "soon"], "--interval-s: must be a positive number of seconds, got 'soon'"),
        (["watch", "--duration-s", "-1"], "--duration-s"),
        (["watch", "--window-s", "nan"], "--window-s"),
        (["watch", "--once", "--duration-s", "5"], "not allowed with argument --once"),
        (["watch", URL, URL], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)

    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sqsloops: error: ")
    assert fragment in err
