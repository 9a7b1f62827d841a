"""The demo: a burst of messages through one registered queue on an embedded AWS, measured from the outside.

Given a started embedded AWS (sqsloops.local.server.EmbeddedAws, or anything with its `client()`, `settings` and
`time_scale`), `Demo.run()` creates a queue with a dead-letter queue, points the process function's ledger at a
file, registers the queue with the `ledger` handler (~20 ms of work per message), sends a burst, samples depth and
loops every ~0.5 s, and waits until the queue is drained and the loops are back at min_loops, or a deadline passes.
The ledger then says which messages were processed and how many times: lost = sent - unique processed - in DLQ.

No sqsloops.local and no rich here: the CLI (sqsloops.cli.demo) starts the embedded AWS and draws the views.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqsloops import defaults
from sqsloops.clients import Clients
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError, TransientAwsError
from sqsloops.examples import LEDGER_ENV
from sqsloops.ops.root import OpsRoot
from sqsloops.queues import Depth, queue_depth
from sqsloops.registry import QueueConfig

if TYPE_CHECKING:
    from sqsloops.settings import Settings

HANDLER = "python:sqsloops.examples:ledger"
DEFAULT_MESSAGES = 3000
DEFAULT_TIME_SCALE = 20.0  # the 60 s alarm period becomes 3 s: a scale-up within seconds, the whole run in ~1 min
MAX_TIME_SCALE = 60.0  # beyond it, a heartbeat (at least 1 s) no longer fits many times in the stale threshold
DEFAULT_MIN_LOOPS = 1
DEFAULT_MAX_LOOPS = 8
DEFAULT_DEADLINE_S = 300.0
SAMPLE_EVERY_S = 0.5
SEND_BATCH = 10  # SendMessageBatch's maximum
SEND_THREADS = 4
SEND_ATTEMPTS = 5
# Defaults of the template's duration parameters, compressed for the embedded stack by embedded_parameters().
PROCESS_TIMEOUT_S = 900
RESERVE_MIN_S, RESERVE_MAX_S = 2, 15
MIN_STALE_AFTER_S = 5

# Phases, in order.
STARTING, REGISTERING, SENDING, DRAINING, SCALING_DOWN, CLEANING_UP, DONE = (
    "starting",
    "registering",
    "sending",
    "draining",
    "scaling down",
    "cleaning up",
    "done",
)
FINISHED = frozenset({CLEANING_UP, DONE})  # what a live view shows no longer changes


class DemoStack(Protocol):
    """What the demo runs against: a started EmbeddedAws fits."""

    time_scale: float

    @property
    def settings(self) -> Settings: ...

    def client(self, service: str, *, config: Any = None) -> Any: ...


def embedded_parameters(time_scale: float) -> dict[str, str]:
    """Stack parameters that keep the loop's timing sane under compressed time.

    Each invocation gets ProcessTimeoutSeconds / k: the reserve for the hand-over shrinks with it (a tenth of it,
    2..15 s) so a loop still polls most of its invocation. The heartbeat and the stale threshold are compressed
    too, but the stale threshold keeps room for several heartbeats.
    """
    if time_scale <= 0:
        raise ConfigError(f"time scale must be positive, got {time_scale:g}")
    if time_scale == 1.0:
        return {}
    invocation_s = PROCESS_TIMEOUT_S / time_scale
    reserve_s = min(RESERVE_MAX_S, max(RESERVE_MIN_S, math.floor(invocation_s / 10)))
    return {
        "ProcessTimeoutSeconds": str(PROCESS_TIMEOUT_S),
        "ReserveSeconds": str(reserve_s),
        "HeartbeatSeconds": str(max(1, round(defaults.HEARTBEAT_S / time_scale))),
        "StaleAfterSeconds": str(max(MIN_STALE_AFTER_S, round(defaults.STALE_AFTER_S / time_scale))),
    }


@dataclass(frozen=True)
class DemoOptions:
    messages: int = DEFAULT_MESSAGES
    min_loops: int = DEFAULT_MIN_LOOPS
    max_loops: int = DEFAULT_MAX_LOOPS
    backlog_per_loop: int = defaults.BACKLOG_PER_LOOP
    deadline_s: float = DEFAULT_DEADLINE_S  # from run() to giving up
    tail_s: float = 3.0  # keep sampling this long after settling, so the chart shows the loops staying at min
    sample_every_s: float = SAMPLE_EVERY_S
    visibility_timeout_s: int = 15  # a batch whose loop died comes back within the demo, not after a minute
    max_receive_count: int = 5
    queue_prefix: str = "sqsloops-demo"
    workdir: Path = field(default_factory=Path.cwd)  # where the ledger file goes

    def validate(self) -> DemoOptions:
        if self.messages < 1:
            raise ConfigError(f"messages must be at least 1, got {self.messages}")
        if not 0 <= self.min_loops <= self.max_loops or self.max_loops < 1:
            raise ConfigError(f"need 0 <= min loops <= max loops and max >= 1, got {self.min_loops}..{self.max_loops}")
        if self.backlog_per_loop < 1:
            raise ConfigError(f"backlog per loop must be at least 1, got {self.backlog_per_loop}")
        if self.deadline_s <= 0:
            raise ConfigError(f"deadline must be positive, got {self.deadline_s:g}")
        if self.tail_s < 0:
            raise ConfigError(f"tail must not be negative, got {self.tail_s:g}")
        return self


@dataclass(frozen=True)
class Sample:
    """Depth and loops at one moment; at_s counts from the start of the burst."""

    at_s: float
    visible: int
    in_flight: int
    delayed: int
    loops: int
    processed: int  # ledger lines so far, redeliveries included

    @property
    def depth(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class Progress:
    """What the live view shows."""

    phase: str
    sent: int
    messages: int
    elapsed_s: float  # since the burst started (0 before)
    alarm_period_s: float  # real seconds
    sample: Sample | None = None


@dataclass(frozen=True)
class DemoResult:
    """The run's numbers. Durations are real seconds from the start of the burst; None when it never happened."""

    options: DemoOptions
    queue_url: str
    time_scale: float
    alarm_period_s: float  # real seconds: the template's AlarmPeriodSeconds / time_scale
    sent: int
    processed: int  # distinct messages the handler finished
    duplicates: int  # further completions of the same messages
    in_dlq: int
    left_in_queue: int
    peak_loops: int
    time_to_peak_s: float | None
    time_to_drain_s: float | None
    time_to_min_s: float | None
    burst_sent_s: float | None  # when the last message of the burst was sent
    run_s: float  # from registration to the end
    converged: bool
    samples: tuple[Sample, ...]

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.processed - self.in_dlq - self.left_in_queue)

    @property
    def failure(self) -> str | None:
        """One line saying why the demo failed, or None."""
        if self.lost:
            return f"{self.lost} of {self.sent} messages lost (neither processed nor in the dead-letter queue)"
        if not self.converged:
            last = self.samples[-1] if self.samples else None
            where = f": depth {last.depth}, loops {last.loops} (min {self.options.min_loops})" if last else ""
            return f"did not drain and scale back to min loops within {self.options.deadline_s:g} s{where}"
        return None

    def periods(self, seconds: float) -> float:
        return seconds / self.alarm_period_s if self.alarm_period_s > 0 else math.nan

    def summary(self, *, wall_s: float | None = None) -> list[tuple[str, str]]:
        """(label, value) rows; `label: value` lines are the greppable form."""

        def duration(seconds: float | None) -> str:
            if seconds is None:
                return "never"
            return f"{seconds:.1f} s ({self.periods(seconds):.1f} alarm periods)"

        rows = [
            ("sent", str(self.sent)),
            ("processed", str(self.processed)),
            ("duplicates", str(self.duplicates)),
            ("in dlq", str(self.in_dlq)),
        ]
        if self.left_in_queue:
            rows.append(("left in queue", str(self.left_in_queue)))
        rows += [
            ("lost", str(self.lost)),
            ("loops", f"min {self.options.min_loops}, max {self.options.max_loops}"),
            ("peak loops", str(self.peak_loops)),
            ("time to peak", duration(self.time_to_peak_s)),
            ("time to drain", duration(self.time_to_drain_s)),
            ("time back to min", duration(self.time_to_min_s)),
            ("alarm period", f"{self.alarm_period_s:.1f} s (time x{self.time_scale:g})"),
        ]
        if wall_s is not None:
            rows.append(("wall time", f"{wall_s:.1f} s"))
        return rows


