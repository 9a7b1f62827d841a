"""`sqsloops demo`: the whole system on an embedded AWS. A placeholder until `sqsloops local up` exists."""

from __future__ import annotations

import argparse
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.output import error


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("demo", help="run the whole system on an embedded AWS (not yet available)")
    parser.set_defaults(run=run_demo)


def run_demo(context: Context, args: argparse.Namespace) -> int:
    error("demo is not available yet: the embedded AWS arrives with `sqsloops local up` (issue 3)")
    return 2
