"""Chaos: a backlog drained through failing handlers, killed workers, throttled heartbeats and failed self-invokes.

    .venv/bin/python -m bench.chaos [--messages 10000] [--loops 4] [--time-scale 10] [--faults SPEC] [--seed N]

A queue with a DLQ (maxReceiveCount 5) gets --messages messages, then is registered with min = max = --loops
loops and the handler bench/functions/chaos_handler.py (shipped to the process function in a layer): 5% of the
messages fail on their first receive, 0.5% (the poison) on every receive. The same backlog is drained twice on one
embedded AWS: with the infrastructure faults of --faults (sqsloops.local.faults: by default DynamoDB throttled 20%
plus storms, self-invokes failing in outages and 5% dropped, a running process-function worker killed every few
seconds), then without them (same handler failures, poison, time scale and visibility timeout).

Reported for each run: sent, processed (distinct), duplicates (handled more than once), in DLQ and whether it is
exactly the poison, lost (neither handled nor in the DLQ), time to drain (registration to an empty queue); for the
faulty run, recovery after each kill: from the kill to that slot's next heartbeat (a loop heartbeats right before
it receives), median / p90 / max. Targets: lost 0; DLQ = poison exactly; recovery p90 <= stale_after + one sweep;
drain time under faults <= 1.5 x the fault-free run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
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
from sqsloops.local.faults import FaultCounts, Faults, FaultSpecError, Kill
from sqsloops.local.provision import LayerSource

STACK = "bench-chaos"
HANDLER = "python:bench.functions.chaos_handler:handle"
# The handler reaches the process function's workers as a layer: they see only code, layers and the runtime's boto3.
CHAOS_HANDLER_LAYER = LayerSource(
    name="chaos-handler",
    root=common.ROOT,
    entries=("bench/__init__.py", "bench/functions/__init__.py", "bench/functions/chaos_handler.py"),
)
# In stack time (compressed with the stack): at time scale 10 a kill every 5 s, 0.5 s DynamoDB storms every 6 s.
DEFAULT_FAULTS = "ddb-throttle=0.2,ddb-storm=5s/60s,invoke-outage=10s/120s,invoke-drop=0.05,kill=every:50s"
TRANSIENT_SHARE = 0.05
POISON_SHARE = 0.005
MAX_RECEIVE_COUNT = 5
DRAIN_TARGET_RATIO = 1.5


@dataclass
class Run:
    """One drain of the backlog: what was sent, what became of it, how long it took, and the kills in it."""

    faults: str
    sent: int = 0
    processed: int = 0  # distinct messages handled
    handled: int = 0  # successes, duplicates included
    in_dlq: int = 0
    dlq_exact: bool = False
    lost: int = 0
    left_in_queue: int = 0
    drain_s: float | None = None
    recoveries_s: list[float | None] = field(default_factory=list)
    counts: FaultCounts | None = None

    @property
    def duplicates(self) -> int:
        return self.handled - self.processed


def fates(messages: int, *, seed: int) -> list[str]:
    """Each message's fate, shuffled: exactly round(5%) transient and round(0.5%) poison, the rest ok."""
    poison, transient = round(messages * POISON_SHARE), round(messages * TRANSIENT_SHARE)
    planned = ["poison"] * poison + ["transient"] * transient + ["ok"] * (messages - poison - transient)
    random.Random(seed).shuffle(planned)
    return planned


class TokenProbe(threading.Thread):
    """Reads the queue's tokens every `interval_s` (the benchmark's own calls: no fault hits them)."""

    def __init__(self, tokens: Any, queue_url: str, *, interval_s: float = 0.05) -> None:
        super().__init__(name="token-probe", daemon=True)
        self._tokens, self._queue_url, self._interval_s = tokens, queue_url, interval_s
        self._stop_event = threading.Event()
        self.snapshots: list[tuple[float, dict[str, tuple[int, float]]]] = []  # (at, slot -> (invocations, last))

    def run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            try:
                tokens = self._tokens.list(self._queue_url)
            except Exception:  # a probe that misses one reading reads again
                continue
            self.snapshots.append((time.time(), {t.slot: (t.invocations, t.last_used) for t in tokens}))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def recovery_s(self, slot: str, killed_at: float) -> float | None:
        """From `killed_at` to the slot's first heartbeat by an invocation that started after it; None if none."""
        before = [s.get(slot) for at, s in self.snapshots if at <= killed_at and slot in s]
        if not before:
            return None
        invocations_then = before[-1][0]  # type: ignore[index]
        for at, slots in self.snapshots:
            if at <= killed_at or slot not in slots:
                continue
            invocations, last_used = slots[slot]
            if invocations > invocations_then and last_used > killed_at:
                return last_used - killed_at
        return None


