"""Retire, don't delete: a stopped loop's slot stays closed until that loop can no longer be consuming.

Scale-down retires a token (its loop fails its next heartbeat and stops); a new loop may take the slot only once
heartbeat_s + visibility_timeout_s have passed. So with max_loops 1 there is never a second consumer, not even
while the first one is still finishing its batch. Tokens are real items in moto's DynamoDB, read back; time is a
ManualClock shared by Tokens, Fleet and the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import TokenLostError
from sqsloops.fleet import Fleet
from sqsloops.loop import TOKEN_LOST
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.registry import QueueConfig
from sqsloops.restart import reconcile, sweep
from sqsloops.settings import Settings
from sqsloops.tokens import RETIRED, Token, Tokens, retirement_grace_s, slot_name
from tests.conftest import REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import RecordingLauncher
from tests.fixtures.loop_kit import LoopHarness

VISIBILITY_TIMEOUT_S = 30


@dataclass
class World:
    aws: Clients
    settings: Settings
    clock: ManualClock
    service: QueueAdmin
    launcher: RecordingLauncher
    queue: MadeQueue

    @property
    def tokens(self) -> Tokens:
        return self.service.tokens

    @property
    def fleet(self) -> Fleet:
        return self.service.fleet

    @property
    def grace_s(self) -> float:
        return retirement_grace_s(heartbeat_s=self.settings.heartbeat_s, visibility_timeout_s=VISIBILITY_TIMEOUT_S)

    def register(self, **options: Any) -> QueueConfig:
        values: dict[str, Any] = {"visibility_timeout_s": VISIBILITY_TIMEOUT_S, **options}
        return self.service.register(QueueConfig(queue_url=self.queue.url, handler="lambda:worker", **values)).config

    def converge(self, desired: int) -> Any:
        max_loops = self.service.registry.get(self.queue.url).max_loops
        return self.fleet.converge(
            self.queue.url, desired, max_loops=max_loops, visibility_timeout_s=VISIBILITY_TIMEOUT_S
        )

    def every_token(self) -> list[Token]:
        return self.tokens.list(self.queue.url, live=False)

    def sweep(self) -> Any:
        return sweep(
            tokens=self.tokens,
            registry=self.service.registry,
            launcher=self.launcher,
            stale_after_s=self.settings.stale_after_s,
            clock=self.clock,
        )


@pytest.fixture
def world(aws: Clients, settings: Settings, make_queue: Callable[..., MadeQueue]) -> World:
    clock = ManualClock()
    launcher = RecordingLauncher()
    service = OpsRoot(settings, clients=aws, launcher=launcher, clock=clock, check_handlers=False).admin
    return World(aws, settings, clock, service, launcher, make_queue("orders"))


def record_live_tokens(world: World) -> list[int]:
    """After every write to the Loops table, how many live tokens the queue has (read with a separate client)."""
    reader = Tokens(
        table_name=world.settings.loops_table,
        dynamodb=boto3.client("dynamodb", region_name=REGION),
        clock=world.clock,
    )
    seen: list[int] = []

    def after(model: Any, **_: Any) -> None:
        if model.name in ("PutItem", "UpdateItem", "DeleteItem"):
            seen.append(len(reader.list(world.queue.url)))

    world.aws.dynamodb.meta.events.register("after-call.dynamodb", after)
    return seen


# --- the guarantee ---------------------------------------------------------------------------------------------


def test_with_max_loops_1_a_scale_up_right_after_a_scale_down_waits_for_the_grace(world: World) -> None:
    # Given a queue held at exactly one loop
    world.register(min_loops=1, max_loops=1)
    [first] = world.tokens.list(world.queue.url)
    live_after_each_write = record_live_tokens(world)

    # When it is scaled down and, at once, up again (an OK then an ALARM)
    down = world.converge(0)
    up = world.converge(1)

    # Then no second loop was started: slot 0 is retired, still in its grace, and nothing else exists
    assert (down.stopped, up.started, up.deferred) == (1, 0, 1)
    assert world.tokens.list(world.queue.url) == []
    [retired] = world.every_token()
    assert (retired.slot, retired.loop_id, retired.retired_at) == (first.slot, RETIRED, world.clock.now())
    assert [t.slot for t in world.launcher.started] == [first.slot]

    # When the grace has not quite passed, a scale-up still creates nothing
    world.clock.advance(world.grace_s - 1)
    assert world.converge(1).deferred == 1
    assert world.tokens.list(world.queue.url) == []

    # When it has passed, the slot is reclaimed by a new loop
    world.clock.advance(2)
    again = world.converge(1)
    [second] = world.tokens.list(world.queue.url)
    assert (again.started, second.slot) == (1, slot_name(0))
    assert second.loop_id != first.loop_id
    assert world.every_token() == [second]
    assert [t.slot for t in world.launcher.started] == [first.slot, second.slot]

    # And at no write was there more than one live token
    assert max(live_after_each_write) == 1


def test_scale_up_skips_a_slot_in_its_grace_but_takes_the_free_ones(world: World) -> None:
    # Given 3 loops scaled down to 1 (slots 1 and 2 retired)
    world.register(min_loops=0, max_loops=4)
    world.converge(3)
    world.converge(1)

    # When scaled up to 4 within the grace
    change = world.converge(4)

    # Then only slot 3 (never used) gets a loop; slots 1 and 2 wait for their grace
    assert sorted(t.slot for t in world.tokens.list(world.queue.url)) == [slot_name(0), slot_name(3)]
    assert (change.started, change.deferred) == (1, 2)


def test_a_queue_scaled_to_zero_and_up_again_at_once_starts_a_loop_on_a_free_slot(world: World) -> None:
    # Given a queue with max 4 holding one loop, scaled to zero (slot 0 retired, in its grace)
    world.register(min_loops=0, max_loops=4)
    world.converge(1)
    [first] = world.tokens.list(world.queue.url)
    world.converge(0)
    live_after_each_write = record_live_tokens(world)

    # When a backlog scales it to one again at once
    up = world.converge(1)

    # Then a loop starts at once on slot 1, and slot 0 stays retired until its grace has passed
    [second] = world.tokens.list(world.queue.url)
    assert (up.started, up.deferred, second.slot) == (1, 0, slot_name(1))
    assert [t.slot for t in world.launcher.started] == [first.slot, second.slot]
    [retired] = [t for t in world.every_token() if t.retired]
    assert retired.slot == first.slot
    assert max(live_after_each_write) == 1


def test_scale_up_never_takes_a_slot_at_or_beyond_max_loops(world: World) -> None:
    # Given max 2 with both slots retired, in their grace
    world.register(min_loops=0, max_loops=2)
    world.converge(2)
    world.converge(0)

    # When scaled up to 2 at once
    change = world.converge(2)

    # Then nothing starts: every slot below max_loops is closed
    assert (change.started, change.deferred) == (0, 2)
    assert world.tokens.list(world.queue.url) == []
    assert {t.slot for t in world.every_token()} == {slot_name(0), slot_name(1)}


def test_a_retired_token_cannot_be_created_again_until_its_grace_has_passed(world: World) -> None:
    token = world.tokens.create(world.queue.url, slot=0)
    assert token is not None
    assert world.tokens.retire(world.queue.url, token.slot, grace_s=40) is True
    assert world.tokens.retire(world.queue.url, token.slot, grace_s=40) is False  # already retired: grace kept

    assert world.tokens.create(world.queue.url, slot=0) is None
    world.clock.advance(40)
    assert world.tokens.create(world.queue.url, slot=0) is None  # not before reusable_at has passed
    world.clock.advance(1)
    reclaimed = world.tokens.create(world.queue.url, slot=0)

    assert reclaimed is not None
    assert world.every_token() == [reclaimed]
    assert not reclaimed.retired


# --- the retired loop stops ------------------------------------------------------------------------------------


def test_the_heartbeat_of_a_retired_token_fails(world: World) -> None:
    world.register(min_loops=1, max_loops=1)
    [token] = world.tokens.list(world.queue.url)

    world.converge(0)

    with pytest.raises(TokenLostError):
        world.tokens.heartbeat(world.queue.url, token.slot, token.loop_id, processed=1)
    [retired] = world.every_token()
    assert (retired.processed, retired.last_used) == (0, token.last_used)


def test_a_loop_whose_token_is_retired_stops_at_its_next_heartbeat(
    aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a running loop, scaled down after 5 s and scaled up again at once (max_loops 1)
    loops = LoopHarness.create(aws, settings, monkeypatch, heartbeat_s=2)
    queue = make_queue("work")
    config = loops.register(queue.url, max_loops=1)
    fleet = Fleet(tokens=loops.tokens, launcher=loops.launcher, heartbeat_s=2, clock=loops.clock)
    token = loops.tokens.create(queue.url, slot=0)
    assert token is not None
    changes = []

    def scale_down_then_up() -> None:
        for desired in (0, 1):
            changes.append(
                fleet.converge(
                    queue.url, desired, max_loops=config.max_loops, visibility_timeout_s=config.visibility_timeout_s
                )
            )

    loops.clock.at(5, scale_down_then_up)

    # When the loop runs with plenty of time
    result = loops.run(token, budget_s=600)

    # Then it stops at its next heartbeat, without handing over, and no other loop was started meanwhile
    assert (result.reason, result.recursed) == (TOKEN_LOST, False)
    assert loops.clock.elapsed_s <= 5 + 2 + 1
    assert [(c.stopped, c.started, c.deferred) for c in changes] == [(1, 0, 0), (0, 0, 1)]
    assert loops.launcher.started == []
    assert loops.tokens.list(queue.url) == []


# --- the sweep -------------------------------------------------------------------------------------------------


def test_the_sweep_never_takes_over_a_retired_token_and_deletes_it_after_its_grace(world: World) -> None:
    # Given two loops scaled down to one, and all of them silent for longer than stale_after_s
    world.register(min_loops=0, max_loops=2)
    world.converge(2)
    world.converge(1)
    [kept] = world.tokens.list(world.queue.url)
    world.launcher.started.clear()
    world.clock.advance(world.settings.stale_after_s + 1)

    # When the sweep runs
    summary = world.sweep()

    # Then only the live token was taken over and restarted; the retired one is gone (its grace passed long ago)
    assert [t.slot for t in world.launcher.started] == [kept.slot]
    assert (summary.taken_over, summary.retired_deleted) == (1, 1)
    assert [t.slot for t in world.every_token()] == [kept.slot]


def test_the_sweep_keeps_a_retired_token_in_its_grace(world: World) -> None:
    world.register(min_loops=0, max_loops=2)
    world.converge(2)
    world.converge(0)
    world.launcher.started.clear()
    world.clock.advance(world.grace_s - 1)

    summary = world.sweep()

    assert (summary.taken_over, summary.retired_deleted) == (0, 0)
    assert [t.retired for t in world.every_token()] == [True, True]
    assert world.launcher.started == []


def test_the_tidy_up_never_deletes_a_slot_a_new_loop_has_reclaimed(world: World) -> None:
    # Given a retired token read by the sweep, then reclaimed by a new loop before the sweep deletes it
    world.register(min_loops=0, max_loops=1)
    world.converge(1)
    world.converge(0)
    world.clock.advance(world.grace_s + 1)
    [read_by_sweep] = world.every_token()
    world.converge(1)

    # When the sweep's delete arrives
    deleted = world.tokens.purge(read_by_sweep)

    # Then the new loop's token stays
    assert deleted is False
    assert len(world.tokens.list(world.queue.url)) == 1


# --- counting loops --------------------------------------------------------------------------------------------


def test_status_and_count_leave_retired_tokens_out(world: World) -> None:
    # Given 3 loops scaled down to 1, the survivor having counted some work
    world.register(min_loops=0, max_loops=4)
    world.converge(3)
    world.converge(1)
    [live] = world.tokens.list(world.queue.url)
    world.tokens.heartbeat(world.queue.url, live.slot, live.loop_id, processed=5)

    # When the status is read
    [status] = world.service.status(world.queue.url)

    # Then only the live loop counts (also for the rate split), while the table still holds the 2 retired tokens
    assert (status.loops.running, status.loops.stale) == (1, 0)
    assert world.tokens.count(world.queue.url) == 1
    assert len(world.every_token()) == 3
    assert status.counters.processed == 5

    # And once everything is silent past stale_after_s, only the live loop is stale
    world.clock.advance(world.settings.stale_after_s + 1)
    [later] = world.service.status(world.queue.url)
    assert (later.loops.running, later.loops.stale) == (0, 1)


# --- registrations ---------------------------------------------------------------------------------------------


def test_registering_again_right_after_deregistering_waits_for_the_old_loops(world: World) -> None:
    # Given a queue with one loop, deregistered
    world.register(min_loops=1, max_loops=1)
    assert world.service.deregister(world.queue.url).tokens_retired == 1

    # When it is registered again at once
    registered = world.service.register(
        QueueConfig(queue_url=world.queue.url, handler="lambda:worker", min_loops=1, max_loops=1)
    )

    # Then its loop is not started while the old one may still run, and the operator is told
    assert world.tokens.list(world.queue.url) == []
    assert registered.change.deferred == 1
    assert any("not started yet" in w for w in registered.warnings)

    # And once the grace has passed, the restart reconcile starts it
    world.clock.advance(world.grace_s + 1)
    reconcile(registry=world.service.registry, sqs=world.aws.sqs, fleet=world.fleet)
    assert len(world.tokens.list(world.queue.url)) == 1


@pytest.mark.parametrize(("visibility_timeout_s", "warned"), [(99, False), (100, True), (300, True)])
def test_a_visibility_timeout_that_reaches_stale_after_s_is_registered_with_a_warning(
    world: World, visibility_timeout_s: int, warned: bool
) -> None:
    # Given the stack's heartbeat_s 10 and stale_after_s 120
    assert (world.settings.heartbeat_s, world.settings.stale_after_s) == (10, 120)

    # When a queue is registered whose batches may take visibility_timeout_s
    result = world.service.register(
        QueueConfig(queue_url=world.queue.url, handler="lambda:worker", visibility_timeout_s=visibility_timeout_s)
    )

    # Then it is registered, with a warning once a batch plus two heartbeat periods (how long a loop consumes
    # without proof before it pauses) could outlast stale_after_s
    assert world.service.registry.get(world.queue.url).visibility_timeout_s == visibility_timeout_s
    assert any("stale_after_s" in w for w in result.warnings) is warned
