"""Throughput: the same messages, the same N consumers, the same embedded AWS, five ways, side by side in one run.

    .venv/bin/python -m bench.throughput [--messages 3000] [--consumers 1,4] [--repeat 3]

1. raw              a bare boto3 loop per consumer: ReceiveMessage(10) + DeleteMessageBatch (the limit)
2. sqsloops         python:sqsloops.examples:noop, in the loop's process (the real process function and executor)
3. sqsloops-lambda  lambda: forwarding to a no-op function (one synchronous invoke per batch)
4. 2016-pattern     one long poll per invocation, DeleteMessage per message, a self-invocation after every poll
5. celery           Celery's SQS transport (kombu), concurrency N, a no-op task

For each N, every consumer set is started on its own queue and warmed up (deploy and warm-up are not measured);
then `--repeat` rounds each run one repetition of every set in turn (a rotated order): a repetition sends
`--messages` bodies of 256 bytes and measures from the first send until its queue is empty (nothing visible, in
flight or delayed), while the other sets sit idle in their long polls. msgs/s is the median of the rounds; a ratio
is the median of the rounds' ratios, paired within a round so that the drift of a shared machine cancels out.
API calls per message count every request the consumers made during their repetitions, at the server (see
bench.common), so they are noise-free. Celery's bodies are its own task messages (the 256-byte payload is the
task's argument), taken from what Celery itself sends.
"""

from __future__ import annotations

import argparse
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
from bench.common import ApiCalls, CallKey, Children, LogTap

FUNCTIONS = Path(__file__).resolve().parent / "functions"
STACK = "bench-tp"
PROCESS_APP_ID = "process"  # the process function's User-Agent app id (bench.common tags stack functions)
WARMUP_PER_CONSUMER = 50
START_TIMEOUT_S = 180.0
LOOP_STOPPED = '"message":"loop stopped"'
CHAIN_STOPPED = "pattern2016 chain stopped"

# Targets (issue 4)
MIN_RATIO_TO_RAW = 0.9
MIN_RATIO_TO_2016 = 3.0
MIN_RATIO_TO_CELERY = 1.5
MAX_CALLS_PER_MESSAGE = 0.25


@dataclass
class Rep:
    seconds: float
    messages: int
    calls: Counter[CallKey]
    round: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def calls_per_message(self) -> float:
        return sum(self.calls.values()) / self.messages


@dataclass
class Result:
    scenario: str
    consumers: int
    reps: list[Rep] = field(default_factory=list)
    error: str | None = None

    @property
    def rate(self) -> float:
        return common.median(r.rate for r in self.reps)

    @property
    def calls_per_message(self) -> float:
        return common.median(r.calls_per_message for r in self.reps)

    def ratio_to(self, other: Result) -> float:
        """Median over the rounds both ran of this rate over the other's (paired: same round, minutes apart)."""
        theirs = {rep.round: rep.rate for rep in other.reps}
        return common.median(rep.rate / theirs[rep.round] for rep in self.reps if rep.round in theirs)

    @property
    def calls(self) -> Counter[CallKey]:
        total: Counter[CallKey] = Counter()
        for rep in self.reps:
            total.update(rep.calls)
        return total


@dataclass
class Bench:
    """The embedded AWS and what every scenario needs from it."""

    aws: Any
    calls: ApiCalls
    tap: LogTap
    children: Children
    time_scale: float

    def __post_init__(self) -> None:
        self.sqs = self.aws.client("sqs")
        self.producer = common.tagged_client(self.aws, "sqs", common.PRODUCER_APP_ID)
        self.monitor = common.tagged_client(self.aws, "sqs", common.MONITOR_APP_ID)
        self.registrations = common.registrations(self.aws)

    def wait_empty(self, queue_url: str, *, timeout_s: float) -> bool:
        return common.wait_until(lambda: common.depth(self.monitor, queue_url) == 0, timeout_s=timeout_s)


class Scenario:
    """One way of consuming a queue with N consumers."""

    name = ""
    sources: frozenset[str] = frozenset()  # whose API calls count (User-Agent app ids, see bench.common)

    def __init__(self, bench: Bench) -> None:
        self.bench = bench

    def counts(self, key: CallKey) -> bool:
        """Whether a request is one of this scenario's consumers' calls."""
        return key.source in self.sources

    def start(self, queue_url: str, consumers: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def bodies(self, count: int) -> list[str]:
        return common.bodies(count)

    def consumer_pids(self) -> list[int]:
        """The processes that consume (for a profiler)."""
        return []


class Raw(Scenario):
    name = "raw boto3 (the limit)"
    sources = frozenset({"raw"})

    def start(self, queue_url: str, consumers: int) -> None:
        env = {**self.bench.aws.env(), common.UA_ENV: "raw"}
        self._procs = [
            self.bench.children.start(f"raw-{i}", common.python_module("bench.raw_consumer", queue_url), env)
            for i in range(consumers)
        ]

    def stop(self) -> None:
        for proc in self._procs:
            self.bench.children.stop(proc)

    def consumer_pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]


