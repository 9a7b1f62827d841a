"""`sqsloops jobs ...`: apply a module's jobs, enqueue by name, read status, and operate dead jobs and queues."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.jobs_entry import add_unroutable_command, run_redrive_unroutable
from sqsloops.cli.output import emit_json, say, table, warn
from sqsloops.errors import ConfigError
from sqsloops.jobs.catalog import CatalogReader
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.errors import JobNotFoundError
from sqsloops.jobs.states import JobState
from sqsloops.jobs.store import JobRecord
from sqsloops.ops.jobs_admin import JobsAdmin, Moved, parse_args_json
from sqsloops.ops.jobs_apply import JobsApply, Plan, import_jobs

DEFAULT_DRAIN_TIMEOUT_S = 600.0
LIST_COLUMNS = ("id", "state", "attempts", "updated", "last error")


def add_commands(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="define, enqueue and operate jobs (see 'sqsloops jobs --help')")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True, parser_class=type(jobs))

    apply = sub.add_parser("apply", help="create or update what a module's jobs need (prints the plan)")
    apply.add_argument("module", metavar="MODULE", help="the jobs module, e.g. app.jobs")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--prune", action="store_true", help="remove what jobs no longer in the module had")
    apply.add_argument("--force", action="store_true", help="delete queues even if they still hold messages")
    apply.add_argument("--app-dir", default=".", metavar="DIR", help="where MODULE imports from (default: .)")
    apply.set_defaults(run=run_apply)

    enqueue = sub.add_parser("enqueue", help="send a job by name")
    enqueue.add_argument("name", metavar="NAME")
    enqueue.add_argument("--args", default="[]", metavar="JSON", help="a JSON list (positional) or object (keywords)")
    when = enqueue.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="D", help="run after this long (10s, 10m, 2h)")
    when.add_argument("--at", metavar="ISO", help="run at this time (ISO 8601 with a zone, e.g. 2026-01-01T09:00Z)")
    enqueue.add_argument("--key", metavar="K", help="a unique job's key (default: from its key template)")
    enqueue.add_argument("--id", dest="job_id", metavar="ID", help="the job's id (default: a new one)")
    enqueue.set_defaults(run=run_enqueue)

    status = sub.add_parser("status", help="one job's state, attempts, times, last error and result")
    status.add_argument("job_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=run_status)

    listing = sub.add_parser("list", help="a job type's jobs, newest change first (by the state index)")
    listing.add_argument("name", metavar="NAME")
    listing.add_argument("--state", choices=[s.value for s in JobState], help="only jobs in this state")
    listing.add_argument("--limit", type=int, default=50, metavar="N")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    dead = sub.add_parser("dead", help="a job type's dead jobs: id, attempts, last error")
    dead.add_argument("name", metavar="NAME")
    dead.add_argument("--limit", type=int, default=50, metavar="N")
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.set_defaults(run=run_dead)

    for command, text, handler in (
        ("redrive", "move dead jobs back to their queue, attempts reset", run_redrive),
        ("discard", "delete dead jobs from the dead-letter queue", run_discard),
    ):
        parser = sub.add_parser(command, help=text)
        parser.add_argument("name", metavar="NAME", nargs="?" if command == "redrive" else None)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", dest="ids", action="append", metavar="ID", help="this job (repeatable)")
        which.add_argument("--all", action="store_true", help="every dead job of NAME")
        if command == "redrive":
            which.add_argument(
                "--unroutable", action="store_true", help="re-publish Unroutable messages whose job now exists"
            )
        parser.set_defaults(run=handler)
    add_unroutable_command(sub)

    for command, text, handler in (
        ("pause", "keep accepting NAME's jobs but run none (its registration disabled)", run_pause),
        ("resume", "run NAME's jobs again", run_resume),
    ):
        parser = sub.add_parser(command, help=text)
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(run=handler)

    drain = sub.add_parser("drain", help="wait until NAME's queue is empty")
    drain.add_argument("name", metavar="NAME")
    drain.add_argument("--timeout-s", type=float, default=DEFAULT_DRAIN_TIMEOUT_S, metavar="S")
    drain.set_defaults(run=run_drain)


# --- apply -------------------------------------------------------------------------------------------------------


def run_apply(context: Context, args: argparse.Namespace) -> int:
    _, jobs = import_jobs(args.module, app_dir=args.app_dir)
    applier = JobsApply.for_root(context.root)
    plan = applier.plan(args.module, jobs, prune=args.prune, force=args.force)
    print_plan(plan, dry_run=args.dry_run)
    if args.dry_run or not plan.changes:
        return 0
    applier.apply(plan)
    for text in plan.warnings:
        warn(text)
    say(f"applied {len(plan.changes)} change(s)")
    return 0


def print_plan(plan: Plan, *, dry_run: bool) -> None:
    title = f"jobs apply {plan.module}" + (" (dry run: nothing changed)" if dry_run else "")
    table(title, ("action", "kind", "resource", "detail"), plan.rows())
    counts = plan.counts()
    say(", ".join(f"{counts[action]} {action}" for action in sorted(counts)))
    if dry_run:
        for text in plan.warnings:
            warn(text)
    for step in plan.blocked:
        warn(f"{step.name}: {step.detail}")


# --- enqueue and status --------------------------------------------------------------------------------------------


def job_client(context: Context, *, declared_in: str | None = None) -> JobClient:
    """A JobClient over the catalog; with the jobs of `declared_in` when that module imports from here, so their
    arguments are checked against their signatures before anything is sent."""
    settings = context.settings
    jobs: dict[str, Any] = {}
    if declared_in:
        try:
            _, jobs = import_jobs(declared_in)
        except ConfigError:
            jobs = {}  # not importable here: the catalog alone shapes the message
    store = context.root.job_store
    if store is None:
        raise ConfigError("the stack has no Jobs table: set SQSLOOPS_JOBS_TABLE (or pass --stack NAME)")
    return JobClient(
        sqs=context.root.sqs,
        scheduler=context.root.clients.scheduler,
        store=store,
        schedule_group=settings.schedule_group,
        scheduler_role_arn=settings.scheduler_role_arn,
        schedule_dlq_arn=settings.schedule_dlq_arn or None,
        catalog=CatalogReader(dynamodb=context.root.clients.dynamodb, table_name=settings.jobs_table, ttl_s=0),
        jobs=jobs.values(),
        clock=context.root.clock,
    )


def _at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-01-01T09:00:00Z)") from None
    if moment.tzinfo is None:
        raise ConfigError(f"--at {text!r} has no time zone: add Z or an offset such as +01:00")
    return moment


def run_enqueue(context: Context, args: argparse.Namespace) -> int:
    positional, keywords = parse_args_json(args.args)
    run_at = _at(args.at) if args.at is not None else None
    entry = JobsAdmin.for_root(context.root).entry(args.name)  # UnknownJobError before anything else
    client = job_client(context, declared_in=entry.module)
    handle = client.enqueue(
        args.name, positional, keywords, delay=args.delay, run_at=run_at, key=args.key, id=args.job_id
    )
    say(f"{'duplicate of' if handle.duplicate else 'enqueued'} {handle.job} {handle.id}")
    return 0


def _record(record: JobRecord) -> dict[str, Any]:
    data = asdict(record)
    data["state"] = record.state.value
    return {key: value for key, value in data.items() if value not in (None, "")}


def run_status(context: Context, args: argparse.Namespace) -> int:
    record = job_client(context).store_get(args.job_id)
    if record is None:
        raise JobNotFoundError(args.job_id)
    data = _record(record)
    if args.json:
        emit_json(data)
        return 0
    for key, value in data.items():
        say(f"{key:>16}  {_when(key, value)}")
    return 0


def _when(key: str, value: Any) -> Any:
    if key.endswith("_at") and isinstance(value, int | float) and key != "expires_at":
        return datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")
    return value


def _rows(records: list[JobRecord]) -> list[tuple[object, ...]]:
    return [
        (r.id, r.state.value, r.attempts, _when("updated_at", r.updated_at), (r.last_error or "")[:80]) for r in records
    ]


def _listing(context: Context, name: str, state: JobState | None, limit: int) -> list[JobRecord]:
    if not 1 <= limit <= 1000:
        raise ConfigError(f"--limit must be between 1 and 1000, got {limit}")
    admin = JobsAdmin.for_root(context.root)
    admin.entry(name)  # UnknownJobError for a name apply never declared
    records, _ = admin.store.list(name, state=state, limit=limit)
    return records


def run_list(context: Context, args: argparse.Namespace) -> int:
    state = JobState(args.state) if args.state else None
    records = _listing(context, args.name, state, args.limit)
    if args.json:
        emit_json([_record(r) for r in records])
    else:
        table(f"jobs {args.name}" + (f" ({args.state})" if args.state else ""), LIST_COLUMNS, _rows(records))
    return 0


def run_dead(context: Context, args: argparse.Namespace) -> int:
    records = _listing(context, args.name, JobState.DEAD, args.limit)
    if args.json:
        emit_json([_record(r) for r in records])
        return 0
    depth = JobsAdmin.for_root(context.root).depth_of_dlq(args.name)
    table(f"dead jobs {args.name} ({depth} in the dead-letter queue)", LIST_COLUMNS, _rows(records))
    return 0


# --- dead jobs and queues ------------------------------------------------------------------------------------------


def _report(verb: str, moved: Moved) -> int:
    say(f"{verb} {len(moved.done)} job(s)" + (f": {', '.join(moved.done)}" if moved.done else ""))
    for job_id, why in sorted(moved.failed.items()):
        warn(f"{job_id}: {why}")
    if moved.unreadable:
        warn(f"{moved.unreadable} message(s) in the dead-letter queue are not job envelopes: left there")
    return 1 if moved.failed else 0


def run_redrive(context: Context, args: argparse.Namespace) -> int:
    if args.unroutable:
        return run_redrive_unroutable(context, args)
    if not args.name:
        raise ConfigError("jobs redrive: give NAME (or --unroutable)")
    moved = JobsAdmin.for_root(context.root).redrive(args.name, ids=None if args.all else args.ids)
    return _report("redrove", moved)


def run_discard(context: Context, args: argparse.Namespace) -> int:
    moved = JobsAdmin.for_root(context.root).discard(args.name, ids=None if args.all else args.ids)
    return _report("discarded", moved)


def run_pause(context: Context, args: argparse.Namespace) -> int:
    JobsAdmin.for_root(context.root).pause(args.name)
    say(f"paused {args.name}: its jobs are accepted and kept, none runs (resume with 'sqsloops jobs resume')")
    return 0


def run_resume(context: Context, args: argparse.Namespace) -> int:
    JobsAdmin.for_root(context.root).resume(args.name)
    say(f"resumed {args.name}")
    return 0


def run_drain(context: Context, args: argparse.Namespace) -> int:
    if args.timeout_s <= 0:
        raise ConfigError(f"--timeout-s must be positive, got {args.timeout_s:g}")
    depth = JobsAdmin.for_root(context.root).drain(args.name, timeout_s=args.timeout_s)
    left = depth.visible + depth.in_flight + depth.delayed
    if left:
        raise ConfigError(
            f"{args.name} did not drain in {args.timeout_s:g} s: {depth.visible} visible, {depth.in_flight} in"
            f" flight, {depth.delayed} delayed"
        )
    say(f"{args.name} is drained")
    return 0
