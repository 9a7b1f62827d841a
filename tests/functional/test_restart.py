"""The restart sweep and reconcile against moto: stale loops resurrected exactly once, counts reconciled."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from restart import lambda_function as restart_app
from sqsloops.clock import ManualClock
from sqsloops.fleet import Fleet
from sqsloops.launcher import Launcher
from sqsloops.registry import QueueConfig, Registry
from sqsloops.restart import SweepSummary, reconcile, restart, sweep
from sqsloops.settings import Settings
from sqsloops.tokens import Token, Tokens
from tests import conftest
from tests.conftest import REGION, Clients
from tests.fixtures.fakes import RecordingLauncher
from tests.fixtures.loop_kit import FreeSlotTokens
from tests.functional.scaling_helpers import Turnstile, deploy_for_functions, loop_ids

EVENTS = Path(__file__).resolve().parents[2] / "events"
STALE_AFTER_S = 120.0


@dataclass
class World:
    aws: Clients
    settings: Settings
    clock: ManualClock
    registry: Registry
    tokens: Tokens
    launcher: RecordingLauncher
    make_queue: Callable[..., conftest.TestQueue]

    def register(self, name: str = "work", **overrides: Any) -> QueueConfig:
        queue = self.make_queue(name)
        return self.registry.create(QueueConfig(queue_url=queue.url, handler="lambda:worker", **overrides))

    def item(self, token: Token) -> Token | None:
        found = self.aws.dynamodb.get_item(
            TableName=self.settings.loops_table,
            Key={"queue_url": {"S": token.queue_url}, "token": {"S": token.slot}},
            ConsistentRead=True,
        ).get("Item")
        return Token.from_item(found) if found else None

    def sweep(self, *, tokens: Tokens | None = None, page_size: int | None = None) -> SweepSummary:
        return sweep(
            tokens=tokens or self.tokens,
            registry=self.registry,
            launcher=self.launcher,
            stale_after_s=STALE_AFTER_S,
            page_size=page_size,
            clock=self.clock,
        )

    def fleet(self) -> Fleet:
        return Fleet(
            tokens=self.tokens, launcher=self.launcher, heartbeat_s=self.settings.heartbeat_s, clock=self.clock
        )

    def reconcile(self) -> dict[str, Any]:
        results = reconcile(registry=self.registry, sqs=self.aws.sqs, fleet=self.fleet())
        return {r.queue_url: r for r in results}

    def send(self, queue_url: str, count: int) -> None:
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageBody": "job"} for i in range(min(10, count - start))]
            self.aws.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


@pytest.fixture
def world(aws: Clients, settings: Settings, make_queue: Callable[..., conftest.TestQueue]) -> World:
    clock = ManualClock()
    return World(
        aws=aws,
        settings=settings,
        clock=clock,
        registry=Registry(table_name=settings.queues_table, dynamodb=aws.dynamodb, clock=clock),
        tokens=FreeSlotTokens(table_name=settings.loops_table, dynamodb=aws.dynamodb, clock=clock),
        launcher=RecordingLauncher(),
        make_queue=make_queue,
    )


# --- sweep ------------------------------------------------------------------------------------------------------


def test_a_stale_token_is_taken_over_and_its_loop_restarted(world: World) -> None:
    # Given a loop that stopped proving itself more than stale_after_s ago
    config = world.register(max_loops=5)
    dead = world.tokens.create(config.queue_url)
    world.clock.advance(STALE_AFTER_S + 1)

    # When the sweep runs
    summary = world.sweep()

    # Then the token carries a new loop_id, used now, and exactly that loop was started
    item = world.item(dead)
    assert item is not None
    assert item.loop_id != dead.loop_id
    assert item.last_used == world.clock.now()
    assert loop_ids(world.launcher.started) == {(dead.slot, item.loop_id)}
    assert (summary.stale, summary.taken_over, summary.started) == (1, 1, 1)


def test_a_fresh_token_is_left_untouched(world: World) -> None:
    # Given a loop that proved itself just within stale_after_s
    config = world.register(max_loops=5)
    alive = world.tokens.create(config.queue_url)
    world.clock.advance(STALE_AFTER_S - 1)

    # When the sweep runs
    summary = world.sweep()

    # Then its token is exactly as it was and nothing was started
    assert world.item(alive) == alive
    assert world.launcher.started == []
    assert (summary.scanned, summary.stale) == (1, 0)


def test_two_racing_sweeps_take_each_stale_token_over_exactly_once(world: World) -> None:
    # Given three stale tokens, and two sweeps that have both read them before either writes
    config = world.register(max_loops=5)
    dead = [world.tokens.create(config.queue_url) for _ in range(3)]
    world.clock.advance(STALE_AFTER_S + 1)
    turnstile = Turnstile(2, meet_before="UpdateItem")

    def sweeper_tokens() -> Tokens:
        dynamodb = turnstile.attach(boto3.client("dynamodb", region_name=REGION))
        return Tokens(table_name=world.settings.loops_table, dynamodb=dynamodb, clock=world.clock)

    summaries: list[SweepSummary] = []
    threads = [
        threading.Thread(target=lambda t=tokens: summaries.append(world.sweep(tokens=t)))
        for tokens in (sweeper_tokens(), sweeper_tokens())
    ]

    # When both run at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then each token was won by exactly one sweep, which started the loop the table now names
    assert len(summaries) == 2
    assert sum(s.taken_over for s in summaries) == 3
    assert sum(s.lost_races for s in summaries) == 3
    items = [world.item(t) for t in dead]
    assert loop_ids(world.launcher.started) == {(i.slot, i.loop_id) for i in items if i}
    assert len(world.launcher.started) == 3


def test_the_sweep_covers_every_page_of_the_table(world: World) -> None:
    # Given 23 stale tokens over two queues, scanned 4 at a time
    first, second = world.register("work", max_loops=20), world.register("other", max_loops=20)
    dead = [world.tokens.create(first.queue_url) for _ in range(12)]
    dead += [world.tokens.create(second.queue_url) for _ in range(11)]
    world.clock.advance(STALE_AFTER_S + 1)
    pages = []

    def count_page(**kwargs: Any) -> None:
        pages.append(kwargs)

    world.aws.dynamodb.meta.events.register("before-call.dynamodb.Scan", count_page)

    # When the sweep runs
    summary = world.sweep(page_size=4)

    # Then every token was restarted once, with the loop_id now in the table
    assert len(pages) >= 6  # precondition: the scan really was paginated
    assert summary.taken_over == summary.started == 23
    assert loop_ids(world.launcher.started) == {(t.slot, i.loop_id) for t in dead if (i := world.item(t))}


def test_tokens_of_deregistered_queues_are_retired_stale_or_not_and_deleted_after_their_grace(world: World) -> None:
    # Given a registered queue and one that was deregistered, each with a stale and a fresh token
    kept = world.register("work", max_loops=5)
    gone = world.register("gone", max_loops=5)
    kept_stale = world.tokens.create(kept.queue_url)
    world.tokens.create(gone.queue_url)
    world.clock.advance(STALE_AFTER_S + 1)
    kept_fresh = world.tokens.create(kept.queue_url)
    world.tokens.create(gone.queue_url)
    world.registry.delete(gone.queue_url)

    # When the sweep runs
    summary = world.sweep()

    # Then the deregistered queue has no loops left (its tokens are retired); the registered one's stale token
    # was restarted
    assert world.tokens.list(gone.queue_url) == []
    assert [t.retired for t in world.tokens.list(gone.queue_url, live=False)] == [True, True]
    assert summary.orphans_retired == 2
    assert world.item(kept_fresh) == kept_fresh
    assert [(t.queue_url, t.slot) for t in world.launcher.started] == [(kept.queue_url, kept_stale.slot)]

    # And once their grace (stale_after_s: their registration is gone) has passed, the next sweep deletes them
    world.clock.advance(STALE_AFTER_S + 1)
    later = world.sweep()
    assert world.tokens.list(gone.queue_url, live=False) == []
    assert later.retired_deleted == 2


def test_stale_tokens_of_a_disabled_queue_are_not_restarted(world: World) -> None:
    config = world.register(max_loops=5, enabled=False)
    dead = world.tokens.create(config.queue_url)
    world.clock.advance(STALE_AFTER_S + 1)

    summary = world.sweep()

    assert world.item(dead) == dead
    assert world.launcher.started == []
    assert summary.disabled_skipped == 1


def test_a_failed_restart_keeps_the_token_for_the_next_sweep(world: World) -> None:
    # Given a stale token, and a process function that does not exist (the invoke fails)
    config = world.register(max_loops=5)
    dead = world.tokens.create(config.queue_url)
    world.clock.advance(STALE_AFTER_S + 1)
    missing = Launcher(lambda_client=world.aws.lambda_, function_name="no-such-function", clock=world.clock)

    # When the sweep runs
    summary = sweep(
        tokens=world.tokens, registry=world.registry, launcher=missing, stale_after_s=STALE_AFTER_S, clock=world.clock
    )

    # Then the token is still there, now fresh under a new loop_id, and will be retried once stale again
    item = world.item(dead)
    assert item is not None
    assert item.loop_id != dead.loop_id
    assert (summary.taken_over, summary.started, summary.start_failures) == (1, 0, 1)
    world.clock.advance(STALE_AFTER_S + 1)
    assert world.sweep().started == 1


# --- reconcile --------------------------------------------------------------------------------------------------


def test_reconcile_lowers_loops_to_a_lowered_max_even_with_a_backlog(world: World) -> None:
    # Given 5 loops on a busy queue whose registration now allows only 2
    config = world.register(max_loops=5, backlog_per_loop=10)
    world.send(config.queue_url, 60)
    created = []
    for _ in range(5):
        created.append(world.tokens.create(config.queue_url))
        world.clock.advance(1)
    oldest = created[:2]
    world.registry.update(replace(config, max_loops=2))

    # When reconcile runs
    result = world.reconcile()[config.queue_url]

    # Then the 2 oldest loops remain
    assert loop_ids(world.tokens.list(config.queue_url)) == loop_ids(oldest)
    assert (result.rule, result.stopped) == ("backlog", 3)


def test_reconcile_deletes_tokens_at_slots_beyond_a_lowered_max_and_fills_the_slots_below(world: World) -> None:
    # Given a busy queue whose tokens sit at slots 0 and 3 (a gap a scale-down left), and at an id that names no slot
    # (a token from before slots), and a registration that now allows only 3 loops: 3 tokens, but 2 beyond the max
    config = world.register(max_loops=5, backlog_per_loop=10)
    world.send(config.queue_url, 60)
    kept = world.tokens.create(config.queue_url, slot=0)
    world.tokens.create(config.queue_url, slot=3)
    world.aws.dynamodb.put_item(
        TableName=world.settings.loops_table,
        Item={
            "queue_url": {"S": config.queue_url},
            "token": {"S": "4f1c0e9a2b7d4c1e8f0a"},
            "loop_id": {"S": "old"},
            "last_used": {"N": repr(world.clock.now())},
        },
    )
    world.registry.update(replace(config, max_loops=3))

    # When reconcile runs
    result = world.reconcile()[config.queue_url]

    # Then only slots below 3 hold tokens: slot 0 untouched, slots 1 and 2 new, with their loops started
    stored = world.tokens.list(config.queue_url)
    assert sorted(t.slot for t in stored) == ["slot-0000", "slot-0001", "slot-0002"]
    assert world.item(kept) == kept
    assert sorted(t.slot for t in world.launcher.started) == ["slot-0001", "slot-0002"]
    assert (result.before, result.after, result.stopped, result.started) == (3, 3, 2, 2)


def test_reconcile_leaves_surplus_loops_of_a_busy_queue_to_the_alarms(world: World) -> None:
    # Given 4 loops on a queue with 5 visible messages (1 loop would do), within max_loops
    config = world.register(max_loops=10, backlog_per_loop=10)
    world.send(config.queue_url, 5)
    existing = loop_ids([world.tokens.create(config.queue_url) for _ in range(4)])

    # When reconcile runs
    world.reconcile()

    # Then all 4 keep running
    assert loop_ids(world.tokens.list(config.queue_url)) == existing


def test_reconcile_scales_an_idle_queue_down_to_min_loops(world: World) -> None:
    config = world.register(min_loops=1, max_loops=10, backlog_per_loop=10)
    [world.tokens.create(config.queue_url) for _ in range(4)]

    result = world.reconcile()[config.queue_url]

    assert len(world.tokens.list(config.queue_url)) == 1
    assert result.rule == "idle"


def test_reconcile_raises_loops_to_a_raised_min(world: World) -> None:
    config = world.register(min_loops=0, max_loops=10)
    world.registry.update(replace(config, min_loops=2))

    world.reconcile()

    stored = world.tokens.list(config.queue_url)
    assert len(stored) == 2
    assert loop_ids(world.launcher.started) == loop_ids(stored)


def test_reconcile_stops_every_loop_of_a_disabled_queue(world: World) -> None:
    config = world.register(min_loops=2, max_loops=10)
    [world.tokens.create(config.queue_url) for _ in range(3)]
    world.registry.update(replace(config, enabled=False))

    assert world.reconcile()[config.queue_url].rule == "disabled"

    assert world.tokens.list(config.queue_url) == []


def test_reconcile_reports_a_deleted_queue_and_carries_on_with_the_others(world: World) -> None:
    broken = world.register("deleted", max_loops=5)
    healthy = world.register("work", min_loops=1, max_loops=5)
    world.aws.sqs.delete_queue(QueueUrl=broken.queue_url)

    results = world.reconcile()

    assert results[broken.queue_url].rule == "error"
    assert len(world.tokens.list(healthy.queue_url)) == 1


def test_restart_reconciles_before_it_sweeps(world: World) -> None:
    # Given a disabled queue with a stale token: reconcile deletes it, so the sweep never restarts it
    config = world.register(max_loops=5, enabled=False)
    world.tokens.create(config.queue_url)
    world.clock.advance(STALE_AFTER_S + 1)

    summary = restart(
        registry=world.registry,
        tokens=world.tokens,
        sqs=world.aws.sqs,
        fleet=world.fleet(),
        launcher=world.launcher,
        stale_after_s=STALE_AFTER_S,
        clock=world.clock,
    )

    assert world.tokens.list(config.queue_url) == []
    assert world.launcher.started == []
    assert summary.as_dict()["queues"][config.queue_url]["stopped"] == 1


# --- the function adapter ---------------------------------------------------------------------------------------


@pytest.fixture
def deployed(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    deploy_for_functions(world.aws, world.settings, monkeypatch)
    restart_app.root.cache_clear()
    yield world
    restart_app.root.cache_clear()


def test_restart_function_reconciles_on_its_schedule_and_returns_a_summary(deployed: World) -> None:
    # Given a queue registered with a minimum of 2 loops and none running
    config = deployed.register(min_loops=2, max_loops=5)

    # When the scheduled event fires the restart function
    response = restart_app.handler(json.loads((EVENTS / "restart_schedule.json").read_text()), None)

    # Then two loops exist, both started through the real process function invoke
    assert len(deployed.tokens.list(config.queue_url)) == 2
    assert response["queues"][config.queue_url]["started"] == 2
    assert response["sweep"]["scanned"] == 2
