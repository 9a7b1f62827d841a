"""The cost model's arithmetic, checked against sums done by hand (written out next to each assertion).

Prices used below (sqsloops.ops.prices, us-east-1): Lambda arm64 $0.0000133334 per GB-second and $0.20 per million
requests; SQS $0.40 per million requests; DynamoDB on-demand $0.625 per million write units and $0.125 per million
read units; CloudWatch $0.10 per alarm-month; SNS $0.50 per million publishes. A month is 730 h = 2,628,000 s.
"""

from __future__ import annotations

import math
import re

import pytest

from sqsloops.errors import ConfigError
from sqsloops.ops.cost import (
    LINE_ITEMS,
    PRICE_LINE,
    Assumptions,
    Workload,
    compare,
    parse_rate,
    tracking_cost,
)
from sqsloops.ops.prices import PRICES

MONTH_S = 730 * 3600  # 2,628,000
GB_S = 0.0000133334
PER_REQUEST = 0.20 / 1e6
SQS = 0.40 / 1e6
WRU = 0.625 / 1e6
RRU = 0.125 / 1e6
ALARM = 0.10
SNS = 0.50 / 1e6

# The restart sweep, the same every month whatever the workload: one run a minute.
SWEEPS = MONTH_S / 60  # 43,800
SWEEP_COST = (
    SWEEPS * 0.100 * 0.25 * GB_S  # 100 ms at 256 MB: 1,095 GB-s = $0.0146
    + SWEEPS * PER_REQUEST  # $0.00876
    + SWEEPS * SQS  # one GetQueueAttributes: $0.01752
    + SWEEPS * 4 * RRU  # 4 read units: 175,200 RRU = $0.0219
)  # = $0.06278
ALARMS_COST = (4 + 2) * ALARM  # max_loops 10 -> alarm levels 1, 2, 5, 10; plus the stack's 2 alarms = $0.60


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-9)


# --- sqsloops -----------------------------------------------------------------------------------------------------


def test_one_always_on_loop_is_billed_for_its_whole_wall_time() -> None:
    """1 msg/s, 20 ms, 256 MB: one loop, all month.

    1 loop * 0.25 GB * 2,628,000 s = 657,000 GB-s * $0.0000133334 = $8.76 (waits included).
    """
    # Given a trickle that one loop handles easily
    workload = Workload(rate_per_s=1, handler_ms=20, memory_mb=256)

    # When it is priced
    result = compare(workload)

    # Then one loop runs all month, and its compute is its whole wall time
    loops = result.sqsloops.parts["loops"]
    assert (result.plan.loops_needed, result.plan.busy_loops) == (1, 1)
    assert loops["lambda_arm_gb_s"] == approx(657_000)
    assert loops["lambda_arm_gb_s"] * GB_S == pytest.approx(8.76, abs=0.005)
    # it recurses every 900 - 15 = 885 s: 2,628,000 / 885 = 2,969.5 invocations
    assert loops["lambda_request"] == approx(MONTH_S / 885)
    # 2,628,000 messages in batches of 10: 262,800 receives + 262,800 deletes
    assert loops["sqs_request"] == approx(525_600)
    # a heartbeat every 10 s (262,800) plus a last one per invocation (2,969.5)
    assert loops["dynamodb_write_unit"] == approx(262_800 + MONTH_S / 885)
    # the registration re-read every 30 s, eventually consistent: 87,600 reads * 0.5 = 43,800 read units
    assert loops["dynamodb_read_unit"] == approx(43_800)


