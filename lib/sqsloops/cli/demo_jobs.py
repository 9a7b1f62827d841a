"""`sqsloops demo jobs` (what `make demo-jobs` runs): the example app's jobs on an embedded AWS, each one checked.

The run itself is sqsloops.ops.demo_jobs; this module starts the embedded AWS with compressed time (x60 by default:
the delayed job's hour lasts a minute, the minutely cron ticks every second), prints the table of expected vs
observed job by job, and exits 1 with the reasons if any row differs. The functions' logs go to a file in --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.demo import EXIT_FAILED, EXIT_OK, LOG_NAME, LogSink, bounded_float, bounded_int, interrupt_on_sigterm
from sqsloops.cli.local import find_template, time_scale
from sqsloops.cli.output import error, say, table
from sqsloops.ops.demo import embedded_parameters
from sqsloops.ops.demo_jobs import DEFAULT_DEADLINE_S, DEFAULT_TIME_SCALE, JobsDemo, JobsDemoOptions, JobsDemoResult

DEFAULT_STACK = "sqsloops-demo-jobs"
DEFAULT_OUT = Path("out") / "demo-jobs"
DEFAULTS = JobsDemoOptions()


def add_command(scenarios: Any) -> None:
    parser = scenarios.add_parser(
        "jobs",
        help="the example app's jobs (app/jobs.py) on an embedded AWS: delayed, cron, unique, retries, limits",
    )
    parser.add_argument(
        "--time-scale",
        type=time_scale,
        default=DEFAULT_TIME_SCALE,
        metavar="K",
        help=f"compress time K-fold (default {DEFAULT_TIME_SCALE:g}: the delayed job's hour lasts a minute)",
    )
    parser.add_argument(
        "--burst",
        type=bounded_int(2, 200),
        default=DEFAULTS.burst,
        metavar="N",
        help=f"concurrency=1 jobs sent at once (default {DEFAULTS.burst})",
    )
    parser.add_argument(
        "--rate-jobs",
        type=bounded_int(10, 1000),
        default=DEFAULTS.rate_jobs,
        metavar="N",
        help=f"rate-limited jobs sent at once (default {DEFAULTS.rate_jobs})",
    )
    parser.add_argument(
        "--deadline-s",
        type=bounded_float(1.0, 3600.0),
        default=DEFAULT_DEADLINE_S,
        metavar="S",
        help=f"give up (exit 1) on what has not happened after S seconds (default {DEFAULT_DEADLINE_S:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where the functions' log goes (default {DEFAULT_OUT})",
    )
    parser.add_argument("--template", type=Path, metavar="PATH", help="the SAM template (default: the repository's)")
    parser.set_defaults(run=run_jobs_demo)


def run_jobs_demo(context: Context, args: argparse.Namespace) -> int:
    started = time.monotonic()
    template = find_template(args.template)
    from sqsloops.local.server import EmbeddedAws  # the `local` extra, imported once the arguments are known good

    stack = context.stack_name or DEFAULT_STACK
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    options = JobsDemoOptions(
        burst=args.burst, rate_jobs=args.rate_jobs, deadline_s=args.deadline_s, app_dir=template.resolve().parent
    )
    log_path = out / LOG_NAME
    with log_path.open("w", encoding="utf-8") as log, interrupt_on_sigterm():
        say(f"sqsloops demo jobs: starting the embedded AWS (time x{args.time_scale:g}) ...")
        with EmbeddedAws(
            template=template,
            stack_name=stack,
            time_scale=args.time_scale,
            parameters=embedded_parameters(args.time_scale),
            echo=LogSink(log),
        ) as aws:
            say(f"stack {stack} deployed on {aws.endpoint} in {time.monotonic() - started:.1f} s; logs: {log_path}")
            say("applying app.jobs, then enqueuing every kind of job at once ...")
            result = JobsDemo(aws, options).run()
    print_result(result, wall_s=time.monotonic() - started, log_path=log_path)
    failure = result.failure
    if failure:
        error(f"demo jobs failed: {failure}")
        return EXIT_FAILED
    say(f"demo jobs ok: all {len(result.checks)} checks as expected")
    return EXIT_OK


def print_result(result: JobsDemoResult, *, wall_s: float, log_path: Path) -> None:
    """The table, job by job, then one `check JOB: ok|FAILED: observed` line each for grep."""
    rows = [(c.job, c.expected, c.observed, "ok" if c.ok else "FAILED") for c in result.checks]
    table(f"sqsloops demo jobs (time x{result.time_scale:g})", ("job", "expected", "observed", ""), rows)
    for check in result.checks:
        say(f"check {check.job}: {'ok' if check.ok else 'FAILED'}: {check.observed}")
    say(f"checks run in {result.run_s:.1f} s; wall {wall_s:.1f} s; function logs: {log_path}")