class Demo:
    """One demo run against a started embedded stack. run() blocks; progress() may be read from another thread."""

    def __init__(self, stack: DemoStack, options: DemoOptions | None = None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.options = (options or DemoOptions()).validate()
        self._stack = stack
        self._clock = clock
        self._sqs = stack.client("sqs")
        self._lambda = stack.client("lambda")
        self.settings = settings = stack.settings
        root = OpsRoot(settings, clients=Clients(stack.client), clock=clock)
        self.registrations = root.admin
        self._tokens = root.tokens
        self.alarm_period_s = settings.alarm_period_s / stack.time_scale
        self.queue_url = ""
        self._lock = threading.Lock()
        self._phase = STARTING
        self._sent = 0
        self._samples: list[Sample] = []
        self._burst_at: float | None = None
        self._burst_sent_s: float | None = None
        self._ledger: Ledger | None = None

    # ---------------------------------------------------------------- what the view reads

    def progress(self) -> Progress:
        with self._lock:
            sample = self._samples[-1] if self._samples else None
            elapsed = 0.0 if self._burst_at is None else self._clock.monotonic() - self._burst_at
            return Progress(self._phase, self._sent, self.options.messages, elapsed, self.alarm_period_s, sample)

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    # ---------------------------------------------------------------- the run

    def run(self) -> DemoResult:
        """Set up, send the burst, wait for drain and scale-down, count. Cleans up (deregisters) on the way out."""
        options = self.options
        started = self._clock.monotonic()
        give_up_at = started + options.deadline_s
        self._set_phase(REGISTERING)
        self.queue_url, dlq_url = self._create_queues()
        self._ledger = Ledger(options.workdir / f"ledger-{self.queue_url.rsplit('/', 1)[-1]}.txt")
        restore_env = self._point_ledger(self._ledger.path)
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=self._sample_until, args=(stop_sampling,), name="demo-sampler", daemon=True)
        converged = False
        try:
            self.registrations.register(
                QueueConfig(
                    queue_url=self.queue_url,
                    handler=HANDLER,
                    min_loops=options.min_loops,
                    max_loops=options.max_loops,
                    backlog_per_loop=options.backlog_per_loop,
                    visibility_timeout_s=options.visibility_timeout_s,
                )
            )
            with self._lock:
                self._burst_at = self._clock.monotonic()
            self._take_sample()
            sampler.start()
            self._set_phase(SENDING)
            self._send_burst()
            self._burst_sent_s = self._clock.monotonic() - self._burst_at
            self._set_phase(DRAINING)
            converged = self._wait_until_settled(self._burst_sent_s, give_up_at)
            if converged:
                self._clock.sleep(min(options.tail_s, max(0.0, give_up_at - self._clock.monotonic())))
            self._stop_sampler(sampler, stop_sampling)
            self._take_sample()  # the last word on depth and loops, before deregistering takes the loops away
        finally:
            self._stop_sampler(sampler, stop_sampling)
            self._set_phase(CLEANING_UP)
            self._cleanup(restore_env)
        self._set_phase(DONE)
        return self._result(dlq_url, converged=converged, run_s=self._clock.monotonic() - started)

    def _create_queues(self) -> tuple[str, str]:
        options = self.options
        suffix = f"{int(self._clock.now() * 1000) % 10**8:08d}"
        name = f"{options.queue_prefix}-{suffix}"
        dlq_url = self._sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = self._sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(options.max_receive_count)}
        queue_url = self._sqs.create_queue(
            QueueName=name,
            Attributes={
                "RedrivePolicy": json.dumps(policy),
                "VisibilityTimeout": str(options.visibility_timeout_s),
            },
        )["QueueUrl"]
        return str(queue_url), str(dlq_url)

    def _point_ledger(self, path: Path) -> dict[str, str]:
        """Set the ledger variable on the process function; returns the variables to restore afterwards.

        The Lambda executor replaces warm workers whose environment no longer matches, so new loops see it.
        """
        function = self._stack.settings.process_function
        current = self._lambda.get_function_configuration(FunctionName=function)
        variables = {k: str(v) for k, v in current.get("Environment", {}).get("Variables", {}).items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        self._lambda.update_function_configuration(
            FunctionName=function, Environment={"Variables": {**variables, LEDGER_ENV: str(path)}}
        )
        return variables

    def _send_burst(self) -> None:
        total = self.options.messages
        chunks = [range(start, min(start + SEND_BATCH, total)) for start in range(0, total, SEND_BATCH)]
        with ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="demo-send") as pool:
            for sent in pool.map(self._send_chunk, chunks):
                with self._lock:
                    self._sent += sent

    def _send_chunk(self, seqs: range) -> int:
        pending = {str(seq): json.dumps({"seq": seq}) for seq in seqs}
        for _ in range(SEND_ATTEMPTS):
            response = self._sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": key, "MessageBody": body} for key, body in pending.items()],
            )
            for entry in response.get("Successful", []):
                pending.pop(entry["Id"], None)
            if not pending:
                break
        if pending:
            raise TransientAwsError(
                f"could not send {len(pending)} messages of the burst (SendMessageBatch kept failing)"
            )
        return len(seqs)

    def _wait_until_settled(self, sent_at_s: float, give_up_at: float) -> bool:
        """True once a sample taken after the burst shows an empty queue (in flight included) and min_loops loops."""
        drained = False
        while self._clock.monotonic() < give_up_at:
            with self._lock:
                sample = self._samples[-1] if self._samples else None
            if sample is not None and sample.at_s >= sent_at_s and sample.depth == 0:
                if not drained:
                    drained = True
                    self._set_phase(SCALING_DOWN)
                if sample.loops == self.options.min_loops:
                    return True
            self._clock.sleep(self.options.sample_every_s / 2)
        return False

    # ---------------------------------------------------------------- sampling

    def _sample_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.options.sample_every_s):
            try:
                self._take_sample()
            except Exception:  # noqa: S112 - a missed sample is a gap in the chart, never a reason to stop
                continue

    @staticmethod
    def _stop_sampler(sampler: threading.Thread, stop: threading.Event) -> None:
        stop.set()
        if sampler.is_alive():
            sampler.join(timeout=5)

    def _take_sample(self) -> None:
        depth: Depth = queue_depth(self._sqs, self.queue_url)
        loops = self._tokens.count(self.queue_url)
        processed = self._ledger.lines() if self._ledger else 0
        with self._lock:
            at_s = 0.0 if self._burst_at is None else self._clock.monotonic() - self._burst_at
            self._samples.append(Sample(at_s, depth.visible, depth.in_flight, depth.delayed, loops, processed))

    # ---------------------------------------------------------------- the end

    def _cleanup(self, restore_env: dict[str, str]) -> None:
        """Deregister (the loops stop at their next heartbeat) and take the ledger variable off the function."""
        try:
            if self.queue_url and self.registrations.registry.find(self.queue_url) is not None:
                self.registrations.deregister(self.queue_url)
        finally:
            self._lambda.update_function_configuration(
                FunctionName=self._stack.settings.process_function, Environment={"Variables": restore_env}
            )

    def _result(self, dlq_url: str, *, converged: bool, run_s: float) -> DemoResult:
        samples = tuple(self._samples)
        sent = self._sent
        counts = self._ledger.counts() if self._ledger else {}
        wanted = {str(seq) for seq in range(sent)}
        processed = sum(1 for key in counts if key in wanted)
        duplicates = sum(count - 1 for key, count in counts.items() if key in wanted)
        last = samples[-1] if samples else None
        peak = max((s.loops for s in samples), default=0)
        time_to_peak = next((s.at_s for s in samples if s.loops == peak), None)
        sent_at_s = self._burst_sent_s if self._burst_sent_s is not None else math.inf
        time_to_drain = next((s.at_s for s in samples if s.at_s >= sent_at_s and s.depth == 0), None)
        time_to_min = None
        if converged and time_to_drain is not None:
            time_to_min = next(
                (s.at_s for s in samples if s.at_s >= time_to_drain and s.loops == self.options.min_loops), None
            )
        return DemoResult(
            options=self.options,
            queue_url=self.queue_url,
            time_scale=self._stack.time_scale,
            alarm_period_s=self.alarm_period_s,
            sent=sent,
            processed=processed,
            duplicates=duplicates,
            in_dlq=queue_depth(self._sqs, dlq_url).visible,
            left_in_queue=last.depth if last else 0,
            peak_loops=peak,
            time_to_peak_s=time_to_peak,
            time_to_drain_s=time_to_drain,
            time_to_min_s=time_to_min,
            burst_sent_s=self._burst_sent_s,
            run_s=run_s,
            converged=converged,
            samples=samples,
        )


class Ledger:
    """The file the `ledger` handler appends to: one line per processed message, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._counts: dict[str, int] = {}
        self._lines = 0
        self._lock = threading.Lock()

    def _read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            key = raw.decode(errors="replace").strip()
            if key:
                self._counts[key] = self._counts.get(key, 0) + 1
                self._lines += 1

    def lines(self) -> int:
        """Completed lines so far (redeliveries included)."""
        with self._lock:
            self._read()
            return self._lines

    def counts(self) -> dict[str, int]:
        """How many times each identity was processed."""
        with self._lock:
            self._read()
            return dict(self._counts)


def format_summary(rows: Sequence[tuple[str, str]]) -> list[str]:
    """The greppable form: `label: value`, one per line."""
    return [f"{label}: {value}" for label, value in rows]
