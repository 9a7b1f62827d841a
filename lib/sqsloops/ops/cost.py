"""What a workload costs a month on sqsloops, next to Lambda's native SQS trigger: an estimate, never a bill.

Pure arithmetic, no AWS call. Every number it rests on is either a price in sqsloops.ops.prices (with its source) or a
named assumption below (with its default and why), so a reader can check each line by hand and change any of them.

The model, in short:
- A loop handles its messages one after another in its own process (a python: handler), so it moves at most
  1 / (handler_s + per-batch overhead / messages per batch) messages a second. While busy, a queue runs
  ceil(rate / that) loops (never fewer than min_loops, never more than max_loops); while idle, min_loops run.
- A running loop is billed for all of its wall time, long-poll waits included (GB-seconds = memory x seconds). It
  recurses every (timeout - reserve) seconds, proves its token every heartbeat (one DynamoDB write) and re-reads its
  registration every config TTL (one eventually consistent read). Busy, it makes one ReceiveMessage and one
  DeleteMessageBatch per batch; idle, one empty long poll per heartbeat (the poll is cut short to heartbeat on time).
- Around the loops: the restart sweep every minute (a short invocation, small scans, one GetQueueAttributes), the
  queue's depth alarms and the stack's two alarms (alarm-months), and per busy window the alarm transitions that
  scale loops up and down (an SNS publish, a short scale function, token writes, a loop start).
- The native trigger: one invocation per batch, billed per 1 ms for the batch's handler time plus a small overhead;
  the event source mapping's pollers make one ReceiveMessage and one DeleteMessageBatch per batch, and while the queue
  is idle keep long-polling it (five pollers, one 20 s poll each). No DynamoDB, no alarms, no SNS.

Left out, for both: CloudWatch Logs (depends on what the handler logs; Lambda adds START/END/REPORT lines per
invocation, which weighs on the native trigger), data transfer (in-region: free), free tiers, a lambda: handler's
own invocations, retries of failed messages, and the producer's SendMessage calls (the same either way).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sqsloops import defaults
from sqsloops.errors import ConfigError
from sqsloops.ops.alarms import alarm_steps
from sqsloops.ops.prices import PRICES, Price
from sqsloops.registry import QueueConfig

SECONDS_PER = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86_400,
    "day": 86_400,
}
_RATE = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*(?:/\s*([a-z]+?)s?)?\s*$", re.IGNORECASE)
MAX_RATE_PER_S = 10_000_000.0

# Line items, in the order they are shown, and which line each price is billed on.
LINE_ITEMS: dict[str, str] = {
    "lambda_compute": "Lambda compute",
    "lambda_requests": "Lambda requests",
    "sqs": "SQS",
    "dynamodb": "DynamoDB",
    "cloudwatch": "CloudWatch",
    "sns": "SNS",
    "eventbridge": "EventBridge",
}
PRICE_LINE: dict[str, str] = {
    "lambda_arm_gb_s": "lambda_compute",
    "lambda_request": "lambda_requests",
    "sqs_request": "sqs",
    "dynamodb_write_unit": "dynamodb",
    "dynamodb_read_unit": "dynamodb",
    "dynamodb_storage_gb_month": "dynamodb",  # the Jobs table's rows (tracking_cost); the core tables are tiny
    "cloudwatch_alarm_month": "cloudwatch",
    "cloudwatch_custom_metric_month": "cloudwatch",
    "sns_publish": "sns",
    "sns_lambda_delivery": "sns",
    "eventbridge_scheduled_rule": "eventbridge",
}
EVENTUALLY_CONSISTENT_READ_UNITS = 0.5  # a GetItem of an item under 4 KB
NATIVE_IDLE_POLLERS_SOURCE = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html"


def parse_rate(text: str) -> float:
    """'50/s', '3000/min', '1e6/day', '12 / hour' (a bare number is per second) -> messages per second."""
    match = _RATE.match(text)
    unit = (match.group(2) or "s").lower() if match else ""
    if match is None or unit not in SECONDS_PER:
        raise ConfigError(f"rate must look like 50/s, 3000/min, 20000/h or 1e6/day, got {text!r}")
    value = float(match.group(1).replace(",", "").replace("_", "")) / SECONDS_PER[unit]
    if not math.isfinite(value) or value > MAX_RATE_PER_S:
        raise ConfigError(f"rate must be at most {MAX_RATE_PER_S:,.0f}/s, got {text!r}")
    return value


@dataclass(frozen=True)
class Workload:
    """What the queue sees and how it is registered: the command's options."""

    rate_per_s: float
    handler_ms: float
    memory_mb: int
    min_loops: int = defaults.MIN_LOOPS
    max_loops: int | None = None  # None: as many as the rate needs (and at least the registration default)
    batch_size: int = defaults.BATCH_SIZE
    busy_hours_per_day: float = 24.0

    def validate(self) -> Workload:
        _check("rate_per_s", self.rate_per_s, 0, MAX_RATE_PER_S)
        _check("handler_ms", self.handler_ms, 0, 900_000, low_open=True)
        _check("memory_mb", self.memory_mb, 128, 10_240)
        _check("min_loops", self.min_loops, 0, defaults.MAX_LOOPS_LIMIT)
        _check("batch_size", self.batch_size, 1, 10)
        _check("busy_hours_per_day", self.busy_hours_per_day, 0, 24)
        if self.max_loops is not None:
            _check("max_loops", self.max_loops, 1, defaults.MAX_LOOPS_LIMIT)
            if self.max_loops < self.min_loops:
                raise ConfigError(f"min_loops ({self.min_loops}) must not exceed max_loops ({self.max_loops})")
        return self


