"""Scaling: a burst on a registered queue, with compressed time; how fast loops follow the depth, up and down.

    .venv/bin/python -m bench.scaling [--burst 4000] [--max-loops 8] [--repeat 3] [--time-scale 10]

Two cases, each repeated: a queue kept at min 1 loop, and a queue that scales from zero (min 0). Each cycle
registers a fresh queue (handler python:sqsloops.examples:work_20ms: ~50 msgs/s per loop, so a burst outlasts the
first alarm period), waits until its min loops run and its alarms are OK, sends the burst, and samples the
depth (visible, in flight) and the running loops (tokens whose loop has heartbeated) every tick until the queue
is drained and the loops are back to min. Loops follow the depth, not the burst: the burst must keep more than
(max_loops - 1) * backlog_per_loop messages visible while the first loops drain it, or max loops is never
wanted (the "peaks" column shows the most loops each cycle reached). Reported, median of the repetitions, in
seconds and in alarm periods: time to the first extra loop, to max loops, to drain, and back to min, all from the
first message sent.

Target: max loops within one alarm period plus one restart sweep.
Time compression divides the alarm period, the sweep interval, the heartbeat and the stale threshold by
--time-scale; cold starts of the local execution environments (~1 s on a loaded 2-core machine) are not
compressed, so at a high scale they weigh more than they would in AWS.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common
from bench.common import LogTap

STACK = "bench-sc"
HANDLER = "python:sqsloops.examples:work_20ms"
LOOP_STOPPED = '"message":"loop stopped"'
SETTLE_S = 1.0  # loops must stay at min this long before a cycle is over


@dataclass(frozen=True)
class Sample:
    t_s: float
    visible: int
    in_flight: int
    loops: int


@dataclass
class Cycle:
    case: str
    min_loops: int
    max_loops: int
    samples: list[Sample] = field(default_factory=list)
    sent_s: float | None = None
    error: str | None = None

    def first(self, predicate: Any, *, after_s: float = 0.0) -> float | None:
        return next((s.t_s for s in self.samples if s.t_s >= after_s and predicate(s)), None)

    @property
    def peak(self) -> int:
        return max((s.loops for s in self.samples), default=0)

    @property
    def first_extra_s(self) -> float | None:
        return self.first(lambda s: s.loops > self.min_loops)

    @property
    def max_s(self) -> float | None:
        return self.first(lambda s: s.loops >= self.max_loops)

    @property
    def drain_s(self) -> float | None:
        if self.sent_s is None:
            return None
        return self.first(lambda s: s.visible + s.in_flight == 0, after_s=self.sent_s)

    @property
    def back_min_s(self) -> float | None:
        """When the loops came back to min for good, after their peak."""
        peak = self.first_extra_s
        if peak is None:
            return None
        at_min: float | None = None
        for s in self.samples:
            if s.t_s < peak:
                continue
            at_min = (at_min if at_min is not None else s.t_s) if s.loops <= self.min_loops else None
        return at_min


class Scaling:
    def __init__(self, aws: Any, tap: LogTap, *, tick_s: float) -> None:
        self.aws = aws
        self.tap = tap
        self.tick_s = tick_s
        self.regs = common.registrations(aws)
        self.sqs = aws.client("sqs")
        self.monitor = common.tagged_client(aws, "sqs", common.MONITOR_APP_ID)
        self.producer = common.tagged_client(aws, "sqs", common.PRODUCER_APP_ID)
        self.cloudwatch = aws.client("cloudwatch")
        self.period_s = common.alarm_period_s(aws)
        self.sweep_s = common.sweep_interval_s(aws)

    def cycle(self, case: str, *, min_loops: int, max_loops: int, burst: int, backlog_per_loop: int) -> Cycle:
        from sqsloops.registry import QueueConfig

        cycle = Cycle(case, min_loops, max_loops)
        visibility_s = common.visibility_timeout_s(self.aws.time_scale)
        queue_url = common.make_queue(self.sqs, common.unique_name("sc"), visibility_timeout_s=visibility_s)
        config = QueueConfig(
            queue_url=queue_url,
            handler=HANDLER,
            min_loops=min_loops,
            max_loops=max_loops,
            backlog_per_loop=backlog_per_loop,
            visibility_timeout_s=visibility_s,
        )
        self.regs.register(config)
        try:
            if not self._ready(queue_url, min_loops):
                cycle.error = "min loops or alarms not ready"
                return cycle
            self._burst(cycle, queue_url, burst)
        finally:
            self._deregister(queue_url)
        return cycle

    def _ready(self, queue_url: str, min_loops: int) -> bool:
        def alarms_ok() -> bool:
            names = self.regs.alarms.names(queue_url)
            alarms = self.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] if names else []
            return bool(alarms) and all(a["StateValue"] == "OK" for a in alarms)

        def loops_at_min() -> bool:
            tokens = self.regs.tokens.list(queue_url)
            return len(tokens) == min_loops and common.running_loops(tokens) == min_loops

        return common.wait_until(loops_at_min, timeout_s=120, interval_s=0.2) and common.wait_until(
            alarms_ok, timeout_s=10 * self.period_s + 30, interval_s=0.2
        )

    def _burst(self, cycle: Cycle, queue_url: str, burst: int) -> None:
        payload = common.bodies(burst)
        started = time.monotonic()

        def produce() -> None:
            common.send_all(self.producer, queue_url, payload)
            cycle.sent_s = time.monotonic() - started

        producer = threading.Thread(target=produce, name="burst", daemon=True)
        producer.start()
        give_up_at = started + 40 * self.period_s + burst / 10
        settled_since: float | None = None
        while time.monotonic() < give_up_at:
            d = self._depth(queue_url)
            loops = common.running_loops(self.regs.tokens.list(queue_url))
            now = time.monotonic()
            cycle.samples.append(Sample(now - started, d.visible, d.in_flight, loops))
            done = cycle.sent_s is not None and d.visible + d.in_flight == 0 and loops <= cycle.min_loops
            done = done and cycle.first_extra_s is not None
            settled_since = (settled_since or now) if done else None
            if settled_since is not None and now - settled_since >= SETTLE_S:
                break
            time.sleep(max(0.0, self.tick_s - (time.monotonic() - now)))
        else:
            cycle.error = "did not drain and come back to min in time"
        producer.join()

    def _depth(self, queue_url: str) -> Any:
        from sqsloops.queues import queue_depth

        return queue_depth(self.monitor, queue_url)

    def _deregister(self, queue_url: str) -> None:
        mark = self.tap.mark()
        running = common.running_loops(self.regs.tokens.list(queue_url))
        self.regs.deregister(queue_url)
        self.tap.wait_for(LOOP_STOPPED, count=running, since=mark, timeout_s=self.aws.settings.heartbeat_s + 30)


# ---------------------------------------------------------------- report


def _fmt(seconds: float | None, period_s: float) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:5.1f} s {seconds / period_s:4.2f} P"


def _median_of(cycles: Sequence[Cycle], attribute: str) -> float | None:
    values = [getattr(c, attribute) for c in cycles]
    known = [v for v in values if v is not None]
    return common.median(known) if known and len(known) == len(values) else None


def report(cycles: Sequence[Cycle], *, period_s: float, sweep_s: float, burst: int, time_scale: float) -> str:
    target_s = period_s + sweep_s
    lines = [
        "",
        f"burst of {burst} messages; time scale {time_scale:g}: alarm period P = {period_s:.1f} s, "
        f"restart sweep every {sweep_s:.1f} s; times from the first message sent, median of each case's cycles",
    ]
    rows = []
    verdicts = []
    for case in dict.fromkeys(c.case for c in cycles):
        group = [c for c in cycles if c.case == case and not c.error]
        if not group:
            rows.append([case, "-", "-", "-", "-", "-", "-", "failed"])
            continue
        first = group[0]
        max_s = _median_of(group, "max_s")
        rows.append(
            [
                case,
                f"{first.min_loops}..{first.max_loops}",
                "/".join(str(c.peak) for c in group),
                _fmt(_median_of(group, "first_extra_s"), period_s),
                _fmt(max_s, period_s),
                _fmt(_median_of(group, "drain_s"), period_s),
                _fmt(_median_of(group, "back_min_s"), period_s),
                str(len(group)),
            ]
        )
        ok = max_s is not None and max_s <= target_s
        shown = f"{max_s:.1f} s" if max_s is not None else "never"
        verdicts.append(
            f"  target {case}: max loops within P + one sweep ({target_s:.1f} s): {shown}: {common.verdict(ok)}"
        )
    lines.append(
        common.table(
            ["case", "loops", "peaks", "first extra loop", "max loops", "drained", "back to min", "cycles"], rows
        )
    )
    lines += verdicts
    for c in cycles:
        if c.error:
            lines.append(f"  {c.case}: {c.error}")
    for case in dict.fromkeys(c.case for c in cycles):
        sample = next((c for c in cycles if c.case == case and c.samples), None)
        if sample is not None:
            lines += ["", f"timeline of the first {case} cycle (a row where the loops changed):", _timeline(sample)]
    return "\n".join(lines)


def _timeline(cycle: Cycle) -> str:
    rows = []
    last = None
    for s in cycle.samples:
        if s.loops != last:
            rows.append([f"{s.t_s:.1f}", s.visible, s.in_flight, s.loops])
            last = s.loops
    return common.table(["t (s)", "visible", "in flight", "loops"], rows)


def write_csv(cycles: Sequence[Cycle], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("case,cycle,t_s,visible,in_flight,loops\n")
        for i, c in enumerate(cycles):
            for s in c.samples:
                out.write(f"{c.case},{i},{s.t_s:.3f},{s.visible},{s.in_flight},{s.loops}\n")


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=4000, help="messages in the burst (default 4000)")
    parser.add_argument("--max-loops", type=int, default=8, help="max_loops of the queues (default 8)")
    parser.add_argument("--backlog-per-loop", type=int, default=100, help="the scaling target (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="cycles per case (default 3)")
    parser.add_argument("--time-scale", type=float, default=10.0, help="time compression (default 10)")
    parser.add_argument("--tick", type=float, default=0.25, help="seconds between samples (default 0.25)")
    parser.add_argument("--log-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"scaling: {common.Machine.now()}; logs in {log_dir}", flush=True)
    tap = LogTap(log_dir / "functions.log")
    cycles: list[Cycle] = []
    try:
        with common.embedded_aws(stack_name=STACK, time_scale=args.time_scale, tap=tap) as aws:
            bench = Scaling(aws, tap, tick_s=args.tick)
            cases = [("min 1", 1), ("from zero", 0)]
            for rep in range(args.repeat):
                for case, min_loops in cases:
                    print(f"  {case} cycle {rep + 1} ...", end="", flush=True)
                    cycle = bench.cycle(
                        case,
                        min_loops=min_loops,
                        max_loops=args.max_loops,
                        burst=args.burst,
                        backlog_per_loop=args.backlog_per_loop,
                    )
                    cycles.append(cycle)
                    outcome = cycle.error or f"max loops after {_fmt(cycle.max_s, bench.period_s)}"
                    print(f" {outcome}", flush=True)
            period_s, sweep_s = bench.period_s, bench.sweep_s
    finally:
        tap.close()
    write_csv(cycles, log_dir / "scaling.csv")
    print(report(cycles, period_s=period_s, sweep_s=sweep_s, burst=args.burst, time_scale=args.time_scale))
    return 1 if any(c.error for c in cycles) else 0


if __name__ == "__main__":
    sys.exit(main())
