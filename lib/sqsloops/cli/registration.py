"""Commands that manage registrations: register, update, deregister, list, scale, status."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from sqsloops.cli.context import Context
from sqsloops.cli.output import emit_json, say, table, warn
from sqsloops.errors import ConfigError
from sqsloops.ops.registration import QueueStatus, Registered, default_visibility_timeout_s
from sqsloops.queues import QueueRef
from sqsloops.registry import QueueConfig

# (flag, QueueConfig field, type, help): the options register and update share. Unset options stay unset.
CONFIG_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--min", "min_loops", int, "loops that always run (0: none while the queue is idle)"),
    ("--max", "max_loops", int, "most loops at once (caps concurrency)"),
    ("--backlog-per-loop", "backlog_per_loop", int, "visible messages per loop: the scaling target"),
    (
        "--batch-size",
        "batch_size",
        int,
        "messages per batch (1-10; up to 10000 with --batch-window-s on a standard queue, for lambda: and python "
        "batch handlers)",
    ),
    (
        "--batch-window-s",
        "batch_window_s",
        int,
        "after a partial receive, keep gathering for up to this many seconds (0-300; 0: dispatch each receive)",
    ),
    ("--wait-s", "wait_s", int, "long-poll wait (0-20 s)"),
    ("--visibility-timeout-s", "visibility_timeout_s", int, "visibility timeout of received messages"),
    ("--backoff-base-s", "backoff_base_s", float, "first retry delay of a failed message"),
    ("--backoff-max-s", "backoff_max_s", float, "longest retry delay of a failed message"),
    ("--rate-per-s", "rate_per_s", float, "messages per second across all loops"),
)
CONFIG_FIELDS = ("handler", "handler_mode", "enabled", *(field for _, field, _, _ in CONFIG_OPTIONS))


def add_commands(commands: Any) -> None:
    register = commands.add_parser("register", help="map a queue to a handler, create its alarms, start its loops")
    register.add_argument("queue_url", metavar="QUEUE_URL")
    register.add_argument("--handler", required=True, help="lambda:NAME_OR_ARN or python:package.module:function")
    register.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="do not check that the handler can work (lambda: exists and the stack may invoke it; python: imports "
        "in the process function)",
    )
    _add_config_options(register)
    register.set_defaults(run=run_register)

    update = commands.add_parser("update", help="change a registration (only the options given)")
    update.add_argument("queue_url", metavar="QUEUE_URL")
    update.add_argument("--handler", default=argparse.SUPPRESS, help="lambda:NAME_OR_ARN or python:module:function")
    _add_config_options(update, updating=True)
    update.set_defaults(run=run_update)

    deregister = commands.add_parser("deregister", help="stop a queue's loops, delete its alarms and registration")
    deregister.add_argument("queue_url", metavar="QUEUE_URL")
    deregister.set_defaults(run=run_deregister)

    listing = commands.add_parser("list", help="the registered queues")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    scale = commands.add_parser("scale", help="set a queue's loop count now, within its [min, max]")
    scale.add_argument("queue_url", metavar="QUEUE_URL")
    scale.add_argument("loops", metavar="N", type=int)
    scale.set_defaults(run=run_scale)

    status = commands.add_parser("status", help="depth, dead letters, loops and counters per queue")
    status.add_argument("queue_url", metavar="QUEUE_URL", nargs="?")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=run_status)


def _add_config_options(parser: argparse.ArgumentParser, *, updating: bool = False) -> None:
    for flag, field, kind, text in CONFIG_OPTIONS:
        metavar = "N" if kind is int else "X"
        parser.add_argument(flag, dest=field, type=kind, metavar=metavar, default=argparse.SUPPRESS, help=text)
    parser.add_argument(
        "--handler-mode",
        choices=("message", "batch"),
        default=argparse.SUPPRESS,
        help="python: handlers: call per message or per batch",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--disabled",
        dest="enabled",
        action="store_const",
        const=False,
        default=argparse.SUPPRESS,
        help="registered but idle: no loops, no alarms",
    )
    if updating:
        state.add_argument(
            "--enabled",
            dest="enabled",
            action="store_const",
            const=True,
            default=argparse.SUPPRESS,
            help="resume a disabled registration",
        )
        parser.add_argument(
            "--no-rate-limit",
            dest="rate_per_s",
            action="store_const",
            const=None,
            default=argparse.SUPPRESS,
            help="remove the --rate-per-s limit",
        )


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The QueueConfig fields the command line set, and only those."""
    return {name: getattr(args, name) for name in CONFIG_FIELDS if hasattr(args, name)}


