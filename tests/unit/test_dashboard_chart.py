"""The dashboard's in-memory history and its SVG chart: pure code, no AWS."""

from __future__ import annotations

import re

from sqsloops.dashboard.chart import _scale_max, depth_and_loops_svg
from sqsloops.dashboard.history import History, Point
from sqsloops.ops.registration import Counters, LoopCounts, QueueStatus
from sqsloops.ops.watch import Snapshot
from sqsloops.queues import Depth
from sqsloops.registry import QueueConfig

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"


def snapshot(at: float, visible: int, running: int, *, error: str | None = None) -> Snapshot:
    status = QueueStatus(
        URL, QueueConfig(queue_url=URL, handler="lambda:f"), Depth(visible, 0, 0), None, None,
        LoopCounts(running=running, stale=0, desired=running), Counters(),
    )  # fmt: skip
    return Snapshot(taken_at=at, statuses=[status], statuses_at=at, error=error)


def test_history_keeps_one_window_drops_failed_refreshes_and_forgets_deregistered_queues() -> None:
    history = History(window_s=60)
    history.add(snapshot(0, 5, 1))
    history.add(snapshot(30, 7, 2))
    history.add(snapshot(30, 9, 9))  # the same instant again: nothing new
    history.add(snapshot(40, 1, 1, error="ThrottlingException"))  # a failed read: its statuses are stale
    history.add(snapshot(70, 3, 2))
    assert [(p.at, p.visible, p.running) for p in history.of(URL)] == [(30, 7, 2), (70, 3, 2)]
    history.add(Snapshot(taken_at=80, statuses=[], statuses_at=80))
    assert history.of(URL) == []


def test_axis_maxima_are_round_and_never_zero() -> None:
    assert [_scale_max(v) for v in (0, 1, 3, 10, 11, 250, 999)] == [1, 1, 5, 10, 20, 500, 1000]


def test_the_chart_draws_both_series_inside_its_frame_once_two_points_exist() -> None:
    points = [
        Point(at=t, visible=v, in_flight=0, running=r, stale=0, desired=r) for t, v, r in [(0, 0, 0), (50, 400, 4)]
    ]
    empty = depth_and_loops_svg(points[:1], window_s=100, now=100)
    assert "collecting samples" in empty
    assert "<path" not in empty
    svg = depth_and_loops_svg(points, window_s=100, now=100)
    depth = re.search(r'<path d="([^"]+)"[^>]*class="depth"', svg)
    assert depth
    coordinates = [tuple(map(float, step[1:].split(","))) for step in depth.group(1).split()]
    assert coordinates[0][0] < coordinates[1][0]  # time runs left to right
    assert coordinates[1][1] < coordinates[0][1]  # 400 is higher up than 0
    assert 'class="loops"' in svg
    assert ">500<" in svg  # the depth axis' round maximum
