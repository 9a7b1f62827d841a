"""`sqsloops local up`: the stack on an embedded AWS in this terminal, for boto3 and the CLI of another terminal.

stdout carries only shell lines (comments and `export ...`), so `sqsloops local up > local.env &` followed by
`. ./local.env` works as well as copying them by hand; the functions' logs go to stderr. Ctrl-C or SIGTERM stops
everything (workers included) and exits 0. sqsloops.local is imported when the command runs: it needs the
`local` extra.
"""

from __future__ import annotations

import argparse
import errno
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import sqsloops
from sqsloops.cli.context import Context
from sqsloops.cli.output import say
from sqsloops.errors import ConfigError
from sqsloops.ops.demo import MAX_TIME_SCALE, embedded_parameters

if TYPE_CHECKING:
    from sqsloops.dashboard.server import DashboardServer
    from sqsloops.local.server import EmbeddedAws

DEFAULT_STACK = "sqsloops"
TEMPLATE_NAME = "template.yaml"
MAX_PORT = 65535
JOBS_API = "JobsHttpApi"  # template.yaml's HttpApi
JOBS_API_URL_ENV = "SQSLOOPS_JOBS_API_URL"


def add_commands(commands: Any) -> None:
    local = commands.add_parser("local", help="the stack on an embedded AWS on this machine (no account, no Docker)")
    actions = local.add_subparsers(dest="local_command", metavar="ACTION", required=True, parser_class=type(local))
    up = actions.add_parser("up", help="serve the embedded AWS with the stack deployed until Ctrl-C")
    up.add_argument("--port", type=port_number, default=0, metavar="N", help="listen on 127.0.0.1:N (default: free)")
    up.add_argument(
        "--time-scale",
        type=time_scale,
        default=1.0,
        metavar="K",
        help="compress time K-fold: alarm periods, schedules, timeouts, heartbeats (default 1: real time)",
    )
    # The global --stack works too; SUPPRESS keeps this one from overwriting it when left out.
    up.add_argument("--stack", default=argparse.SUPPRESS, metavar="NAME", help=f"stack name (default {DEFAULT_STACK})")
    up.add_argument("--template", type=Path, metavar="PATH", help="the SAM template (default: the repository's)")
    up.add_argument("--quiet", action="store_true", help="do not stream the functions' logs")
    up.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="inject faults into what the functions do, e.g. ddb-throttle=0.2,ddb-storm=5s/30s,invoke-fail=0.05,"
        "invoke-outage=10s/60s,invoke-drop=0.05,kill=every:30s (durations in stack time; see sqsloops.local.faults)",
    )
    up.add_argument("--dashboard", action="store_true", help="also serve the web dashboard (the `dashboard` extra)")
    from sqsloops.cli.dashboard import add_options  # not at module level: cli.dashboard imports this module

    add_options(up, prefix="dashboard-")
    up.set_defaults(run=run_up)


def port_number(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be a port number 0-{MAX_PORT} (0: any free port), got {raw!r}")
    return value


def time_scale(raw: str) -> float:
    """1 (real time) up to MAX_TIME_SCALE: past it the 1 s minimum heartbeat no longer fits the compressed timings."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 1 <= value <= MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(f"must be a number from 1 (real time) to {MAX_TIME_SCALE:g}, got {raw!r}")
    return value


def find_template(explicit: Path | None = None) -> Path:
    """--template, else the repository's template.yaml (beside lib/), else ./template.yaml; ConfigError if none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"template not found: {explicit}")
        return explicit
    repository = Path(sqsloops.__file__).resolve().parents[2] / TEMPLATE_NAME
    for candidate in (repository, Path.cwd() / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{TEMPLATE_NAME} not found next to the sqsloops package or here: pass --template PATH")


def shell_lines(env: dict[str, str]) -> list[str]:
    """`export NAME=VALUE` lines another shell can paste or source."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def api_lines(urls: dict[str, str]) -> list[str]:
    """The stack's HTTP API (SigV4-verified like AWS_IAM routes on AWS) as a comment and an export per API."""
    lines: list[str] = []
    for api_id, url in sorted(urls.items()):
        lines.append(f'# HTTP API {api_id} (SigV4 signed: curl --aws-sigv4 "aws:amz:us-east-1:execute-api" ...):')
        variable = JOBS_API_URL_ENV if api_id == JOBS_API else f"SQSLOOPS_{api_id.upper()}_URL"
        lines.extend(shell_lines({variable: url}))
    return lines


def run_up(context: Context, args: argparse.Namespace) -> int:
    stack = args.stack or DEFAULT_STACK
    template = find_template(args.template)
    from sqsloops.local.faults import Faults  # standard library only: a bad spec is one line, before anything starts

    faults = Faults.parse(args.faults)
    from sqsloops.local.server import EmbeddedAws  # the `local` extra, imported once the arguments are known good

    echo: Callable[[str], None] = _discard if args.quiet else _to_stderr
    aws = EmbeddedAws(
        template=template,
        stack_name=stack,
        time_scale=args.time_scale,
        parameters=embedded_parameters(args.time_scale),
        port=args.port,
        echo=echo,
        faults=faults,
    )
    stop = threading.Event()
    dashboard: DashboardServer | None = None
    with _stop_on_sigterm(stop):
        try:
            _start(aws, port=args.port)
            settings = aws.settings
            say(f"# sqsloops: stack {stack} on the embedded AWS at {aws.endpoint} (time x{args.time_scale:g})")
            real_period_s = settings.alarm_period_s / args.time_scale
            say(f"# process function {settings.process_function}, alarm period {real_period_s:g} s (real time)")
            if faults.any:
                say(f"# faults injected into the functions' calls: {faults}")
            say("# in another shell, for boto3, the AWS CLI and sqsloops register/status/watch:")
            for line in shell_lines(aws.env()):
                say(line)
            for line in api_lines(aws.api_urls):
                say(line)
            if args.dashboard:
                dashboard = _start_dashboard(aws, args)
                say(f"# dashboard: open {dashboard.url}")
            say("# Ctrl-C (or SIGTERM) stops it")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if dashboard is not None:
                dashboard.stop()
            aws.stop()
    print("sqsloops: embedded AWS stopped", file=sys.stderr)
    return 0


def _start_dashboard(aws: EmbeddedAws, args: argparse.Namespace) -> DashboardServer:
    """The dashboard over the embedded stack, in this process (its clients point at the embedded endpoint)."""
    from sqsloops.cli.dashboard import start_server

    return start_server(
        aws.root(),
        host=args.dashboard_host,
        port=args.dashboard_port,
        auth=not args.dashboard_no_auth,
        refresh_s=args.dashboard_refresh_s,
    )


def _start(aws: EmbeddedAws, *, port: int) -> None:
    """Start the embedded AWS; a port someone else holds is a one-line ConfigError, not a traceback."""
    try:
        aws.start()
    except OSError as exc:
        if port and _address_in_use(exc):
            raise ConfigError(f"port {port} is in use; pass another --port (0 picks a free one)") from exc
        raise


def _address_in_use(exc: BaseException | None) -> bool:
    """EADDRINUSE on the error or on what caused it (the embedded AWS re-raises the bind error with its address)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return True
        exc = exc.__cause__
    return False


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets `stop` (a clean shutdown, like Ctrl-C) while the block runs; the old handler comes back after."""

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _discard(_line: str) -> None:
    return None