def _assume(default: float, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Assumptions:
    """Every number the model takes for granted, each with its default and the reason for it."""

    hours_per_month: float = _assume(730.0, "the month the estimate covers, in hours (as AWS pricing pages count)")
    loop_batch_overhead_ms: float = _assume(
        30.0, "a loop's time per batch besides the handler: the ReceiveMessage and DeleteMessageBatch round trips"
    )
    batch_fill: float = _assume(
        1.0,
        "share of batch_size each receive brings while busy, for both sides; full batches favour the native "
        "trigger, which pays a request and an invoke overhead per batch",
    )
    process_timeout_s: float = _assume(900.0, "timeout of one loop invocation (template ProcessTimeoutSeconds)")
    reserve_s: float = _assume(defaults.RESERVE_S, "a loop recurses when this much of its invocation is left")
    heartbeat_s: float = _assume(defaults.HEARTBEAT_S, "a loop proves its token this often: one write (item < 1 KB)")
    config_ttl_s: float = _assume(
        defaults.CONFIG_TTL_S, "a loop re-reads its registration this often (eventually consistent: 0.5 read unit)"
    )
    idle_poll_s: float = _assume(
        float(min(defaults.WAIT_S, defaults.HEARTBEAT_S)),
        "an idle loop's empty long poll lasts this long (cut to the next heartbeat)",
    )
    busy_periods_per_day: float = _assume(
        1.0, "busy windows a day when busy_hours_per_day < 24; each scales loops up and back down"
    )
    scale_down_lag_s: float = _assume(
        float(defaults.ALARM_PERIOD_S + defaults.HEARTBEAT_S),
        "extra loops run this long after a busy window: an alarm period to go OK, a heartbeat to notice",
    )
    restart_interval_s: float = _assume(60.0, "the restart sweep runs this often (template RestartSchedule)")
    sweep_ms: float = _assume(100.0, "billed duration of one restart sweep")
    sweep_read_units: float = _assume(
        4.0, "read units per sweep: Queues scanned twice, Loops once, the queue's tokens queried (1 each when small)"
    )
    scale_fn_ms: float = _assume(200.0, "billed duration of one scale_up or scale_down invocation")
    control_memory_mb: int = _assume(256, "memory of the restart and scale functions (template Globals)")
    alarm_steps: int = _assume(defaults.ALARM_STEPS, "most depth alarms per queue")
    stack_alarms: int = _assume(2, "the stack's own alarms (process concurrency, restart errors), for all queues")
    native_invoke_overhead_ms: float = _assume(
        5.0, "billed time of a native invocation besides the handler (event decoding, batch response)"
    )
    native_idle_pollers: int = _assume(
        5,
        "pollers the event source mapping keeps long-polling an idle queue (AWS documents five, and as few as two "
        f"on a quiet queue: {NATIVE_IDLE_POLLERS_SOURCE})",
    )
    native_poll_wait_s: float = _assume(20.0, "each idle poller's long poll (the SQS maximum)")

    def validate(self) -> Assumptions:
        for item in fields(self):
            _check(item.name, getattr(self, item.name), 0, math.inf)
        for name in (
            "hours_per_month",
            "heartbeat_s",
            "config_ttl_s",
            "idle_poll_s",
            "restart_interval_s",
            "native_poll_wait_s",
            "batch_fill",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be above 0")
        if self.batch_fill > 1:
            raise ConfigError(f"batch_fill must be at most 1, got {self.batch_fill:g}")
        if self.process_timeout_s <= self.reserve_s:
            raise ConfigError("process_timeout_s must exceed reserve_s")
        return self

    def with_values(self, values: Mapping[str, str]) -> Assumptions:
        """A copy with some assumptions set from text (`--assume name=value`); unknown names are refused."""
        known = {item.name: item.default for item in fields(self)}
        changes: dict[str, Any] = {}
        for name, text in values.items():
            if name not in known:
                raise ConfigError(f"unknown assumption {name!r} (known: {', '.join(known)})")
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"assumption {name} must be a number, got {text!r}") from None
            if isinstance(known[name], int):
                if not value.is_integer():
                    raise ConfigError(f"assumption {name} must be a whole number, got {text!r}")
                changes[name] = int(value)
            else:
                changes[name] = value
        return replace(self, **changes).validate()

    def described(self) -> list[tuple[str, float, str]]:
        """(name, value, why) for every assumption, in declaration order."""
        return [(item.name, getattr(self, item.name), item.metadata["doc"]) for item in fields(self)]


def _check(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        upper = "" if math.isinf(high) else f" and at most {high:,g}"
        raise ConfigError(f"{name} must be {bound}{upper}, got {value:g}")


@dataclass(frozen=True)
class LoopPlan:
    """How many loops the workload needs, and for how long: the quantities both estimates start from."""

    month_s: float
    busy_s: float
    idle_s: float
    messages: float
    messages_per_batch: float
    batches: float
    capacity_per_loop: float  # messages a second one loop moves at most
    loops_needed: int
    busy_loops: int
    idle_loops: int
    max_loops: int  # the registration's max_loops the alarms are built for
    scale_periods: float  # busy windows a month that start and stop loops
    linger_s: float  # how long the extra loops outlive each busy window
    alarm_levels: tuple[int, ...]
    warnings: tuple[str, ...]

    @property
    def loops_started(self) -> float:
        return (self.busy_loops - self.idle_loops) * self.scale_periods

    @property
    def loop_s(self) -> float:
        """Loop wall time a month: what Lambda bills, waits and all."""
        return self.busy_loops * self.busy_s + self.idle_loops * self.idle_s + self.loops_started * self.linger_s

    @property
    def empty_poll_loop_s(self) -> float:
        """Loop time spent long-polling an empty queue."""
        return self.idle_loops * self.idle_s + self.loops_started * self.linger_s

    @property
    def alarm_transitions(self) -> float:
        """ALARM and OK transitions a month: the alarms between the idle and busy loop counts, up and back down."""
        crossed = sum(1 for level in self.alarm_levels if self.idle_loops < level <= self.busy_loops)
        return 2 * crossed * self.scale_periods

    def as_dict(self) -> dict[str, Any]:
        return {
            **{key: value for key, value in asdict(self).items() if key != "warnings"},
            "alarm_levels": list(self.alarm_levels),
            "loop_s": self.loop_s,
            "loops_started": self.loops_started,
            "alarm_transitions": self.alarm_transitions,
        }


def plan_loops(workload: Workload, assumptions: Assumptions) -> LoopPlan:
    """Loops while busy and idle, busy and idle seconds, messages and batches of a month."""
    w, a = workload.validate(), assumptions.validate()
    month_s = a.hours_per_month * 3600
    busy_s = month_s * w.busy_hours_per_day / 24 if w.rate_per_s > 0 else 0.0
    idle_s = month_s - busy_s
    messages = w.rate_per_s * busy_s
    per_batch = max(1.0, w.batch_size * a.batch_fill)
    capacity = 1 / (w.handler_ms / 1000 + a.loop_batch_overhead_ms / 1000 / per_batch)
    needed = math.ceil(w.rate_per_s / capacity - 1e-9) if busy_s > 0 else 0
    warnings: list[str] = []
    busy_loops = max(needed, w.min_loops)
    if w.max_loops is not None and busy_loops > w.max_loops:
        warnings.append(
            f"max_loops {w.max_loops} moves at most {w.max_loops * capacity:,.1f} msgs/s, under the rate of "
            f"{w.rate_per_s:,.1f}/s: the backlog grows (costed at {w.max_loops} loops)"
        )
        busy_loops = w.max_loops
    if busy_loops > defaults.MAX_LOOPS_LIMIT:
        warnings.append(f"{busy_loops} loops is above the registration limit of {defaults.MAX_LOOPS_LIMIT}")
    max_loops = w.max_loops if w.max_loops is not None else max(defaults.MAX_LOOPS, busy_loops, w.min_loops)
    scaling = 0 < busy_s < month_s and busy_loops > w.min_loops
    periods = a.busy_periods_per_day * a.hours_per_month / 24 if scaling else 0.0
    linger_s = min(a.scale_down_lag_s, idle_s / periods) if periods else 0.0
    config = QueueConfig(
        queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/cost-estimate",
        handler="python:cost.estimate:handler",
        min_loops=w.min_loops,
        max_loops=max_loops,
    )
    levels = tuple(step.level for step in alarm_steps(config, max_steps=a.alarm_steps))
    return LoopPlan(
        month_s=month_s,
        busy_s=busy_s,
        idle_s=idle_s,
        messages=messages,
        messages_per_batch=per_batch,
        batches=messages / per_batch,
        capacity_per_loop=capacity,
        loops_needed=needed,
        busy_loops=busy_loops,
        idle_loops=w.min_loops,
        max_loops=max_loops,
        scale_periods=periods,
        linger_s=linger_s,
        alarm_levels=levels,
        warnings=tuple(warnings),
    )


Usage = dict[str, float]  # price key -> billed quantity a month


@dataclass(frozen=True)
class Estimate:
    """One way of running the workload: billed quantities per part (loops, sweep, ...), priced into line items."""

    name: str
    parts: dict[str, Usage]
    prices: Mapping[str, Price] = field(default_factory=lambda: PRICES, repr=False)

    @property
    def usage(self) -> Usage:
        total: Usage = {}
        for usage in self.parts.values():
            for key, quantity in usage.items():
                total[key] = total.get(key, 0.0) + quantity
        return total

    def cost_of(self, usage: Usage) -> float:
        return sum(quantity * self.prices[key].usd_per_unit for key, quantity in usage.items())

    @property
    def line_items(self) -> dict[str, float]:
        lines = dict.fromkeys(LINE_ITEMS, 0.0)
        for key, quantity in self.usage.items():
            lines[PRICE_LINE[key]] += quantity * self.prices[key].usd_per_unit
        return lines

    @property
    def total(self) -> float:
        return sum(self.line_items.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "line_items": self.line_items,
            "total": self.total,
            "usage": self.usage,
            "parts": {name: {"usage": usage, "cost": self.cost_of(usage)} for name, usage in self.parts.items()},
        }


def _gb(memory_mb: float) -> float:
    return memory_mb / 1024


def sqsloops_estimate(
    workload: Workload, assumptions: Assumptions, plan: LoopPlan, prices: Mapping[str, Price] = PRICES
) -> Estimate:
    a = assumptions
    invocations = plan.loop_s / (a.process_timeout_s - a.reserve_s) + plan.loops_started
    loops: Usage = {
        "lambda_arm_gb_s": plan.loop_s * _gb(workload.memory_mb),
        "lambda_request": invocations,
        "sqs_request": 2 * plan.batches + plan.empty_poll_loop_s / a.idle_poll_s,  # receive + delete; empty polls
        # a heartbeat every heartbeat_s plus the last one of each invocation, which flushes its counters
        "dynamodb_write_unit": plan.loop_s / a.heartbeat_s + invocations,
        "dynamodb_read_unit": plan.loop_s / a.config_ttl_s * EVENTUALLY_CONSISTENT_READ_UNITS,
    }
    sweeps = plan.month_s / a.restart_interval_s
    sweep: Usage = {
        "lambda_arm_gb_s": sweeps * math.ceil(a.sweep_ms) / 1000 * _gb(a.control_memory_mb),
        "lambda_request": sweeps,
        "sqs_request": sweeps,  # GetQueueAttributes: the queue's depth, for reconcile
        "dynamodb_read_unit": sweeps * a.sweep_read_units,
        "eventbridge_scheduled_rule": sweeps,
    }
    transitions = plan.alarm_transitions
    scaling: Usage = {
        "sns_publish": transitions,
        "sns_lambda_delivery": transitions,
        "lambda_arm_gb_s": transitions * math.ceil(a.scale_fn_ms) / 1000 * _gb(a.control_memory_mb),
        "lambda_request": transitions,
        "sqs_request": transitions,  # GetQueueAttributes: the live depth behind the alarm
        "dynamodb_read_unit": transitions * 2,  # the registration (scan of a small table) and the queue's tokens
        # a token put when a loop starts; retired when it stops, and deleted by the sweep after its grace
        "dynamodb_write_unit": 3 * plan.loops_started,
    }
    alarms: Usage = {"cloudwatch_alarm_month": len(plan.alarm_levels) + a.stack_alarms}
    return Estimate(
        "sqsloops",
        {"loops": loops, "restart sweep": sweep, "scaling": scaling, "alarms": alarms},
        prices,
    )


def native_estimate(
    workload: Workload, assumptions: Assumptions, plan: LoopPlan, prices: Mapping[str, Price] = PRICES
) -> Estimate:
    a = assumptions
    billed_ms = math.ceil(plan.messages_per_batch * workload.handler_ms + a.native_invoke_overhead_ms)
    invocations: Usage = {
        "lambda_arm_gb_s": plan.batches * billed_ms / 1000 * _gb(workload.memory_mb),
        "lambda_request": plan.batches,
        "sqs_request": 2 * plan.batches,  # the poller's ReceiveMessage and DeleteMessageBatch per batch
    }
    pollers: Usage = {"sqs_request": a.native_idle_pollers * plan.idle_s / a.native_poll_wait_s}
    return Estimate("native SQS trigger", {"invocations": invocations, "idle pollers": pollers}, prices)


@dataclass(frozen=True)
class Comparison:
    workload: Workload
    assumptions: Assumptions
    plan: LoopPlan
    sqsloops: Estimate
    native: Estimate

    @property
    def ratio(self) -> float | None:
        """sqsloops' monthly total over the native trigger's (None when the native trigger costs nothing)."""
        return self.sqsloops.total / self.native.total if self.native.total > 0 else None

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.plan.warnings

    def as_dict(self) -> dict[str, Any]:
        prices = {key: self.sqsloops.prices[key] for key in PRICE_LINE}
        return {
            "workload": asdict(self.workload),
            "assumptions": asdict(self.assumptions),
            "loops": self.plan.as_dict(),
            "sqsloops": self.sqsloops.as_dict(),
            "native": self.native.as_dict(),
            "ratio": self.ratio,
            "warnings": list(self.warnings),
            "prices": {key: price.as_dict() for key, price in prices.items()},
        }


def compare(
    workload: Workload, assumptions: Assumptions | None = None, prices: Mapping[str, Price] = PRICES
) -> Comparison:
    """The monthly cost of the workload on sqsloops and on the native SQS trigger, side by side."""
    a = assumptions or Assumptions()
    plan = plan_loops(workload, a)
    return Comparison(
        workload=workload,
        assumptions=a,
        plan=plan,
        sqsloops=sqsloops_estimate(workload, a, plan, prices),
        native=native_estimate(workload, a, plan, prices),
    )


# --- what the Jobs table costs (track=True) ----------------------------------------------------------------------

# Writes per tracked job on the success path, counted by `make bench-jobs` (at the server, not estimated): the row
# written at enqueue (queued; 25 a BatchWriteItem request from enqueue_many, still one write unit each), then its
# start and success in one write (JobStore.mark_ran; a job running longer than jobs.execution.RUNNING_MARK_AFTER_S
# adds a `running` write). A retry adds writes (running, retrying); a unique key adds its claim and, for until_*
# scopes, its release. The by_job_state index is written too (DynamoDB bills an index's writes like the table's):
# one write for the new row, then two for each state change, whose sort key moves (a delete and a put in the index;
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Writes). The runner reads a batch's
# rows before it runs (BatchGetItem, strongly consistent: one read unit per row under 4 KB).
TRACKED_JOB_WRITES = 2
TRACKED_JOB_READS = 1
TRACKED_ROW_KB = 1.0  # a row with a small result fits one write unit (1 KB); a larger result costs one unit per KB
TRACKED_ROW_DAYS = 7.0  # jobs.store.DEFAULT_TTL_S: how long a finished row is kept before its TTL purges it
DAYS_PER_MONTH = 730 / 24


@dataclass(frozen=True)
class TrackingCost:
    """What `track=True` adds per million jobs: the Jobs table's writes, and the rows' storage until their TTL."""

    writes_per_job: int  # to the table
    index_writes_per_job: int  # to the by_job_state index
    reads_per_job: int
    row_kb: float
    retention_days: float
    writes_usd: float
    reads_usd: float
    storage_usd: float

    @property
    def total_usd(self) -> float:
        return self.writes_usd + self.reads_usd + self.storage_usd

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd, "per": 1_000_000}