def test_steady_workload_line_by_line() -> None:
    """50 msgs/s all day, 20 ms, 256 MB, batches of 10.

    A loop moves at most 1 / (0.020 + 0.030 / 10) = 43.48 msgs/s, so ceil(50 / 43.48) = 2 loops.
    sqsloops:
      compute   2 * 0.25 GB * 2,628,000 s = 1,314,000 GB-s, + 1,095 (sweep) = 1,315,095 * $0.0000133334 = $17.53
      requests  2 * 2,628,000 / 885 = 5,939 invocations + 43,800 sweeps = 49,739 * $0.20/M = $0.0099
      SQS       131,400,000 msgs / 10 = 13,140,000 batches * 2 = 26,280,000 + 43,800 = 26,323,800 * $0.40/M = $10.53
      DynamoDB  writes 2 * 262,800 + 5,939 = 531,539 * $0.625/M = $0.332;
                reads 2 * 87,600 * 0.5 + 175,200 = 262,800 * $0.125/M = $0.033
      CloudWatch 6 alarms * $0.10 = $0.60;  total $29.04
    native: 13,140,000 invocations of 10 * 20 + 5 = 205 ms at 0.25 GB = 673,425 GB-s = $8.98,
      requests 13,140,000 * $0.20/M = $2.63, SQS 26,280,000 * $0.40/M = $10.51;  total $22.12.  Ratio 1.31.
    """
    result = compare(Workload(rate_per_s=50, handler_ms=20, memory_mb=256))

    assert result.plan.capacity_per_loop == approx(1 / 0.023)
    assert (result.plan.busy_loops, result.plan.idle_loops) == (2, 0)
    invocations = 2 * MONTH_S / 885
    mine = result.sqsloops.line_items
    assert mine["lambda_compute"] == approx((1_314_000 + 1_095) * GB_S)
    assert mine["lambda_requests"] == approx((invocations + SWEEPS) * PER_REQUEST)
    assert mine["sqs"] == approx((26_280_000 + SWEEPS) * SQS)
    assert mine["dynamodb"] == approx((525_600 + invocations) * WRU + (87_600 + 175_200) * RRU)
    assert mine["cloudwatch"] == approx(ALARMS_COST)
    assert (mine["sns"], mine["eventbridge"]) == (0, 0)
    assert result.sqsloops.total == pytest.approx(29.04, abs=0.005)

    native = result.native.line_items
    assert native["lambda_compute"] == approx(13_140_000 * 0.205 * 0.25 * GB_S)
    assert native["lambda_requests"] == approx(13_140_000 * PER_REQUEST)
    assert native["sqs"] == approx(26_280_000 * SQS)
    assert native["dynamodb"] == native["cloudwatch"] == native["sns"] == 0
    assert result.native.total == pytest.approx(22.12, abs=0.005)
    assert result.ratio == pytest.approx(29.04 / 22.12, rel=1e-3)


def test_an_idle_queue_without_min_loops_costs_its_alarms_and_the_sweep() -> None:
    """0 msgs/s, min_loops 0: no loop runs. sqsloops: $0.60 of alarms + $0.063 of restart sweep = $0.66.

    The native trigger's five pollers keep long-polling: 5 * 2,628,000 s / 20 s = 657,000 receives * $0.40/M = $0.26.
    """
    result = compare(Workload(rate_per_s=0, handler_ms=20, memory_mb=256))

    assert result.plan.loop_s == 0
    assert result.sqsloops.cost_of(result.sqsloops.parts["loops"]) == 0
    assert result.sqsloops.cost_of(result.sqsloops.parts["scaling"]) == 0
    assert result.sqsloops.line_items["cloudwatch"] == approx(ALARMS_COST)
    assert result.sqsloops.total == approx(ALARMS_COST + SWEEP_COST)
    assert result.native.usage["sqs_request"] == approx(657_000)
    assert result.native.total == approx(657_000 * SQS)


def test_bursty_workload_pays_for_busy_hours_and_one_scale_cycle_a_day() -> None:
    """200 msgs/s for 2 h a day, min_loops 0.

    ceil(200 / 43.48) = 5 loops for 2,628,000 * 2 / 24 = 219,000 s, started and stopped 730 / 24 = 30.42 times a
    month, each time outliving the burst by 70 s: 5 * 219,000 + 5 * 30.42 * 70 = 1,105,645.8 loop-seconds
    * 0.25 GB = 276,411 GB-s = $3.69. Alarm levels 1, 2 and 5 fire and clear each time: 6 * 30.42 = 182.5
    transitions, each an SNS publish and a scale invocation. Native: 43,800,000 msgs / 10 = 4,380,000 invocations;
    its pollers poll the idle 2,409,000 s: 5 * 2,409,000 / 20 = 602,250 receives.
    """
    result = compare(Workload(rate_per_s=200, handler_ms=20, memory_mb=256, busy_hours_per_day=2))

    plan = result.plan
    periods = 730 / 24
    assert (plan.busy_loops, plan.idle_loops) == (5, 0)
    assert (plan.busy_s, plan.idle_s) == (approx(219_000), approx(2_409_000))
    assert plan.loop_s == approx(5 * 219_000 + 5 * periods * 70)
    loops = result.sqsloops.parts["loops"]
    assert loops["lambda_arm_gb_s"] == approx(plan.loop_s * 0.25)
    # one invocation per 885 s of loop time, plus one per loop start
    assert loops["lambda_request"] == approx(plan.loop_s / 885 + 5 * periods)
    # 4,380,000 batches received and deleted, plus the lingering loops' empty polls (5 * 30.42 * 70 / 10)
    assert loops["sqs_request"] == approx(2 * 4_380_000 + 5 * periods * 70 / 10)
    scaling = result.sqsloops.parts["scaling"]
    assert scaling["sns_publish"] == approx(6 * periods)
    assert scaling["lambda_request"] == approx(6 * periods)
    # per loop start: the token put, its retirement, and the sweep's delete after the grace
    assert scaling["dynamodb_write_unit"] == approx(3 * 5 * periods)
    assert result.sqsloops.line_items["sns"] == approx(6 * periods * SNS)

    assert result.native.usage["lambda_request"] == approx(4_380_000)
    assert result.native.parts["idle pollers"]["sqs_request"] == approx(602_250)


