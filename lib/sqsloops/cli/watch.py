"""`sqsloops watch`: a live table of every registered queue's depth, loops and throughput.

In a terminal the table redraws in place (rich Live). Piped or captured, each refresh prints one plain table, so
`sqsloops watch --duration-s 60 > log` records a time series. render() and follow() are reusable (the demo embeds
the view while it runs); rich is imported only when they run.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqsloops.cli.context import Context
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.ops.registration import QueueStatus
from sqsloops.ops.watch import Rates, Snapshot, Watcher, default_window_s
from sqsloops.queues import QueueRef

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

DEFAULT_INTERVAL_S = 1.0
PIPED_WIDTH = 200  # piped output does not wrap at 80 columns
COLUMNS = (
    "queue",
    "visible",
    "in flight",
    "delayed",
    "dlq",
    "running",
    "stale",
    "desired",
    "min..max",
    "done/s",
    "failed/s",
    "handler",
)
TEXT_COLUMNS = {"queue": (8, 40), "handler": (12, 60)}  # column: (narrowest, widest)
# Left out, in this order, while the screen is too narrow for every column.
NARROW_DROPS = ("handler", "min..max", "delayed", "stale", "in flight")


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("watch", help="live depth, loops and throughput per queue")
    parser.add_argument("queue_url", metavar="QUEUE_URL", nargs="?", help="watch only this queue")
    parser.add_argument(
        "--interval-s",
        type=_seconds,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"refresh every S seconds (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--window-s",
        type=_seconds,
        metavar="S",
        help="throughput averaged over the last S seconds (default: two heartbeats, at least 10)",
    )
    ending = parser.add_mutually_exclusive_group()
    ending.add_argument("--once", action="store_true", help="print one table and exit")
    ending.add_argument("--duration-s", type=_seconds, metavar="S", help="stop after S seconds")
    parser.set_defaults(run=run_watch)


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {raw!r}")
    return value


def run_watch(context: Context, args: argparse.Namespace) -> int:
    settings = context.settings
    window_s = args.window_s or default_window_s(settings.heartbeat_s)
    watcher = Watcher(
        context.registrations,
        queue_url=args.queue_url,
        window_s=window_s,
        min_span_s=min(settings.heartbeat_s, window_s),  # counters move at heartbeats: a shorter span says nothing
    )
    stack = settings.stack_name or context.stack_name or ""
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    console = make_console()
    try:
        first = watcher.sample()  # a failure here (no stack, no credentials, unregistered queue): exit 1, one line
        if args.once:
            console.print(render(first, stack=stack, endpoint=endpoint, width=console.width))
            return 0
        follow(
            watcher,
            console=console,
            interval_s=args.interval_s,
            duration_s=args.duration_s,
            stack=stack,
            endpoint=endpoint,
            first=first,
        )
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        pass
    return 0


# --- reusable pieces ----------------------------------------------------------------------------------------------


def make_console() -> Console:
    """A console on stdout; when it is not a terminal, wide enough that rows stay whole."""
    from sqsloops.cli.console import stdout_console

    return stdout_console(piped_width=PIPED_WIDTH)


def follow(
    watcher: Watcher,
    *,
    console: Console,
    interval_s: float = DEFAULT_INTERVAL_S,
    duration_s: float | None = None,
    stack: str = "",
    endpoint: str | None = None,
    first: Snapshot | None = None,
    stop: threading.Event | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Refresh every interval_s until duration_s has passed or stop is set; Ctrl-C propagates.

    A failed refresh shows in the status line and the next one tries again. In a terminal the table redraws in
    place; otherwise each refresh prints a table.
    """
    snapshots = _snapshots(watcher, interval_s=interval_s, duration_s=duration_s, first=first, stop=stop, clock=clock)
    if not console.is_terminal:
        for snapshot in snapshots:
            console.print(render(snapshot, stack=stack, endpoint=endpoint, width=console.width))
        return
    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        for snapshot in snapshots:
            live.update(render(snapshot, stack=stack, endpoint=endpoint, width=console.width), refresh=True)


def _snapshots(
    watcher: Watcher,
    *,
    interval_s: float,
    duration_s: float | None,
    first: Snapshot | None,
    stop: threading.Event | None,
    clock: Clock,
) -> Iterator[Snapshot]:
    """One snapshot per tick of a fixed cadence (a slow refresh skips ticks rather than drifting)."""
    started_s = clock.monotonic()
    end_s = math.inf if duration_s is None else started_s + duration_s
    yield first if first is not None else watcher.refresh()
    tick = 1
    while not (stop and stop.is_set()):
        now_s = clock.monotonic()
        tick = max(tick, math.floor((now_s - started_s) / interval_s) + 1)
        due_s = started_s + tick * interval_s
        pause_s = min(due_s, end_s) - now_s
        if stop is not None:
            stop.wait(max(0.0, pause_s))
        else:
            clock.sleep(pause_s)
        if due_s >= end_s or (stop and stop.is_set()):
            return
        tick += 1
        yield watcher.refresh()