def drain(
    aws: Any,
    *,
    messages: int,
    loops: int,
    faults: Faults | None,
    log_dir: Path,
    seed: int,
    deadline_s: float,
    recovery_wait_s: float = 60.0,
) -> Run:
    """Send the backlog, register the queue (faults on), wait until it is empty, count what became of each message."""
    from sqsloops.registry import QueueConfig

    sqs = aws.client("sqs")
    regs = common.registrations(aws)
    run = Run(faults=str(faults) if faults else "none")
    visibility_s = common.visibility_timeout_s(aws.time_scale)
    name = common.unique_name("chaos")
    queue_url = common.make_queue(sqs, name, visibility_timeout_s=visibility_s, max_receive_count=MAX_RECEIVE_COUNT)
    log = log_dir / f"{name}.handled"
    planned = fates(messages, seed=seed)
    bodies = [json.dumps({"seq": seq, "fate": fate, "log": str(log)}) for seq, fate in enumerate(planned)]
    common.send_all(sqs, queue_url, bodies)
    run.sent = messages
    probe = TokenProbe(regs.tokens, queue_url)
    probe.start()
    injector = aws.set_faults(faults)
    started = time.time()
    try:
        config = QueueConfig(
            queue_url=queue_url,
            handler=HANDLER,
            min_loops=loops,
            max_loops=loops,
            visibility_timeout_s=visibility_s,
            backoff_base_s=2.0 / aws.time_scale,  # the queue's backoff, compressed with the stack
            backoff_max_s=900.0 / aws.time_scale,
        )
        regs.register(config)
        if common.wait_until(lambda: common.depth(sqs, queue_url) == 0, timeout_s=deadline_s, interval_s=0.1):
            run.drain_s = time.time() - started
        if injector is not None:  # the kills until now: wait (faults on) until their slots are back, or give up
            kills = [(kill.event["token"], kill.at) for kill in list(injector.counts.kills) if _of(kill, queue_url)]
            common.wait_until(
                lambda: all(probe.recovery_s(slot, at) is not None for slot, at in kills),
                timeout_s=recovery_wait_s,
                interval_s=0.2,
            )
            run.recoveries_s = [probe.recovery_s(slot, at) for slot, at in kills]
            run.counts = injector.counts
    finally:
        aws.set_faults(None)
        probe.stop()
        regs.deregister(queue_url)
    _count(run, sqs, queue_url, log, planned)
    return run


def _of(kill: Kill, queue_url: str) -> bool:
    """Whether a kill hit a loop of this queue (its event names the queue and the slot)."""
    event = kill.event if isinstance(kill.event, dict) else {}
    return event.get("queue_url") == queue_url and isinstance(event.get("token"), str)


def _count(run: Run, sqs: Any, queue_url: str, log: Path, planned: Sequence[str]) -> None:
    handled = Counter(int(line) for line in log.read_text().split()) if log.exists() else Counter()
    dead = dead_letters(sqs, f"{queue_url}-dlq")  # make_queue's naming
    poison = {seq for seq, fate in enumerate(planned) if fate == "poison"}
    run.handled = sum(handled.values())
    run.processed = len(handled)
    run.in_dlq = len(dead)
    run.dlq_exact = Counter(dead) == Counter(poison)
    run.lost = sum(1 for seq in range(len(planned)) if seq not in handled and seq not in dead)
    run.left_in_queue = common.depth(sqs, queue_url)


def dead_letters(sqs: Any, dlq_url: str) -> list[int]:
    """The seq of every message in the dead-letter queue (received, kept invisible, never deleted)."""
    seqs: list[int] = []
    for _ in range(3):  # a receive may come back empty while messages remain
        while True:
            response = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=3600)
            batch = response.get("Messages", [])
            if not batch:
                break
            seqs += [int(json.loads(message["Body"])["seq"]) for message in batch]
    return seqs