def run_register(context: Context, args: argparse.Namespace) -> int:
    # Defaults that fit the stack: on a time-compressed one the usual visibility timeout would outlast stale_after_s.
    fitting = {"visibility_timeout_s": default_visibility_timeout_s(context.settings)}
    config = QueueConfig(queue_url=args.queue_url, **{**fitting, **config_changes(args)})
    result = context.registrations.register(config, check=args.check)
    _report("registered", result)
    return 0


def run_update(context: Context, args: argparse.Namespace) -> int:
    result = context.registrations.update(args.queue_url, **config_changes(args))
    _report(f"updated (version {result.config.version})", result)
    return 0


def _report(what: str, result: Registered) -> None:
    config, change = result.config, result.change
    for message in result.warnings:
        warn(message)
    state = "" if config.enabled else ", disabled"
    say(
        f"{what} {_name(config.queue_url)}: handler {config.handler}, loops {change.after} "
        f"(min {config.min_loops}, max {config.max_loops}{state}), alarms {len(result.alarms)}"
    )
    if change.start_failures:
        warn(f"{change.start_failures} loop(s) could not be started now; the restart sweep starts them")


def run_deregister(context: Context, args: argparse.Namespace) -> int:
    result = context.registrations.deregister(args.queue_url)
    say(
        f"deregistered {_name(result.queue_url)}: stopped {result.tokens_retired} loop(s), "
        f"deleted {len(result.alarms_deleted)} alarm(s)"
    )
    return 0


def run_scale(context: Context, args: argparse.Namespace) -> int:
    change = context.registrations.scale(args.queue_url, args.loops)
    say(f"scaled {_name(change.queue_url)}: {change.before} -> {change.after} loop(s)")
    if change.start_failures:
        warn(f"{change.start_failures} loop(s) could not be started now; the restart sweep starts them")
    return 0


def run_list(context: Context, args: argparse.Namespace) -> int:
    configs = context.registrations.list()
    if args.json:
        emit_json([{k: v for k, v in asdict(c).items() if k != "extra"} for c in configs])
        return 0
    if not configs:
        say("no queues registered")
        return 0
    table(
        "registered queues",
        ("queue", "handler", "min", "max", "backlog/loop", "batch", "enabled"),
        [
            (c.queue_url, c.handler, c.min_loops, c.max_loops, c.backlog_per_loop, c.batch_size, _yes(c.enabled))
            for c in configs
        ],
    )
    return 0


def run_status(context: Context, args: argparse.Namespace) -> int:
    statuses = context.registrations.status(args.queue_url)
    if args.json:
        emit_json([s.to_dict() for s in statuses])
        return 0
    if not statuses:
        say("no queues registered")
        return 0
    table(
        "queues",
        ("queue", "visible", "in flight", "delayed", "dead", "running", "stale", "desired", "processed", "failed"),
        [_status_row(s) for s in statuses],
    )
    for status in statuses:
        if status.error:
            warn(status.error)
    return 0


def _status_row(s: QueueStatus) -> tuple[object, ...]:
    depth, dlq = s.depth, s.dlq_depth
    state = " (broken)" if s.broken is not None else "" if s.config.enabled else " (disabled)"
    return (
        _name(s.queue_url) + state,
        depth.visible if depth else "?",
        depth.in_flight if depth else "?",
        depth.delayed if depth else "?",
        dlq.visible if dlq else "-",
        s.loops.running,
        s.loops.stale,
        "?" if s.loops.desired is None else s.loops.desired,
        s.counters.processed,
        s.counters.failed,
    )


def _name(queue_url: str) -> str:
    try:
        return QueueRef.parse(queue_url).name
    except ConfigError:
        return queue_url


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
