"""Recovery: kill k of n running loops (their execution environments) and see them come back, losing nothing.

    .venv/bin/python -m bench.recovery [--loops 4] [--kill 2] [--repeat 3] [--time-scale 10]

A queue is registered with min = max = n loops and a `lambda:` handler (bench/functions/recorder.py) that spends
--work-ms per message and records each messageId it handled. A producer sends --rate messages/s throughout.
Each repetition SIGKILLs the worker subprocesses of k busy loops (the process function's execution environments
that used CPU in the last second) and times how long until every slot has heartbeated since the kill: a killed
loop comes back through the process function's OnFailure destination (the restart function revives it at once)
or, failing that, the restart sweep after stale_after_s; "taken over" counts the slots that got a new loop_id.
At the end the producer stops and the queue drains; every message sent must have been handled at least once.

Reported: time until all are back (median of the repetitions; target: stale_after_s plus one sweep), messages
lost (target: 0) and duplicates (handled more than once: the killed loops' in-flight batches come back after
their visibility timeout; moto itself occasionally delivers a message twice to concurrent receivers).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.common import LogTap

STACK = "bench-rc"
FUNCTIONS = Path(__file__).resolve().parent / "functions"


@dataclass
class Kill:
    killed: int  # worker processes killed
    stalled: int  # tokens taken over (a new loop_id) after the kill
    back_s: float | None  # until every slot had heartbeated since the kill


@dataclass
class Outcome:
    kills: list[Kill] = field(default_factory=list)
    sent: int = 0
    handled: int = 0  # receipts, duplicates included
    unique: int = 0
    lost: int = 0
    left_in_queue: int = 0
    in_dlq: int = 0
    error: str | None = None

    @property
    def duplicates(self) -> int:
        return self.handled - self.unique


class Producer(threading.Thread):
    """Sends `rate` messages per second, in tens, until stopped; keeps every MessageId."""

    def __init__(self, sqs: Any, queue_url: str, rate: float) -> None:
        super().__init__(name="producer", daemon=True)
        self._sqs, self._queue_url, self._interval_s = sqs, queue_url, 10.0 / rate
        self._stop_event = threading.Event()
        self.ids: list[str] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            self.ids += common.send_all(self._sqs, self._queue_url, common.bodies(10))
            next_at += self._interval_s
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# ---------------------------------------------------------------- one run


class Recovery:
    def __init__(self, aws: Any, *, receipts: Path, work_ms: float) -> None:
        self.aws = aws
        self.receipts = receipts
        self.regs = common.registrations(aws)
        self.sqs = aws.client("sqs")
        self.stale_after_s = float(aws.settings.stale_after_s)
        self.heartbeat_s = float(aws.settings.heartbeat_s)
        self.sweep_s = common.sweep_interval_s(aws)
        self.recorder = common.deploy_function(
            aws,
            name=f"{aws.stack_name}-handler-recorder",  # within the stack's default handler scope
            source=FUNCTIONS / "recorder.py",
            app_id="bench-recorder",
            timeout_s=60,
            environment={"RECEIPTS_FILE": str(receipts), "WORK_S": str(work_ms / 1000)},
        )

    def run(self, *, loops: int, kill: int, repeat: int, rate: float) -> Outcome:
        from sqsloops.registry import QueueConfig

        outcome = Outcome()
        visibility_s = common.visibility_timeout_s(self.aws.time_scale)
        queue_url = common.make_queue(self.sqs, common.unique_name("rc"), visibility_timeout_s=visibility_s)
        config = QueueConfig(
            queue_url=queue_url,
            handler=f"lambda:{self.recorder}",
            min_loops=loops,
            max_loops=loops,
            visibility_timeout_s=visibility_s,
        )
        self.regs.register(config)
        running = common.wait_until(
            lambda: common.running_loops(self.regs.tokens.list(queue_url)) >= loops, timeout_s=120, interval_s=0.2
        )
        if not running:
            outcome.error = f"{loops} loops did not start"
            return outcome
        producer = Producer(common.tagged_client(self.aws, "sqs", common.PRODUCER_APP_ID), queue_url, rate)
        producer.start()
        try:
            time.sleep(2 * self.heartbeat_s)  # the loops are busy
            for rep in range(repeat):
                print(f"  kill {kill} of {loops} loops, round {rep + 1} ...", end="", flush=True)
                result = self._kill_and_wait(queue_url, kill)
                outcome.kills.append(result)
                shown = f"{result.back_s:.1f} s" if result.back_s is not None else "not back"
                print(f" {result.killed} killed, {result.stalled} taken over, all back after {shown}", flush=True)
                time.sleep(2 * self.heartbeat_s)
        finally:
            producer.stop()
        drained = common.wait_until(
            lambda: common.depth(self.sqs, queue_url) == 0, timeout_s=10 * visibility_s + 120, interval_s=0.2
        )
        self._count(outcome, producer.ids, queue_url)
        if not drained:
            outcome.error = "the queue did not drain"
        self.regs.deregister(queue_url)
        return outcome

    def _kill_and_wait(self, queue_url: str, count: int) -> Kill:
        """Kill `count` busy loops; back = every slot has heartbeated since the kill (a killed loop can only do that
        through a new invocation: the OnFailure destination's revive, or the sweep). Stalled = slots whose loop_id
        changed, i.e. that were taken over, however fast."""
        before = {t.slot: t for t in self.regs.tokens.list(queue_url)}
        pids = common.busiest(common.lambda_workers(self.aws.settings.process_function), count)
        killed_at = time.time()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        def all_back() -> bool:
            tokens = {t.slot: t for t in self.regs.tokens.list(queue_url)}
            return all(slot in tokens and tokens[slot].last_used > killed_at for slot in before)

        limit_s = 3 * (self.stale_after_s + self.sweep_s) + 30
        back = common.wait_until(all_back, timeout_s=limit_s, interval_s=0.1)
        back_s = time.time() - killed_at if back and pids else None
        now = {t.slot: t for t in self.regs.tokens.list(queue_url)}
        stalled = [slot for slot, t in now.items() if slot in before and t.loop_id != before[slot].loop_id]
        return Kill(killed=len(pids), stalled=len(stalled), back_s=back_s)

    def _count(self, outcome: Outcome, sent_ids: list[str], queue_url: str) -> None:
        handled = self.receipts.read_text().split() if self.receipts.exists() else []
        counts = Counter(handled)
        sent = set(sent_ids)
        outcome.sent = len(sent)
        outcome.handled = sum(counts[i] for i in sent)
        outcome.unique = len(sent & counts.keys())
        outcome.lost = len(sent - counts.keys())
        outcome.left_in_queue = common.depth(self.sqs, queue_url)
        outcome.in_dlq = common.depth(self.sqs, f"{queue_url}-dlq")  # make_queue's naming


# ---------------------------------------------------------------- report


def report(outcome: Outcome, *, loops: int, kill: int, stale_after_s: float, sweep_s: float, scale: float) -> str:
    target_s = stale_after_s + sweep_s
    backs = [k.back_s for k in outcome.kills if k.back_s is not None]
    back_s = common.median(backs) if backs and len(backs) == len(outcome.kills) else None
    rounds = ", ".join(f"{k.back_s:.1f}" if k.back_s is not None else "never" for k in outcome.kills)
    rows: list[list[object]] = [
        ["loops killed per round", f"{kill} of {loops} ({sum(k.stalled for k in outcome.kills)} taken over in all)"],
        ["all back after (median)", f"{back_s:.1f} s" if back_s is not None else "never"],
        ["rounds (s)", rounds or "-"],
        ["messages sent", outcome.sent],
        ["lost", outcome.lost],
        ["duplicates", outcome.duplicates],
        ["left in queue / in DLQ", f"{outcome.left_in_queue} / {outcome.in_dlq}"],
    ]
    lines = [
        "",
        f"time scale {scale:g}: stale after {stale_after_s:.1f} s, restart sweep every {sweep_s:.1f} s",
        common.table(["recovery", "value"], rows),
        f"  target all back within stale_after + one sweep ({target_s:.1f} s): "
        + common.verdict(back_s is not None and back_s <= target_s),
        f"  target messages lost = 0: {common.verdict(outcome.lost == 0 and outcome.sent > 0)}",
    ]
    if outcome.error:
        lines.append(f"  {outcome.error}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=4, help="n: loops pinned on the queue (default 4)")
    parser.add_argument("--kill", type=int, default=2, help="k: loops killed per round (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of killing (default 3)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s sent throughout (default 100)")
    parser.add_argument("--work-ms", type=float, default=20.0, help="handler time per message (default 20)")
    parser.add_argument("--time-scale", type=float, default=10.0, help="time compression (default 10)")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.kill <= args.loops:
        parser.error("--kill must be between 1 and --loops")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"recovery: {common.Machine.now()}; logs in {log_dir}", flush=True)
    tap = LogTap(log_dir / "functions.log")
    receipts = log_dir / f"receipts-{os.getpid()}.txt"
    try:
        with common.embedded_aws(stack_name=STACK, time_scale=args.time_scale, tap=tap) as aws:
            bench = Recovery(aws, receipts=receipts, work_ms=args.work_ms)
            outcome = bench.run(loops=args.loops, kill=args.kill, repeat=args.repeat, rate=args.rate)
            stale_after_s, sweep_s = bench.stale_after_s, bench.sweep_s
    finally:
        tap.close()
    print(
        report(
            outcome,
            loops=args.loops,
            kill=args.kill,
            stale_after_s=stale_after_s,
            sweep_s=sweep_s,
            scale=args.time_scale,
        )
    )
    failed = outcome.error or any(k.back_s is None for k in outcome.kills) or outcome.lost
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