def status_line(snapshot: Snapshot, *, stack: str = "", endpoint: str | None = None) -> str:
    parts = [time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))]
    if stack:
        parts.append(f"stack {stack}")
    if endpoint:
        parts.append(f"endpoint {endpoint}")
    count = len(snapshot.statuses)
    parts.append(f"{count} queue" + ("" if count == 1 else "s"))
    return "sqsloops watch · " + " · ".join(parts)


def render(snapshot: Snapshot, *, stack: str = "", endpoint: str | None = None, width: int | None = None) -> Table:
    """The view of one snapshot: a status line, one row per queue (its error, if any, in place of its handler).

    Given the width available, the least useful columns are left out rather than every column squeezed.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=status_line(snapshot, stack=stack, endpoint=endpoint),
        title_justify="left",
        caption=_caption(snapshot),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = shown_columns(width)
    for column in columns:
        if column in TEXT_COLUMNS:  # these give way first (their cells never wrap: one line per queue)
            table.add_column(
                column, justify="left", min_width=TEXT_COLUMNS[column][0], max_width=TEXT_COLUMNS[column][1]
            )
        else:
            table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for status in snapshot.statuses:
        cells = _cells(status, snapshot.rates_of(status.queue_url))
        table.add_row(*(cells[column] for column in columns))
    if not snapshot.statuses and snapshot.error is None:
        table.add_row(Text("no queues registered", style="dim"), *([""] * (len(columns) - 1)))
    return table


def shown_columns(width: int | None) -> tuple[str, ...]:
    """Every column, or on a narrow screen all but the first of NARROW_DROPS that must go."""
    columns = list(COLUMNS)
    for column in NARROW_DROPS:
        if width is None or _min_width(columns) <= width:
            break
        columns.remove(column)
    return tuple(columns)


def _min_width(columns: list[str]) -> int:
    return sum(TEXT_COLUMNS[c][0] if c in TEXT_COLUMNS else len(c) for c in columns) + 2 * len(columns)


def _caption(snapshot: Snapshot) -> Text | None:
    from rich.text import Text

    if snapshot.error is None:
        return None
    since = (
        f"; showing values from {time.strftime('%H:%M:%S', time.localtime(snapshot.statuses_at))}"
        if snapshot.statuses_at is not None
        else ""
    )
    return Text(f"refresh failed: {snapshot.error}{since}", style="bold red")


def _cells(status: QueueStatus, rates: Rates) -> dict[str, Text]:
    from rich.text import Text

    depth, dlq, loops, config = status.depth, status.dlq_depth, status.loops, status.config
    unknown = "?" if status.error else "-"
    state = " (broken)" if status.broken is not None else "" if config.enabled else " (disabled)"
    name = _name(status.queue_url) + state
    last = Text(_short_error(status), style="red") if status.error else Text(config.handler)
    cells = dict(
        zip(
            COLUMNS,
            (
                Text(name, style="bold" if config.enabled else "dim"),
                Text(_count(depth.visible) if depth else "?"),
                Text(_count(depth.in_flight) if depth else "?"),
                Text(_count(depth.delayed) if depth else "?"),
                Text(_count(dlq.visible) if dlq else unknown, style="red" if dlq and dlq.visible else ""),
                Text(str(loops.running), style="green" if loops.running else ""),
                Text(str(loops.stale), style="yellow" if loops.stale else ""),
                Text("?" if loops.desired is None else str(loops.desired)),
                Text(f"{config.min_loops}..{config.max_loops}"),
                Text(_rate(rates.processed_per_s)),
                Text(_rate(rates.failed_per_s), style="red" if rates.failed_per_s else ""),
                last,
            ),
            strict=True,
        )
    )
    for column in TEXT_COLUMNS:
        cells[column].no_wrap, cells[column].overflow = True, "ellipsis"
    return cells


def _short_error(status: QueueStatus) -> str:
    """The row names the queue already: its URL in the error only takes room."""
    return (status.error or "").replace(f": {status.queue_url}", "")


def _count(value: int) -> str:
    return f"{value:,}"


def _rate(per_s: float | None) -> str:
    return "-" if per_s is None else f"{per_s:,.1f}"


def _name(queue_url: str) -> str:
    try:
        return QueueRef.parse(queue_url).name
    except ConfigError:
        return queue_url
