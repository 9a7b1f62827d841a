"""Printing results: one-line messages, JSON for scripts, tables for people (rich when installed, plain otherwise)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def error(message: object) -> None:
    print(f"sqsloops: error: {one_line(message)}", file=sys.stderr)


def warn(message: object) -> None:
    print(f"sqsloops: warning: {one_line(message)}", file=sys.stderr)


def say(message: object) -> None:
    print(message, file=sys.stdout)


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table on stdout. rich is imported here, on use: the runtime modules never load it."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    try:
        from rich.table import Table

        from sqsloops.cli.console import stdout_console
    except ImportError:  # the `cli` extra is not installed: plain aligned columns
        widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
        say(title)
        for row in [list(columns), *cells]:
            say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        return
    rich_table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        rich_table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
    for row in cells:
        rich_table.add_row(*row)
    stdout_console(piped_width=240).print(rich_table)  # piped: long queue URLs stay whole