class Sqsloops(Scenario):
    name = "sqsloops python: noop"
    handler = "python:sqsloops.examples:noop"

    def counts(self, key: CallKey) -> bool:
        # both sqsloops scenarios run in the process function: their calls are told apart by queue
        return key.source == PROCESS_APP_ID and key.scope == self._queue_url

    def start(self, queue_url: str, consumers: int) -> None:
        from sqsloops.registry import QueueConfig

        self._queue_url = queue_url
        self._consumers = consumers
        regs = self.bench.registrations
        visibility_s = common.visibility_timeout_s(self.bench.time_scale)
        config = QueueConfig(
            queue_url=queue_url,
            handler=self.handler,
            min_loops=consumers,
            max_loops=consumers,
            visibility_timeout_s=visibility_s,
        )
        regs.register(config)
        running = common.wait_until(
            lambda: sum(t.invocations > 0 for t in regs.tokens.list(queue_url)) >= consumers,
            timeout_s=START_TIMEOUT_S,
            interval_s=0.2,
        )
        if not running:
            raise RuntimeError(f"{consumers} loops did not start within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        mark = self.bench.tap.mark()
        self.bench.registrations.deregister(self._queue_url)
        # each loop stops at its next heartbeat, after its current long poll
        wait_s = self.bench.aws.settings.heartbeat_s + 30
        self.bench.tap.wait_for(LOOP_STOPPED, count=self._consumers, since=mark, timeout_s=wait_s)

    def consumer_pids(self) -> list[int]:
        return common.lambda_workers(self.bench.aws.settings.process_function)


class SqsloopsLambda(Sqsloops):
    name = "sqsloops lambda: noop"

    def counts(self, key: CallKey) -> bool:
        forwarded = key.source == PROCESS_APP_ID and key.scope == self._function
        return super().counts(key) or forwarded or key.source == self._function

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self._function = common.deploy_function(
            bench.aws,
            name=f"{bench.aws.stack_name}-handler-noop",
            source=FUNCTIONS / "noop.py",
            app_id="bench-noop",
            timeout_s=60,
        )
        self.handler = f"lambda:{self._function}"


class Pattern2016(Scenario):
    name = "2016 pattern"
    sources = frozenset({"pattern2016"})

    def __init__(self, bench: Bench) -> None:
        super().__init__(bench)
        self._lambda = bench.aws.client("lambda")
        self._function = common.deploy_function(
            bench.aws,
            name="bench-pattern2016",
            source=FUNCTIONS / "pattern2016.py",
            app_id="pattern2016",
            timeout_s=300,  # a 20 s long poll must fit in Timeout / time_scale
        )

    def _set_stop(self, stop: bool) -> None:
        config = self._lambda.get_function_configuration(FunctionName=self._function)
        variables = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
        variables.pop("BENCH_STOP", None)
        if stop:
            variables["BENCH_STOP"] = "1"
        self._lambda.update_function_configuration(FunctionName=self._function, Environment={"Variables": variables})

    def start(self, queue_url: str, consumers: int) -> None:
        self._queue_url, self._consumers = queue_url, consumers
        self._set_stop(False)
        for _ in range(consumers):
            self._lambda.invoke(
                FunctionName=self._function, InvocationType="Event", Payload=f'{{"queue_url": "{queue_url}"}}'
            )

    def stop(self) -> None:
        mark = self.bench.tap.mark()
        self._set_stop(True)
        # wake the chains' long polls: each then invokes itself once more, and that invocation stops
        common.send_all(self.bench.sqs, self._queue_url, common.bodies(10 * self._consumers))
        self.bench.tap.wait_for(CHAIN_STOPPED, count=self._consumers, since=mark, timeout_s=60)

    def consumer_pids(self) -> list[int]:
        return common.lambda_workers(self._function)


class CeleryScenario(Scenario):
    name = "celery (kombu SQS)"
    sources = frozenset({"celery", common.UNTAGGED})  # kombu's pycurl client sends no app id

    def start(self, queue_url: str, consumers: int) -> None:
        from bench.celery_app import make_app

        host_port = self.bench.aws.endpoint.removeprefix("http://")
        broker_url = f"sqs://testing:testing@{host_port}"
        self._body = self._task_body(make_app(broker_url=broker_url, queue_url=queue_url, concurrency=consumers))
        env = {
            **self.bench.aws.env(),
            common.UA_ENV: "celery",
            "BENCH_BROKER_URL": broker_url,
            "BENCH_CELERY_QUEUE_URL": queue_url,
            "BENCH_CONCURRENCY": str(consumers),
        }
        argv = common.python_module(
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(consumers),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        )
        self._proc = self.bench.children.start(f"celery-{consumers}", argv, env)

    def _task_body(self, app: Any) -> str:
        """One task message exactly as Celery sends it, taken off the queue before any worker runs."""
        queue_url = app.conf.broker_transport_options["predefined_queues"]["bench"]["url"]
        with app.connection_for_write() as connection:
            app.send_task("noop", args=[common.bodies(1)[0]], connection=connection)
        messages = self.bench.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5).get("Messages", [])
        if not messages:
            raise RuntimeError("Celery's task message did not arrive")
        self.bench.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return str(messages[0]["Body"])

    def bodies(self, count: int) -> list[str]:
        return [self._body] * count  # no result backend: the same task id many times is harmless

    def stop(self) -> None:
        self.bench.children.stop(self._proc, grace_s=5.0)

    def consumer_pids(self) -> list[int]:
        return [self._proc.pid]  # the worker's main process polls and acknowledges; its children run the tasks


