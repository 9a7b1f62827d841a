"""`sqsloops demo` (what `make demo` runs): a burst through the whole system on an embedded AWS, then its numbers.

The run itself is sqsloops.ops.demo; this module starts the embedded AWS with compressed time, shows the live view
while the demo runs (the watch table in a terminal, a plain line every few seconds otherwise), then prints the
summary, writes the chart and exits 0 only if nothing was lost and the loops came back to min. The functions' logs
go to a file in --out, not the terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from sqsloops.cli.context import Context
from sqsloops.cli.local import find_template, time_scale
from sqsloops.cli.output import error, say
from sqsloops.ops.demo import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_LOOPS,
    DEFAULT_MESSAGES,
    DEFAULT_MIN_LOOPS,
    DEFAULT_TIME_SCALE,
    FINISHED,
    Demo,
    DemoOptions,
    DemoResult,
    Progress,
    embedded_parameters,
    format_summary,
)
from sqsloops.ops.watch import Watcher

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

DEFAULT_STACK = "sqsloops-demo"
DEFAULT_OUT = Path("out") / "demo"
CHART_NAME = "demo.png"
LOG_NAME = "functions.log"
LIVE_INTERVAL_S = 1.0
PLAIN_INTERVAL_S = 2.0
MAX_MESSAGES = 100_000
EXIT_OK, EXIT_FAILED = 0, 1


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="send a burst through the whole system on an embedded AWS; show loops scale up and back"
    )
    parser.add_argument(
        "--messages",
        type=bounded_int(1, MAX_MESSAGES),
        default=DEFAULT_MESSAGES,
        metavar="N",
        help=f"messages in the burst (default {DEFAULT_MESSAGES})",
    )
    parser.add_argument(
        "--time-scale",
        type=time_scale,
        default=DEFAULT_TIME_SCALE,
        metavar="K",
        help=f"compress time K-fold (default {DEFAULT_TIME_SCALE:g}: a 60 s alarm period lasts 3 s)",
    )
    parser.add_argument(
        "--max-loops",
        type=bounded_int(DEFAULT_MIN_LOOPS, 50),
        default=DEFAULT_MAX_LOOPS,
        metavar="N",
        help=f"the queue's max_loops (default {DEFAULT_MAX_LOOPS}; min_loops is {DEFAULT_MIN_LOOPS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where the chart, the ledger and the functions' log go (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--deadline-s",
        type=bounded_float(1.0, 3600.0),
        default=DEFAULT_DEADLINE_S,
        metavar="S",
        help=f"give up (exit 1) when not settled after S seconds (default {DEFAULT_DEADLINE_S:g})",
    )
    parser.add_argument("--template", type=Path, metavar="PATH", help="the SAM template (default: the repository's)")
    parser.set_defaults(run=run_demo)
    scenarios = parser.add_subparsers(dest="scenario", metavar="{jobs}", help="another demo (default: the burst)")
    from sqsloops.cli import demo_jobs  # it reuses this module's pieces

    demo_jobs.add_command(scenarios)


def bounded_int(low: int, high: int) -> Any:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {raw!r}")
        return value

    return parse


def bounded_float(low: float, high: float) -> Any:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, got {raw!r}")
        return value

    return parse


def run_demo(context: Context, args: argparse.Namespace) -> int:
    started = time.monotonic()
    template = find_template(args.template)
    from sqsloops.local.server import EmbeddedAws
    from sqsloops.ops.chart import write_chart  # the `local` extra, imported once the arguments are known good

    stack = context.stack_name or DEFAULT_STACK
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    options = DemoOptions(
        messages=args.messages,
        max_loops=args.max_loops,
        deadline_s=args.deadline_s,
        workdir=out.resolve(),
        queue_prefix=stack,  # the stack's loops may use only queues named after it (template.yaml)
    )
    log_path = out / LOG_NAME
    with log_path.open("w", encoding="utf-8") as log, interrupt_on_sigterm():
        sink = LogSink(log)
        say(f"sqsloops demo: starting the embedded AWS (time x{args.time_scale:g}) ...")
        with EmbeddedAws(
            template=template,
            stack_name=stack,
            time_scale=args.time_scale,
            parameters=embedded_parameters(args.time_scale),
            echo=sink,
        ) as aws:
            say(
                f"stack {stack} deployed on {aws.endpoint} in {time.monotonic() - started:.1f} s; "
                f"function logs: {log_path}"
            )
            say(
                f"burst of {options.messages:,} messages, ~20 ms of work each, loops {options.min_loops}.."
                f"{options.max_loops}, alarm period {aws.settings.alarm_period_s / args.time_scale:g} s"
            )
            demo = Demo(aws, options)
            with _live_view(demo, stack=stack, endpoint=aws.endpoint):
                result = demo.run()
            chart = write_chart(result, out / CHART_NAME)
            wall_s = time.monotonic() - started
            _print_summary(result, wall_s=wall_s, chart=chart, log_path=log_path)
    failure = result.failure
    if failure:
        error(f"demo failed: {failure}")
        return EXIT_FAILED
    say("demo ok: every message processed, loops back at min")
    return EXIT_OK


# --- the live view ------------------------------------------------------------------------------------------------


def progress_line(progress: Progress) -> str:
    """One plain line: phase, time (real and in alarm periods), burst, depth, loops, ledger count."""
    periods = progress.elapsed_s / progress.alarm_period_s if progress.alarm_period_s > 0 else 0.0
    parts = [
        f"[{progress.phase}] t+{progress.elapsed_s:.1f} s ({periods:.1f} alarm periods)",
        f"sent {progress.sent:,}/{progress.messages:,}",
    ]
    sample = progress.sample
    if sample is not None:
        parts += [
            f"visible {sample.visible:,}",
            f"in flight {sample.in_flight:,}",
            f"loops {sample.loops}",
            f"processed {sample.processed:,}",
        ]
    return " · ".join(parts)


@contextmanager
def _live_view(demo: Demo, *, stack: str, endpoint: str) -> Iterator[None]:
    """While the block runs: the watch table under a progress line in a terminal, plain lines otherwise."""
    from sqsloops.cli.watch import make_console

    console = make_console()
    stop = threading.Event()
    target = _draw_live if console.is_terminal else _draw_plain
    thread = threading.Thread(target=target, args=(demo, console, stop, stack, endpoint), name="demo-view", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _draw_plain(demo: Demo, console: Console, stop: threading.Event, _stack: str, _endpoint: str) -> None:
    while not stop.wait(PLAIN_INTERVAL_S):
        say(progress_line(demo.progress()))
        sys.stdout.flush()


def _draw_live(demo: Demo, console: Console, stop: threading.Event, stack: str, endpoint: str) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from sqsloops.cli.watch import render

    heartbeat_s = demo.settings.heartbeat_s
    watcher = Watcher(demo.registrations, window_s=max(4.0, 4 * heartbeat_s), min_span_s=heartbeat_s)

    def view() -> RenderableType:
        snapshot = watcher.refresh()
        table = render(snapshot, stack=stack, endpoint=endpoint, width=console.width)
        return Group(Text(progress_line(demo.progress()), style="bold"), table)

    with Live(view(), console=console, auto_refresh=False, transient=False) as live:
        while not stop.wait(LIVE_INTERVAL_S):
            if demo.progress().phase in FINISHED:  # cleaning up: the last frame shows the settled state
                break
            live.update(view(), refresh=True)


# --- the end ------------------------------------------------------------------------------------------------------


def _print_summary(result: DemoResult, *, wall_s: float, chart: Path, log_path: Path) -> None:
    """The summary as a table (rich), then as `label: value` lines for grep, then where the files are."""
    from rich.table import Table

    from sqsloops.cli.console import stdout_console

    rows = result.summary(wall_s=wall_s)
    table = Table(title="sqsloops demo", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in rows:
        style = "red" if label == "lost" and result.lost else ""
        table.add_row(label, value, style=style)
    stdout_console().print(table)
    for line in format_summary(rows):
        say(line)
    say(f"chart: {chart}")
    say(f"function logs: {log_path}")


class LogSink:
    """The embedded AWS's echo: lines from many threads into one file."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            if not self._stream.closed:
                self._stream.write(line + "\n")
                self._stream.flush()


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the demo as Ctrl-C does: the embedded AWS and its workers are stopped on the way out."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