@pytest.mark.parametrize(
    ("rate_per_s", "busy_hours", "loops"),
    [(1, 24, 3), (0, 24, 3), (200, 2, 5)],
    ids=["trickle: 3 loops though 1 would do", "idle: 3 loops all month", "bursty: 5 busy, 3 idle"],
)
def test_min_loops_is_a_floor_busy_or_idle(rate_per_s: float, busy_hours: float, loops: int) -> None:
    """min_loops 3: at least 3 loops at every hour; with nothing to do they long-poll, one empty receive per 10 s."""
    result = compare(Workload(rate_per_s, 20, 256, min_loops=3, busy_hours_per_day=busy_hours))

    plan = result.plan
    assert (plan.busy_loops, plan.idle_loops) == (loops, 3)
    assert plan.loop_s >= 3 * MONTH_S
    if rate_per_s == 0:
        # 3 * 0.25 GB * 2,628,000 s = 1,971,000 GB-s = $26.28; 3 * 2,628,000 / 10 = 788,400 empty receives
        assert result.sqsloops.usage["lambda_arm_gb_s"] == approx(1_971_000 + 1_095)
        assert result.sqsloops.parts["loops"]["sqs_request"] == approx(788_400)


def test_loops_above_the_need_never_scale() -> None:
    """min_loops 5 covers a 2 h burst of 200/s: no alarm transition, no loop start, loops all month."""
    result = compare(Workload(200, 20, 256, min_loops=5, busy_hours_per_day=2))

    assert result.plan.scale_periods == 0
    assert result.plan.alarm_transitions == 0
    assert result.plan.loop_s == approx(5 * MONTH_S)


def test_max_loops_caps_the_loops_and_says_the_backlog_grows() -> None:
    result = compare(Workload(200, 20, 256, max_loops=2))

    assert result.plan.busy_loops == 2
    assert result.plan.max_loops == 2
    assert result.plan.alarm_levels == (1, 2)
    assert len(result.warnings) == 1
    assert "backlog grows" in result.warnings[0]


def test_a_larger_batch_divides_the_native_invocations_not_the_loops() -> None:
    one = compare(Workload(50, 20, 256, batch_size=1))
    ten = compare(Workload(50, 20, 256, batch_size=10))

    assert one.native.usage["lambda_request"] == approx(10 * ten.native.usage["lambda_request"])
    # a loop's per-batch overhead is paid per message with batches of 1: 1 / (0.020 + 0.030) = 20 msgs/s a loop
    assert one.plan.capacity_per_loop == approx(20)
    assert one.plan.busy_loops == 3


def test_native_invocations_are_billed_per_started_millisecond() -> None:
    """3 messages of 0.4 ms + 5 ms overhead = 6.2 ms, billed as 7 ms."""
    result = compare(Workload(10, 0.4, 1024, batch_size=3))

    batches = 10 * MONTH_S / 3
    assert result.native.usage["lambda_arm_gb_s"] == approx(batches * 0.007 * 1.0)