SCENARIOS: dict[str, type[Scenario]] = {
    "raw": Raw,
    "sqsloops": Sqsloops,
    "sqsloops-lambda": SqsloopsLambda,
    "2016": Pattern2016,
    "celery": CeleryScenario,
}


def measure(bench: Bench, scenarios: Sequence[Scenario], *, consumers: int, messages: int, repeat: int) -> list[Result]:
    """Start every scenario's consumers, warm them up, then run `repeat` rounds of one repetition each.

    Interleaving the rounds makes each round's ratios paired (taken minutes, not quarter-hours, apart), which
    keeps them steady on a shared machine. The idle consumer sets cost nearly nothing meanwhile: an idle long
    poll waits on a condition in moto, and a loop heartbeats every heartbeat_s.
    """
    results = {s.name: Result(s.name, consumers) for s in scenarios}
    queues: dict[str, str] = {}
    active: list[Scenario] = []
    visibility_s = common.visibility_timeout_s(bench.time_scale)
    try:
        for scenario in scenarios:
            name = common.unique_name(f"tp-{consumers}")
            queue_url = common.make_queue(bench.sqs, name, visibility_timeout_s=visibility_s)
            try:
                scenario.start(queue_url, consumers)
            except Exception as exc:
                results[scenario.name].error = f"start failed: {type(exc).__name__}: {exc}"
                continue
            queues[scenario.name] = queue_url
            active.append(scenario)
        for scenario in list(active):  # warm-up: every execution environment and connection exists
            queue_url = queues[scenario.name]
            common.send_all(bench.producer, queue_url, scenario.bodies(WARMUP_PER_CONSUMER * consumers))
            if not bench.wait_empty(queue_url, timeout_s=START_TIMEOUT_S):
                results[scenario.name].error = "warm-up did not drain"
                active.remove(scenario)
        timeout_s = max(120.0, messages / 5)
        for round_ in range(repeat):
            shift = round_ % len(active) if active else 0
            for scenario in active[shift:] + active[:shift]:  # each round starts with another scenario
                payload = scenario.bodies(messages)
                rep = _one_rep(bench, scenario, queues[scenario.name], payload, timeout_s, round_)
                if rep is None:
                    results[scenario.name].error = f"did not drain within {timeout_s:.0f} s"
                    active.remove(scenario)
                    continue
                results[scenario.name].reps.append(rep)
                print(f"    round {round_ + 1} {scenario.name}: {rep.rate:.0f} msgs/s", flush=True)
    finally:
        for scenario in scenarios:
            if scenario.name in queues:
                scenario.stop()
    return list(results.values())


def _one_rep(
    bench: Bench, scenario: Scenario, queue_url: str, payload: list[str], timeout_s: float, round_: int
) -> Rep | None:
    sent = threading.Event()
    before = bench.calls.snapshot()
    started = time.perf_counter()

    def produce() -> None:
        common.send_all(bench.producer, queue_url, payload)
        sent.set()

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    drained = _wait_drained(bench, queue_url, sent, timeout_s)
    seconds = time.perf_counter() - started
    producer.join()
    if not drained:
        return None
    calls = common.calls_between(before, bench.calls.snapshot(), scenario.counts)
    return Rep(seconds=seconds, messages=len(payload), calls=calls, round=round_)


