"""The pacer: at most rate_per_s messages per second on average, measured on an injected clock."""

from __future__ import annotations

from sqsloops.ratelimit import Pacer
from tests.fixtures.fakes import FakeClock


def consume_for(pacer: Pacer, clock: FakeClock, *, seconds: float, batch_size: int) -> int:
    """Take messages as fast as the pacer allows, sleeping when it says so, for `seconds` of clock time."""
    taken = 0
    while clock.elapsed_s < seconds:
        delay_s = pacer.delay_s()
        if delay_s > 0:
            clock.sleep(delay_s)
            continue
        taken += pacer.take(batch_size)
    return taken


def test_without_a_rate_nothing_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)

    assert pacer.delay_s() == 0
    assert pacer.take(10) == 10


def test_a_rate_holds_over_time_whatever_the_batch_size() -> None:
    # Given a pacer at 5 messages per second and batches of up to 10
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    pacer.set_rate(5, batch_size=10)

    # When a consumer takes all it may for 100 seconds
    taken = consume_for(pacer, clock, seconds=100, batch_size=10)

    # Then it took 5 a second, give or take the first burst
    assert 495 <= taken <= 506


def test_a_rate_below_one_spaces_single_messages() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    pacer.set_rate(0.25, batch_size=10)

    taken = consume_for(pacer, clock, seconds=40, batch_size=10)

    assert taken in (10, 11)
    assert pacer.take(10) == 1  # never more than one at a time at this rate


def test_unused_messages_are_refunded() -> None:
    # Given a pacer that granted a full batch
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    pacer.set_rate(10, batch_size=10)
    clock.sleep(1)
    granted = pacer.take(10)

    # When the receive returned nothing and the grant is refunded
    pacer.refund(granted)

    # Then the next batch may go at once
    assert pacer.delay_s() == 0
    assert pacer.take(10) == granted


def test_lowering_the_rate_when_more_loops_share_it_slows_this_loop() -> None:
    # Given a loop alone at 10/s, then four loops share the rate
    clock = FakeClock()
    pacer = Pacer(clock=clock)
    pacer.set_rate(10, batch_size=10)
    pacer.set_rate(10 / 4, batch_size=10)

    # When it consumes for 40 s
    taken = consume_for(pacer, clock, seconds=40, batch_size=10)

    # Then it took its quarter
    assert 99 <= taken <= 103
