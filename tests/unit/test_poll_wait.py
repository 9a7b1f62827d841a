"""loop.poll_wait_s: the long poll's WaitTimeSeconds from the time left to its bound (reserve, heartbeat, window)."""

from __future__ import annotations

import pytest

from sqsloops.loop import poll_wait_s


@pytest.mark.parametrize(
    ("until_stop_s", "wait_s", "expected"),
    [
        (0.999, 20, 1),  # a bound set one second ahead, a moment ago: still the shortest long poll, not a short one
        (0.96, 20, 1),
        (3.4, 20, 3),  # rounded down: a poll never ends much after its bound
        (0.04, 20, 0),  # too close to the bound: a short poll
        (-2.0, 20, 0),
        (45.0, 20, 20),  # never longer than the registration's wait_s
        (5.0, 0, 0),  # wait_s 0: always short polls
    ],
)
def test_the_wait_rounds_down_but_a_second_just_short_stays_a_second(
    until_stop_s: float, wait_s: int, expected: int
) -> None:
    assert poll_wait_s(until_stop_s, wait_s) == expected