def _wait_drained(bench: Bench, queue_url: str, sent: threading.Event, timeout_s: float) -> bool:
    """Poll the depth, rarely while it is deep (each poll costs moto a pass over the queue), often near the end."""
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        left = common.depth(bench.monitor, queue_url) if sent.is_set() else None
        if left == 0:
            return True
        time.sleep(0.1 if left is None or left > 50 else 0.01)
    return False


# ---------------------------------------------------------------- report


def report(results: Sequence[Result], *, messages: int, repeat: int) -> tuple[str, bool]:
    lines: list[str] = []
    all_met = True
    for consumers in sorted({r.consumers for r in results}):
        group = {r.scenario: r for r in results if r.consumers == consumers}
        raw = group.get(Raw.name)
        rows = []
        for r in group.values():
            ratio = r.ratio_to(raw) if raw else float("nan")
            runs = ", ".join(f"{rep.rate:.0f}" for rep in r.reps)
            rows.append([r.scenario, r.rate, ratio, r.calls_per_message, runs or (r.error or "-")])
        lines += [
            "",
            f"N = {consumers} consumer(s), {messages} messages of {common.BODY_BYTES} bytes, {repeat} rounds; "
            "msgs/s: median; x raw: median of the rounds' ratios",
            common.table(["consumer", "msgs/s", "x raw", "API calls/msg", "rounds (msgs/s)"], rows),
        ]
        checks = _targets(group)
        all_met = all_met and all(ok for _, ok in checks)
        lines += [f"  target {text}: {common.verdict(ok)}" for text, ok in checks]
        for r in group.values():
            if r.error:
                lines.append(f"  {r.scenario}: {r.error}")
    lines += ["", "API calls per message, by action (all repetitions):"]
    for r in results:
        total = sum(rep.messages for rep in r.reps)
        if total:
            per: Counter[str] = Counter()
            for key, n in r.calls.items():
                per[f"{key.service}:{key.action}"] += n
            text = ", ".join(f"{name} {n / total:.3f}" for name, n in per.most_common())
            lines.append(f"  N={r.consumers} {r.scenario}: {text}")
    return "\n".join(lines), all_met


def _targets(group: dict[str, Result]) -> list[tuple[str, bool]]:
    ours = group.get(Sqsloops.name)
    if ours is None or not ours.reps:
        return []
    checks = []
    peers = (
        (Raw.name, MIN_RATIO_TO_RAW),
        (Pattern2016.name, MIN_RATIO_TO_2016),
        (CeleryScenario.name, MIN_RATIO_TO_CELERY),
    )
    for peer, minimum in peers:
        other = group.get(peer)
        if other and other.reps:
            ratio = ours.ratio_to(other)
            checks.append((f"sqsloops >= {minimum}x {peer}: {ratio:.2f}x", ratio >= minimum))
    cpm = ours.calls_per_message
    checks.append((f"sqsloops <= {MAX_CALLS_PER_MESSAGE} API calls/msg: {cpm:.3f}", cpm <= MAX_CALLS_PER_MESSAGE))
    return checks


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000, help="messages per repetition (default 3000)")
    parser.add_argument("--consumers", default="1,4", help="comma-separated consumer counts N (default 1,4)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per consumer set (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="compress the stack's heartbeat and timeouts (only makes stopping loops faster; default 1)",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="where function and consumer logs go")
    args = parser.parse_args(argv)
    args.consumers = [int(n) for n in args.consumers.split(",")]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = common.Machine.now()
    print(f"throughput: {machine}; logs in {log_dir}", flush=True)
    tap = LogTap(log_dir / "functions.log")
    calls = ApiCalls(scoped_sources={PROCESS_APP_ID})
    children = Children(log_dir)
    results: list[Result] = []
    try:
        with common.embedded_aws(stack_name=STACK, time_scale=args.time_scale, tap=tap, calls=calls) as aws:
            bench = Bench(aws=aws, calls=calls, tap=tap, children=children, time_scale=args.time_scale)
            scenarios = [SCENARIOS[key](bench) for key in args.scenarios]
            for consumers in args.consumers:
                print(f"  N={consumers}: starting and warming up every consumer set", flush=True)
                results += measure(bench, scenarios, consumers=consumers, messages=args.messages, repeat=args.repeat)
    finally:
        children.stop_all()
        tap.close()
    text, _ = report(results, messages=args.messages, repeat=args.repeat)
    print(text)
    failed = [r for r in results if r.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
