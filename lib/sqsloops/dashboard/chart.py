"""A queue's depth and loops over time as an inline SVG: drawn on the server, so no chart library ships.

Two series on one time axis: depth (visible + in flight) on the left scale, running loops on the right one (loops
are few, depth may be thousands: one scale would flatten the loops).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from sqsloops.dashboard.history import Point

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 40, 16, 28
DEPTH_COLOUR, LOOPS_COLOUR = "#2563eb", "#ea580c"


def _scale_max(value: float) -> float:
    """A round axis maximum at or above value (1, 2, 5 x 10^n), at least 1."""
    if value <= 1:
        return 1.0
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _path(xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(zip(xs, ys, strict=True)))


def depth_and_loops_svg(points: Sequence[Point], *, window_s: float, now: float) -> str:
    """The SVG markup for points within [now - window_s, now]; a chart with a note when there are fewer than two."""
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    shown = [p for p in points if p.at >= now - window_s]
    depth_max = _scale_max(max((p.visible + p.in_flight for p in shown), default=0))
    loops_max = _scale_max(max((max(p.running, p.desired or 0) for p in shown), default=0))

    def x(at: float) -> float:
        return PAD_LEFT + inner_w * (1 - (now - at) / window_s)

    def y(value: float, top: float) -> float:
        return PAD_TOP + inner_h * (1 - value / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
        f'aria-label="depth and loops over the last {window_s / 60:g} minutes">',
        f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{inner_w}" height="{inner_h}" fill="#f8fafc" stroke="#cbd5e1"/>',
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 4}" text-anchor="end" fill="{DEPTH_COLOUR}">{depth_max:g}</text>',
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + inner_h}" text-anchor="end" fill="{DEPTH_COLOUR}">0</text>',
        f'<text x="{WIDTH - PAD_RIGHT + 6}" y="{PAD_TOP + 4}" fill="{LOOPS_COLOUR}">{loops_max:g}</text>',
        f'<text x="{WIDTH - PAD_RIGHT + 6}" y="{PAD_TOP + inner_h}" fill="{LOOPS_COLOUR}">0</text>',
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}">-{window_s / 60:g} min</text>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">now</text>',
        f'<text x="{PAD_LEFT + 70}" y="{HEIGHT - 8}" fill="{DEPTH_COLOUR}">— depth (visible + in flight)</text>',
        f'<text x="{PAD_LEFT + 300}" y="{HEIGHT - 8}" fill="{LOOPS_COLOUR}">— loops running</text>',
    ]
    if len(shown) < 2:
        parts.append(
            f'<text x="{PAD_LEFT + inner_w / 2}" y="{PAD_TOP + inner_h / 2}" text-anchor="middle" fill="#64748b">'
            f"{escape('collecting samples: the chart fills in while the dashboard runs')}</text>"
        )
    else:
        xs = [x(p.at) for p in shown]
        depth = _path(xs, [y(p.visible + p.in_flight, depth_max) for p in shown])
        loops = _path(xs, [y(p.running, loops_max) for p in shown])
        parts.append(f'<path d="{depth}" fill="none" stroke="{DEPTH_COLOUR}" stroke-width="2" class="depth"/>')
        parts.append(f'<path d="{loops}" fill="none" stroke="{LOOPS_COLOUR}" stroke-width="2" class="loops"/>')
    parts.append("</svg>")
    return "".join(parts)
