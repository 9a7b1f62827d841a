"""The argument parser: every usage error is one line on stderr and exit status 2, never a usage dump."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from sqsloops.cli import cost, dashboard, demo, jobs, local, registration, watch
from sqsloops.cli.output import error

PROG = "sqsloops"
COMMAND_GROUPS = (registration, watch, dashboard, cost, local, demo, jobs)  # each has add_commands(subparsers)


class CliParser(argparse.ArgumentParser):
    """argparse, but a usage error prints `sqsloops: error: ...` on one line (and where to find help)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        error(f"{where}{message} (see '{self.prog} --help')")
        raise SystemExit(2)


def build_parser() -> CliParser:
    parser = CliParser(
        prog=PROG,
        description="Serverless SQS pollers on recursive Lambda loops: register queues, scale them, watch them.",
    )
    parser.add_argument(
        "--stack", metavar="NAME", help="the deployed stack (default: $SQSLOOPS_STACK, else SQSLOOPS_*)"
    )
    parser.add_argument("--region", metavar="R", help="AWS region (default: the usual AWS configuration)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show structured logs on stderr")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    # Not required: a bare `sqsloops` gets the help (main), not a usage error.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, via importlib.metadata): one source of truth."""
    try:
        return version(PROG)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
