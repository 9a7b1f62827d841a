"""The rich console every command prints through (the `cli` extra: import this module only where rich is used).

rich's own answer to a closed stdout (`sqsloops watch | head`) is a silent exit 1 (Console.on_broken_pipe raises
SystemExit(1)); this console raises BrokenPipeError instead, so `sqsloops.cli.main` ends every command the same
way whether the closed pipe met rich or a plain print.
"""

from __future__ import annotations

import errno
import sys

from rich.console import Console


class StdoutConsole(Console):
    """A rich Console on stdout that leaves a closed pipe to main() instead of exiting by itself."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, "stdout was closed")


def stdout_console(*, piped_width: int | None = None) -> Console:
    """A console on stdout; when stdout is not a terminal and `piped_width` is given, at least that wide (rows stay
    whole in a log instead of folding at 80 columns)."""
    console = StdoutConsole(file=sys.stdout)
    if piped_width is not None and not console.is_terminal:
        console = StdoutConsole(file=sys.stdout, width=max(console.width, piped_width))
    return console
