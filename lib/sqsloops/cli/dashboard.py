"""`sqsloops dashboard`: the web dashboard over the stack, on 127.0.0.1 until Ctrl-C.

It prints the URL to open, with the startup token (as Jupyter does): the first visit trades it for a cookie.
sqsloops.dashboard is imported when the command runs: it needs the `dashboard` extra (Starlette, Jinja2, uvicorn).
"""

from __future__ import annotations

import argparse
import errno
import math
import sys
from typing import TYPE_CHECKING, Any

from sqsloops.cli.context import Context
from sqsloops.cli.local import port_number
from sqsloops.cli.output import say
from sqsloops.errors import ConfigError

if TYPE_CHECKING:
    from sqsloops.dashboard.server import DashboardServer
    from sqsloops.ops.root import OpsRoot

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765  # sqsloops.dashboard.server.DEFAULT_PORT, without importing the extra to parse arguments
DEFAULT_REFRESH_S = 2.0


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="a web page of the stack's queues, loops and jobs (live), with redrive and discard",
        description="Serve the dashboard on 127.0.0.1 until Ctrl-C; open the URL it prints (it carries the token).",
    )
    # The global --stack works too; SUPPRESS keeps this one from overwriting it when left out.
    parser.add_argument("--stack", default=argparse.SUPPRESS, metavar="NAME", help="the deployed stack")
    add_options(parser)
    parser.set_defaults(run=run_dashboard)


def add_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """--port, --host, --no-auth, --refresh-s (prefixed `dashboard-` where `local up` adds them)."""
    parser.add_argument(
        f"--{prefix}port",
        type=port_number,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"listen on port N (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        f"--{prefix}host",
        default=DEFAULT_HOST,
        metavar="ADDR",
        help=f"listen on ADDR (default {DEFAULT_HOST}: this machine only)",
    )
    parser.add_argument(
        f"--{prefix}no-auth",
        action="store_true",
        help="serve without the startup token: anyone who reaches the port may redrive and discard",
    )
    parser.add_argument(
        f"--{prefix}refresh-s",
        type=refresh_seconds,
        default=DEFAULT_REFRESH_S,
        metavar="S",
        help=f"live panels refresh every S seconds (default {DEFAULT_REFRESH_S:g})",
    )


def refresh_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.2 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0.2 to 3600, got {raw!r}")
    return value


def start_server(
    root: OpsRoot, *, host: str, port: int, auth: bool, refresh_s: float = DEFAULT_REFRESH_S
) -> DashboardServer:
    """The dashboard over `root`, started; ConfigError (one line) without the extra or when the port is taken."""
    try:
        from sqsloops.dashboard.server import DashboardServer
    except ImportError as exc:
        raise ConfigError(f"the dashboard needs its extra: pip install 'sqsloops[dashboard]' ({exc})") from None
    server = DashboardServer(root, host=host, port=port, auth=auth, refresh_s=refresh_s)
    try:
        return server.start()
    except OSError as exc:
        server.stop()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} is in use; pass another --port (0 picks a free one)") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_dashboard(context: Context, args: argparse.Namespace) -> int:
    root = context.root
    root.admin.list()  # no stack, no credentials, no table: one line and exit 1 now, not a page of errors later
    server = start_server(root, host=args.host, port=args.port, auth=not args.no_auth, refresh_s=args.refresh_s)
    try:
        stack = context.settings.stack_name or context.stack_name or "(from SQSLOOPS_*)"
        say(f"sqsloops dashboard for stack {stack}: open {server.url}")
        if args.no_auth:
            say("no token (--no-auth): anyone who can reach the port may redrive and discard")
        say("Ctrl-C stops it")
        sys.stdout.flush()
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