# --- inputs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("50/s", 50),
        ("50", 50),
        ("3000/min", 50),
        ("180000/h", 50),
        ("12 / hour", 12 / 3600),
        ("8,640,000/day", 100),
        ("1e6/days", 1e6 / 86_400),
        ("0/s", 0),
        ("2.5/sec", 2.5),
    ],
)
def test_rates_take_a_unit(text: str, per_s: float) -> None:
    assert parse_rate(text) == approx(per_s)


@pytest.mark.parametrize("text", ["", "fast", "-5/s", "5/week", "5/", "/s", "1e99/s"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="rate must"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"handler_ms": 0}, "handler_ms must be above 0"),
        ({"memory_mb": 64}, "memory_mb must be at least 128"),
        ({"batch_size": 11}, "batch_size must be at least 1 and at most 10"),
        ({"busy_hours_per_day": 25}, "busy_hours_per_day"),
        ({"min_loops": 5, "max_loops": 2}, "must not exceed max_loops"),
        ({"rate_per_s": math.nan}, "rate_per_s must be a number"),
    ],
)
def test_workloads_out_of_range_are_refused(changes: dict[str, float], message: str) -> None:
    values: dict[str, float] = {"rate_per_s": 1, "handler_ms": 20, "memory_mb": 256, **changes}
    with pytest.raises(ConfigError, match=message):
        compare(Workload(**values))  # type: ignore[arg-type]


def test_assumptions_can_be_set_by_name() -> None:
    assumptions = Assumptions().with_values({"native_idle_pollers": "2", "sweep_ms": "50"})

    assert (assumptions.native_idle_pollers, assumptions.sweep_ms) == (2, 50.0)
    idle = compare(Workload(0, 20, 256), assumptions)
    assert idle.native.usage["sqs_request"] == approx(2 * MONTH_S / 20)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nope": "1"}, "unknown assumption 'nope'"),
        ({"stack_alarms": "1.5"}, "whole number"),
        ({"sweep_ms": "soon"}, "must be a number"),
        ({"heartbeat_s": "0"}, "heartbeat_s must be above 0"),
        ({"batch_fill": "2"}, "batch_fill must be at most 1"),
        ({"reserve_s": "900"}, "process_timeout_s must exceed reserve_s"),
    ],
)
def test_bad_assumptions_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Assumptions().with_values(values)


# --- the tables themselves ----------------------------------------------------------------------------------------


def test_every_price_names_its_page_and_when_it_was_read() -> None:
    for key, price in PRICES.items():
        assert price.key == key
        assert price.source.startswith("https://aws.amazon.com/"), key
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.read_on), key
        assert price.usd >= 0, key
        assert price.per > 0, key
        assert price.unit, key
        assert price.what, key


def test_every_price_lands_on_a_line_item_and_every_billed_quantity_has_a_price() -> None:
    assert set(PRICE_LINE) == set(PRICES)
    assert set(PRICE_LINE.values()) <= set(LINE_ITEMS)
    result = compare(Workload(200, 20, 256, busy_hours_per_day=2))
    for estimate in (result.sqsloops, result.native):
        assert set(estimate.usage) <= set(PRICES)
        assert estimate.total == approx(sum(estimate.cost_of(usage) for usage in estimate.parts.values()))


def test_every_assumption_says_why() -> None:
    for name, value, why in Assumptions().described():
        assert value >= 0, name
        assert len(why) > 10, name


def test_tracking_costs_five_write_units_a_read_and_a_weeks_storage_per_million_jobs() -> None:
    tracking = tracking_cost()

    assert (tracking.writes_per_job, tracking.index_writes_per_job) == (2, 3)  # the index: 1 put, then 2 per change
    assert tracking.writes_usd == pytest.approx(5 * 0.625)  # $0.625 per million write units
    assert tracking.reads_usd == pytest.approx(1 * 0.125)  # the batch's strongly consistent read of the row
    # a million 1 KB rows (0.954 GB), table and index, kept 7 days of a 30.4-day month, at $0.25 per GB-month
    assert tracking.storage_usd == pytest.approx(2 * 1_000_000 / 1024**2 * 7 / (730 / 24) * 0.25)
    assert tracking.total_usd == pytest.approx(tracking.writes_usd + tracking.reads_usd + tracking.storage_usd)


def test_a_row_over_1_kb_costs_a_write_unit_per_started_kb() -> None:
    assert tracking_cost(row_kb=2.5).writes_usd == pytest.approx(5 * 3 * 0.625)
