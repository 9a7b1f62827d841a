"""The demo's picture: queue depth and loop count over time, as a PNG.

matplotlib is imported when a chart is drawn, never at import: it belongs to the `local` extra. The figure is
drawn with the Agg canvas directly (no pyplot), so no display, no global state and no GUI backend are involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqsloops.ops.demo import DemoResult

VISIBLE_COLOR = "#4C72B0"
IN_FLIGHT_COLOR = "#DD8452"
LOOPS_COLOR = "#2CA02C"
MARK_COLOR = "#555555"
LIMIT_COLOR = "#999999"
SIZE_IN = (10.0, 6.5)
DPI = 110
HEADROOM = 1.3


def write_chart(result: DemoResult, path: Path) -> Path:
    """Draw depth (visible + in flight, stacked) above loops (steps), with the run's milestones marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = result.samples
    times = [s.at_s for s in samples]
    figure = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    depth_axes, loops_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    options = result.options

    visible = [s.visible for s in samples]
    in_flight = [s.in_flight for s in samples]
    depth_axes.stackplot(
        times,
        visible,
        in_flight,
        labels=("visible", "in flight"),
        colors=(VISIBLE_COLOR, IN_FLIGHT_COLOR),
        alpha=0.85,
    )
    depth_axes.set_ylabel("messages in the queue")
    peak_depth = max((v + f for v, f in zip(visible, in_flight, strict=True)), default=0)
    depth_axes.set_ylim(0, max(peak_depth, 1) * HEADROOM)  # room above the data for the milestone labels
    depth_axes.grid(alpha=0.3)

    loops_axes.step(times, [s.loops for s in samples], where="post", color=LOOPS_COLOR, linewidth=2, label="loops")
    for value, label in ((options.max_loops, "max"), (options.min_loops, "min")):
        loops_axes.axhline(value, color=LIMIT_COLOR, linestyle="--", linewidth=1)
        loops_axes.annotate(
            f"{label} {value}",
            xy=(1, value),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=LIMIT_COLOR,
        )
    loops_axes.set_ylim(0, options.max_loops + 1)
    loops_axes.yaxis.get_major_locator().set_params(integer=True)
    loops_axes.set_ylabel("loops (tokens)")
    loops_axes.set_xlabel("seconds since the burst started (real time)")
    loops_axes.grid(alpha=0.3)
    if times:
        loops_axes.set_xlim(0, max(times[-1], 1.0))

    _mark_milestones(result, depth_axes, loops_axes)
    _alarm_period_axis(result, depth_axes)
    depth_axes.legend(loc="upper left", fontsize=9)

    figure.suptitle(
        f"sqsloops demo: {result.sent:,} messages, ~20 ms each, loops {options.min_loops}..{options.max_loops}, "
        f"time x{result.time_scale:g}",
        fontsize=12,
        fontweight="bold",
    )
    depth_axes.set_title(
        f"processed {result.processed:,} · duplicates {result.duplicates} · in DLQ {result.in_dlq} · "
        f"lost {result.lost} · peak {result.peak_loops} loops",
        fontsize=9,
        color="#333333",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _mark_milestones(result: DemoResult, *axes: Any) -> None:
    """Dotted vertical lines for the burst sent, peak loops, drained and back to min, labelled on the top panel."""
    marks = [
        ("burst sent", result.burst_sent_s),
        ("peak loops", result.time_to_peak_s),
        ("drained", result.time_to_drain_s),
        ("back to min", result.time_to_min_s),
    ]
    top = axes[0]
    right_s = top.get_xlim()[1]
    for index, (label, at_s) in enumerate(marks):
        if at_s is None:
            continue
        for ax in axes:
            ax.axvline(at_s, color=MARK_COLOR, linestyle=":", linewidth=1)
        near_the_right = at_s > 0.75 * right_s  # label on the left of its line, inside the plot
        top.annotate(
            f"{label}\n{at_s:.1f} s",
            xy=(at_s, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-3 if near_the_right else 3, -4 - 24 * (index % 2)),
            textcoords="offset points",
            ha="right" if near_the_right else "left",
            va="top",
            fontsize=8,
            color=MARK_COLOR,
        )


def _alarm_period_axis(result: DemoResult, ax: Any) -> None:
    """A second x axis on top, in alarm periods: how the run looks in the units the scaling reacts in."""
    period_s = result.alarm_period_s
    if period_s <= 0:
        return
    top = ax.secondary_xaxis("top", functions=(lambda s: s / period_s, lambda p: p * period_s))
    top.set_xlabel(f"alarm periods ({period_s:g} s each)", fontsize=9)
