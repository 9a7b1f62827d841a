"""Where the time goes: py-spy profiles of one consumer and of the moto server during a throughput repetition.

    .venv/bin/python -m bench.profile [--scenario sqsloops] [--messages 4000] [--seconds 8]

Starts one consumer (N = 1) of a throughput scenario (bench.throughput), warms it up, then records the busiest
consumer process and this process (the moto server, the executor, the evaluator) with py-spy while a repetition
runs, and prints the frames with the most samples: own time, and time including callees. The raw py-spy output
(collapsed stacks, one line per stack) stays in the log directory for a flame graph.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import common, throughput
from bench.common import ApiCalls, Children, LogTap

STACK = "bench-pr"


def top_frames(collapsed: Path, *, count: int) -> str:
    """The frames with the most samples in a py-spy --format raw file, own time and time including callees."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = stack.split(";")
        total += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            inclusive[frame] += int(samples)
    if not total:
        return "  (no samples)"
    rows = [["own", *(f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count))]]
    rows.append(["with callees", *(f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(count))])
    return "\n".join(f"  {title}:\n" + "\n".join(f"    {line}" for line in lines) for title, *lines in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="sqsloops", choices=list(throughput.SCENARIOS))
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long py-spy records (default 8)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        parser.error("py-spy is not installed (it comes with the bench extra: pip install -e '.[bench]')")
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"profile of {args.scenario}: {common.Machine.now()}; logs in {log_dir}", flush=True)
    tap, calls, children = LogTap(log_dir / "functions.log"), ApiCalls(), Children(log_dir)
    try:
        with common.embedded_aws(stack_name=STACK, time_scale=1.0, tap=tap, calls=calls) as aws:
            bench = throughput.Bench(aws=aws, calls=calls, tap=tap, children=children, time_scale=1.0)
            scenario = throughput.SCENARIOS[args.scenario](bench)
            queue_url = common.make_queue(bench.sqs, common.unique_name("pr"))
            scenario.start(queue_url, 1)
            try:
                common.send_all(bench.producer, queue_url, scenario.bodies(throughput.WARMUP_PER_CONSUMER))
                bench.wait_empty(queue_url, timeout_s=throughput.START_TIMEOUT_S)
                producer = threading.Thread(
                    target=common.send_all, args=(bench.producer, queue_url, scenario.bodies(args.messages))
                )
                started = time.perf_counter()
                producer.start()
                consumer = common.busiest(scenario.consumer_pids(), 1, window_s=0.5)
                targets = {"server": os.getpid(), **({"consumer": consumer[0]} if consumer else {})}
                record = [py_spy, "record", "--format", "raw", "--rate", "200", "--nonblocking"]
                record += ["--duration", str(int(args.seconds))]
                spies = [
                    subprocess.Popen(
                        [*record, "--pid", str(pid), "-o", str(log_dir / f"{name}.txt")],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for name, pid in targets.items()
                ]
                producer.join()
                bench.wait_empty(queue_url, timeout_s=throughput.START_TIMEOUT_S)
                rate = args.messages / (time.perf_counter() - started)
                for spy in spies:
                    spy.wait()
            finally:
                scenario.stop()
    finally:
        children.stop_all()
        tap.close()
    print(f"{args.scenario}: {rate:.0f} msgs/s while profiled (py-spy slows what it samples)")
    for name, pid in targets.items():
        path = log_dir / f"{name}.txt"
        print(f"\n{name} (pid {pid}):")
        print(top_frames(path, count=args.top) if path.exists() else "  (py-spy wrote nothing: ptrace allowed?)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
