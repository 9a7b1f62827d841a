"""`sqsloops jobs unroutable` and `jobs redrive --unroutable`: the entry topic's messages that no job took."""

from __future__ import annotations

import argparse
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.output import emit_json, say, table, warn
from sqsloops.clock import SYSTEM_CLOCK
from sqsloops.errors import ConfigError
from sqsloops.ops.jobs_entry import EntryRoutes

UNROUTABLE_COLUMNS = ("message id", "job", "age", "body")


def add_unroutable_command(sub: Any) -> None:
    listing = sub.add_parser("unroutable", help="list entry-topic messages no job matched (the Unroutable queue)")
    listing.add_argument("--limit", type=int, default=100, metavar="N")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_unroutable)


def _routes(context: Context) -> EntryRoutes:
    root = context.root
    return EntryRoutes(settings=root.settings, sns=root.clients.sns, sqs=root.clients.sqs)


def run_unroutable(context: Context, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    now = getattr(context.root, "clock", SYSTEM_CLOCK).now()
    found = _routes(context).unroutable(now=now, limit=args.limit)
    if args.json:
        emit_json([item.__dict__ for item in found])
        return 0
    rows = [
        (item.message_id, item.job or "(no job attribute)", f"{item.age_s:.0f} s", item.body_head) for item in found
    ]
    table(f"unroutable ({len(found)})", UNROUTABLE_COLUMNS, rows)
    return 0


def run_redrive_unroutable(context: Context, args: argparse.Namespace) -> int:
    if args.name:
        raise ConfigError(
            f"jobs redrive --unroutable re-routes every Unroutable message by its own job attribute: drop {args.name!r}"
            f" (or use 'jobs redrive {args.name} --all' for its dead jobs)"
        )
    root = context.root
    if not root.settings.jobs_table:
        raise ConfigError("the stack has no Jobs table: set SQSLOOPS_JOBS_TABLE (or pass --stack NAME)")
    done = _routes(context).redrive_unroutable(dynamodb=root.clients.dynamodb, jobs_table=root.settings.jobs_table)
    say(f"re-published {len(done.published)} message(s) to the entry topic")
    for message_id, why in sorted(done.left.items()):
        warn(f"{message_id}: left in Unroutable: {why}")
    for message_id, why in sorted(done.failed.items()):
        warn(f"{message_id}: {why}")
    return 1 if done.failed else 0