def tracking_cost(
    *,
    writes_per_job: int = TRACKED_JOB_WRITES,
    reads_per_job: int = TRACKED_JOB_READS,
    row_kb: float = TRACKED_ROW_KB,
    retention_days: float = TRACKED_ROW_DAYS,
    prices: Mapping[str, Price] = PRICES,
) -> TrackingCost:
    """Per million tracked jobs: write units, table and index (one per started KB of the row, per write), and
    GB-months of storage (the index keeps a copy of the row's projected attributes: counted as a whole row)."""
    index_writes = 1 + 2 * (writes_per_job - 1)
    units = (writes_per_job + index_writes) * max(1, math.ceil(row_kb))
    gb_months = 2 * 1_000_000 * row_kb / (1024 * 1024) * retention_days / DAYS_PER_MONTH
    return TrackingCost(
        writes_per_job=writes_per_job,
        index_writes_per_job=index_writes,
        reads_per_job=reads_per_job,
        row_kb=row_kb,
        retention_days=retention_days,
        writes_usd=1_000_000 * units * prices["dynamodb_write_unit"].usd_per_unit,
        reads_usd=1_000_000 * reads_per_job * max(1, math.ceil(row_kb / 4)) * prices["dynamodb_read_unit"].usd_per_unit,
        storage_usd=gb_months * prices["dynamodb_storage_gb_month"].usd_per_unit,
    )
