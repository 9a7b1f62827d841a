"""`sqsloops cost`: what a workload costs a month on sqsloops and on Lambda's native SQS trigger, side by side.

Needs no stack and no credentials: it is arithmetic on list prices (sqsloops.ops.prices) and named assumptions
(sqsloops.ops.cost.Assumptions, each settable with --assume NAME=VALUE). A table in a terminal, plain text when piped,
JSON with --json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.output import emit_json, error, say, warn
from sqsloops.errors import ConfigError
from sqsloops.ops.cost import (
    LINE_ITEMS,
    Assumptions,
    Comparison,
    TrackingCost,
    Workload,
    compare,
    parse_rate,
    tracking_cost,
)
from sqsloops.ops.prices import READ_ON, REGION

COLUMNS = ("monthly (USD)", "sqsloops", "native SQS trigger")


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "cost",
        help="estimate a workload's monthly cost on sqsloops and on the native SQS trigger (no AWS needed)",
        description="Monthly cost of a queue's workload on sqsloops loops and on Lambda's native SQS trigger, "
        f"from {REGION} list prices and named assumptions. Touches no AWS account.",
    )
    parser.add_argument(
        "--rate", required=True, type=_rate, metavar="N/UNIT", help="messages while busy: N/s, N/min, N/h or N/day"
    )
    parser.add_argument("--handler-ms", required=True, type=_positive, metavar="MS", help="handler time per message")
    parser.add_argument("--memory", required=True, type=_whole, metavar="MB", help="function memory (128-10240)")
    parser.add_argument("--min-loops", type=_whole, default=0, metavar="N", help="loops that always run (default 0)")
    parser.add_argument("--max-loops", type=_whole, metavar="N", help="most loops (default: what the rate needs)")
    parser.add_argument("--batch-size", type=_whole, default=10, metavar="N", help="messages per batch (default 10)")
    parser.add_argument(
        "--busy-hours-per-day",
        type=_number,
        default=24.0,
        metavar="H",
        help="hours a day the rate lasts; the queue is idle the rest (default 24)",
    )
    parser.add_argument(
        "--assume",
        action="append",
        default=[],
        type=_assignment,
        metavar="NAME=VALUE",
        help="change one of the model's assumptions (repeatable; listed in the output)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_cost)


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _positive(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def run_cost(context: Context, args: argparse.Namespace) -> int:
    """Never touches `context`: no stack, session or credentials are needed to price a workload."""
    workload = Workload(
        rate_per_s=args.rate,
        handler_ms=args.handler_ms,
        memory_mb=args.memory,
        min_loops=args.min_loops,
        max_loops=args.max_loops,
        batch_size=args.batch_size,
        busy_hours_per_day=args.busy_hours_per_day,
    )
    try:
        comparison = compare(workload, Assumptions().with_values(dict(args.assume)))
    except ConfigError as exc:  # a value out of range is a usage error like any other: one line, exit 2
        error(f"cost: {exc}")
        return 2
    tracking = tracking_cost()
    if args.json:
        emit_json({**comparison.as_dict(), "job_tracking": tracking.as_dict()})
        return 0
    for message in comparison.warnings:
        warn(message)
    if sys.stdout.isatty():
        _print_rich(comparison)
    else:
        _print_plain(comparison)
    return 0


# --- rendering ----------------------------------------------------------------------------------------------------


def money(usd: float) -> str:
    """Dollars to the cent; a cost under half a cent shows as such rather than as $0.00; nothing at all is '-'."""
    if usd == 0:
        return "-"
    if usd < 0.005:
        return "<$0.01"
    return f"${usd:,.2f}"


def rows(comparison: Comparison) -> list[tuple[str, str, str]]:
    mine, native = comparison.sqsloops.line_items, comparison.native.line_items
    lines = [(label, money(mine[key]), money(native[key])) for key, label in LINE_ITEMS.items()]
    lines.append(("total", money(comparison.sqsloops.total), money(comparison.native.total)))
    return lines


def title(comparison: Comparison) -> str:
    w, plan = comparison.workload, comparison.plan
    busy = "all day" if w.busy_hours_per_day >= 24 else f"{w.busy_hours_per_day:g} h/day"
    return (
        f"sqsloops cost: {w.rate_per_s:,.4g} msgs/s {busy}, handler {w.handler_ms:g} ms, {w.memory_mb} MB, "
        f"batch {w.batch_size}, loops {w.min_loops}..{plan.max_loops} "
        f"({REGION}, a month of {comparison.assumptions.hours_per_month:g} h)"
    )


def summary(comparison: Comparison) -> list[str]:
    plan, ratio = comparison.plan, comparison.ratio
    verdict = "n/a" if ratio is None else f"sqsloops costs {ratio:.2f}x the native trigger"
    return [
        f"ratio: {verdict}",
        f"loops: {plan.busy_loops} while busy (one moves at most {plan.capacity_per_loop:,.1f} msgs/s), "
        f"{plan.idle_loops} while idle; {plan.messages:,.0f} messages a month in batches of "
        f"{plan.messages_per_batch:g}; {len(plan.alarm_levels)} depth alarms",
        tracking_line(tracking_cost()),
    ]


def tracking_line(tracking: TrackingCost) -> str:
    return (
        f"job tracking (@job track=True, the default): {money(tracking.total_usd)} per million jobs, "
        f"{tracking.writes_per_job} table + {tracking.index_writes_per_job} index writes each (queued; started and "
        f"succeeded; counted by make bench-jobs) {money(tracking.writes_usd)} + {tracking.reads_per_job} read "
        f"{money(tracking.reads_usd)} + rows kept {tracking.retention_days:g} days {money(tracking.storage_usd)}; "
        "track=False: none"
    )


def assumption_lines(comparison: Comparison) -> list[str]:
    described = comparison.assumptions.described()
    width = max(len(name) for name, _, _ in described)
    lines = [f"  {name.ljust(width)}  {value:<7g} {why}" for name, value, why in described]
    return [
        "assumptions (change one with --assume NAME=VALUE):",
        *lines,
        f"prices: {REGION} on-demand list prices read {READ_ON}, each with its page in sqsloops/prices.py "
        "(no free tier)",
    ]


def _print_plain(comparison: Comparison) -> None:
    table = [COLUMNS, *rows(comparison)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    say(title(comparison))
    for index, row in enumerate(table):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        say("  ".join(cells))
        if index == len(table) - 2:
            say("  ".join("-" * width for width in widths))
    for line in [*summary(comparison), *assumption_lines(comparison)]:
        say(line)


def _print_rich(comparison: Comparison) -> None:
    from rich.table import Table

    from sqsloops.cli.console import stdout_console

    console = stdout_console()
    console.print(title(comparison), style="bold", highlight=False, markup=False)
    table = Table()
    for index, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if index == 0 else "right")
    lines = rows(comparison)
    for index, row in enumerate(lines):
        table.add_row(*row, end_section=index == len(lines) - 2, style="bold" if index == len(lines) - 1 else None)
    console.print(table)
    for line in summary(comparison):
        console.print(line, highlight=False)
    for line in assumption_lines(comparison):
        console.print(line, highlight=False, markup=False)