# ---------------------------------------------------------------- report


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` quantile (0.9: p90) by the nearest rank at or above it."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-int(share * 100) * len(ordered) // 100) - 1))]


def report(faulty: Run, clean: Run | None, *, stale_after_s: float, sweep_s: float, scale: float, loops: int) -> str:
    runs = [faulty] + ([clean] if clean else [])

    def drain(run: Run) -> str:
        return f"{run.drain_s:.1f}" if run.drain_s is not None else "did not drain"

    rows: list[list[object]] = [
        ["sent", *[r.sent for r in runs]],
        ["processed", *[r.processed for r in runs]],
        ["duplicates", *[r.duplicates for r in runs]],
        ["in DLQ (exactly the poison?)", *[f"{r.in_dlq} ({'yes' if r.dlq_exact else 'NO'})" for r in runs]],
        ["lost", *[r.lost for r in runs]],
        ["left in queue", *[r.left_in_queue for r in runs]],
        ["time to drain (s)", *[drain(r) for r in runs]],
    ]
    recovered = [s for s in faulty.recoveries_s if s is not None]
    never = len(faulty.recoveries_s) - len(recovered)
    if recovered:
        figures = f"{statistics.median(recovered):.1f} / {percentile(recovered, 0.9):.1f} / {max(recovered):.1f}"
    else:
        figures = "-"
    counts = faulty.counts or FaultCounts()
    rows += [
        ["kills (slots not back)", f"{len(faulty.recoveries_s)} ({never})", *(["-"] if clean else [])],
        ["recovery s median/p90/max", figures, *(["-"] if clean else [])],
        ["DynamoDB calls throttled", counts.ddb_throttled, *(["-"] if clean else [])],
        ["async invokes failed/dropped", f"{counts.invoke_failed}/{counts.invoke_dropped}", *(["-"] if clean else [])],
    ]
    target_s = stale_after_s + sweep_s
    p90 = percentile(recovered, 0.9) if recovered else None
    lines = [
        "",
        f"time scale {scale:g}, {loops} loops: stale after {stale_after_s:.1f} s, restart sweep every {sweep_s:.1f} s",
        f"faults (stack time): {faulty.faults}",
        common.table(["chaos", "faults", *(["no faults"] if clean else [])], rows),
        f"  target lost = 0: {common.verdict(all(r.lost == 0 and r.sent > 0 for r in runs))}",
        f"  target DLQ = poison exactly: {common.verdict(all(r.dlq_exact for r in runs))}",
        f"  target recovery p90 <= stale_after + one sweep ({target_s:.1f} s): "
        + (common.verdict(p90 is not None and p90 <= target_s and never == 0) if faulty.recoveries_s else "no kill"),
    ]
    if clean:
        ok = faulty.drain_s is not None and clean.drain_s is not None
        ratio = faulty.drain_s / clean.drain_s if ok else None  # type: ignore[operator]
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(
            f"  target drain under faults <= {DRAIN_TARGET_RATIO:g}x fault-free ({shown}): "
            + common.verdict(ratio is not None and ratio <= DRAIN_TARGET_RATIO)
        )
    return "\n".join(lines)


def met(faulty: Run, clean: Run | None) -> bool:
    """The correctness targets (timing is reported, not enforced by the exit status)."""
    return all(r.lost == 0 and r.dlq_exact and r.drain_s is not None for r in [faulty] + ([clean] if clean else []))


# ---------------------------------------------------------------- main


def parameters(time_scale: float) -> dict[str, str]:
    """Invocations of 120 s of stack time (the template's shortest) with a reserve of 30: each loop hands over
    every few seconds of wall time, so failed and dropped self-invokes happen within one drain."""
    return {"ProcessTimeoutSeconds": "120", "ReserveSeconds": str(max(2, round(30 / time_scale)))}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="backlog size (default 10000)")
    parser.add_argument("--loops", type=int, default=4, help="loops pinned on the queue (default 4)")
    parser.add_argument("--time-scale", type=float, default=10.0, help="time compression (default 10)")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help=f"fault spec (default {DEFAULT_FAULTS})")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fates and of the faults (default 1)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fault-free run")
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.loops < 1:
        parser.error("--messages and --loops must be at least 1")
    try:
        args.parsed_faults = Faults.parse(args.faults)
    except FaultSpecError as exc:
        parser.error(str(exc))
    if args.parsed_faults.seed is None:
        args.parsed_faults = Faults.parse(f"{args.faults},seed={args.seed}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {common.Machine.now()}; logs in {log_dir}", flush=True)
    tap = LogTap(log_dir / "functions.log")
    deadline_s = 600 + args.messages / 5
    clean: Run | None = None
    try:
        with common.embedded_aws(
            stack_name=STACK, time_scale=args.time_scale, tap=tap, parameters=parameters(args.time_scale)
        ) as aws:
            aws.attach_handler_layers([CHAOS_HANDLER_LAYER])
            stale_after_s, sweep_s = float(aws.settings.stale_after_s), common.sweep_interval_s(aws)
            options = {
                "messages": args.messages,
                "loops": args.loops,
                "log_dir": log_dir,
                "seed": args.seed,
                "recovery_wait_s": 3 * (stale_after_s + sweep_s),
            }
            print(f"  with faults {args.parsed_faults} ...", flush=True)
            faulty = drain(aws, faults=args.parsed_faults, deadline_s=deadline_s, **options)
            print(f"  drained in {faulty.drain_s} s; without faults ...", flush=True)
            if not args.no_baseline:
                clean = drain(aws, faults=None, deadline_s=deadline_s, **options)
                print(f"  drained in {clean.drain_s} s", flush=True)
    finally:
        tap.close()
    print(report(faulty, clean, stale_after_s=stale_after_s, sweep_s=sweep_s, scale=args.time_scale, loops=args.loops))
    return 0 if met(faulty, clean) else 1


if __name__ == "__main__":
    sys.exit(main())
