"""A registration that can never work stops its loops for good, says so, and is fixed by registering again.

A deleted queue (QueueDoesNotExist) and a registration item that cannot be parsed are not transient: the loop stops
without handing over, retires every token of the queue, marks the registration broken and logs why; a loop started
for a broken registration stops before receiving; `status` and `watch` show it; `register` again replaces it.
The loop runs against moto on a FakeClock (tests/fixtures/loop_kit.py); the operator's side through OpsRoot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from sqsloops.cli import main
from sqsloops.errors import ConfigError
from sqsloops.loop import BROKEN, QUEUE_MISSING, UNREADABLE
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.registry import QueueConfig
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.loop_kit import LogRecords, LoopHarness, capture_logs
from tests.functional.test_registration import RecordingLauncher


@pytest.fixture
def loops(aws: Clients, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LoopHarness:
    return LoopHarness.create(aws, settings, monkeypatch)


@pytest.fixture
def logs() -> Iterator[LogRecords]:
    with capture_logs() as records:
        yield records


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    return make_queue("work")


@pytest.fixture
def admin(aws: Clients, loops: LoopHarness) -> QueueAdmin:
    """The operator's side, on the loops' clock and tables."""
    root = OpsRoot(loops.settings, clients=aws, launcher=RecordingLauncher(), clock=loops.clock, check_handlers=False)
    return root.admin


def live_slots(loops: LoopHarness, queue_url: str) -> list[str]:
    return [t.slot for t in loops.tokens.list(queue_url)]


def test_a_deleted_queue_stops_its_loops_for_good_and_marks_the_registration_broken(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a registered queue with two loops, then the queue is deleted
    loops.register(queue.url)
    first, second = loops.tokens.create(queue.url, slot=0), loops.tokens.create(queue.url, slot=1)
    assert first is not None
    assert second is not None
    loops.aws.sqs.delete_queue(QueueUrl=queue.url)

    # When one loop runs
    result = loops.run(first, budget_s=60)

    # Then it stops (no hand-over: no next invocation polls a queue that is gone)
    assert (result.reason, result.recursed) == (QUEUE_MISSING, False)
    assert loops.launcher.started == []
    # And every loop of the queue is retired: the other stops at its next heartbeat, the sweep restarts none
    assert live_slots(loops, queue.url) == []
    # And the registration says why, from its config and from its raw attributes alike
    broken = loops.registry.get(queue.url).broken
    assert broken is not None
    assert broken.reason == f"queue does not exist: {queue.url}"
    assert broken.at == pytest.approx(loops.clock.now(), abs=60)
    assert loops.registry.broken(queue.url) == broken
    # And one error line says what happened and how to fix it
    line = next(r for r in logs.records if r.getMessage().startswith("registration broken"))
    assert (line.levelname, line.__dict__["stop_reason"], line.__dict__["tokens_retired"]) == (
        "ERROR",
        QUEUE_MISSING,
        2,
    )


def test_a_loop_of_a_broken_registration_stops_before_receiving(
    loops: LoopHarness, queue: MadeQueue, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a registration marked broken (say the queue was deleted, then created again) with a message waiting
    loops.register(queue.url)
    assert loops.registry.mark_broken(queue.url, "queue does not exist: then created again")
    loops.send(queue.url, "still here")
    token = loops.tokens.create(queue.url, slot=0)  # a scale-up that read the registration before the mark

    # When its loop runs
    result = loops.run(token)

    # Then it receives nothing, does not hand over, and its token is retired
    assert (result.reason, result.recursed, result.batches) == (BROKEN, False, 0)
    assert loops.visible(queue.url) == 1
    assert live_slots(loops, queue.url) == []
    # And the first mark is kept
    assert loops.registry.broken(queue.url).reason == "queue does not exist: then created again"  # type: ignore[union-attr]


def test_a_registration_item_that_cannot_be_parsed_stops_the_loop_and_is_marked_broken(
    loops: LoopHarness, queue: MadeQueue, logs: LogRecords
) -> None:
    # Given a registration whose max_loops was overwritten with text (the process role can write the table)
    loops.register(queue.url)
    loops.aws.dynamodb.update_item(
        TableName=loops.settings.queues_table,
        Key={"queue_url": {"S": queue.url}},
        UpdateExpression="SET max_loops = :ten",
        ExpressionAttributeValues={":ten": {"S": "ten"}},
    )
    token = loops.tokens.create(queue.url, slot=0)

    # When its loop runs
    result = loops.run(token, budget_s=60)

    # Then it stops at once, retires the queue's tokens and marks the item broken (readable without parsing it)
    assert (result.reason, result.recursed, result.batches) == (UNREADABLE, False, 0)
    assert live_slots(loops, queue.url) == []
    broken = loops.registry.broken(queue.url)
    assert broken is not None
    assert "cannot be read" in broken.reason
    assert "ten" in broken.reason
    assert any(r.getMessage().startswith("registration broken") for r in logs.records)


def test_status_and_watch_show_a_broken_registration(
    loops: LoopHarness,
    admin: QueueAdmin,
    queue: MadeQueue,
    env: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a queue whose loop found it deleted
    loops.register(queue.url)
    token = loops.tokens.create(queue.url, slot=0)
    loops.aws.sqs.delete_queue(QueueUrl=queue.url)
    loops.run(token)

    # Then status says so, with the fix
    [status] = admin.status()
    assert status.broken is not None
    assert status.broken.reason.startswith("queue does not exist")
    assert status.error is not None
    assert "register the queue again" in status.error
    assert (status.loops.running, status.loops.desired) == (0, 0)
    # And so do the CLI's status (table, warning, JSON) and watch
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    assert "work (broken)" in out
    assert "registration broken: queue does not exist" in err
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["broken"]["reason"].startswith("queue does not exist")
    assert main(["watch", "--once"]) == 0
    assert "work (broken)" in capsys.readouterr().out


def test_registering_again_replaces_a_broken_registration_and_a_sound_one_stays_refused(
    loops: LoopHarness, admin: QueueAdmin, aws: Clients, make_queue: Callable[..., MadeQueue]
) -> None:
    # Given a registration broken because its queue was deleted
    queue = make_queue("work")
    admin.register(QueueConfig(queue_url=queue.url, handler="lambda:worker", max_loops=3))
    token = loops.tokens.create(queue.url, slot=0)
    aws.sqs.delete_queue(QueueUrl=queue.url)
    assert loops.run(token).reason == QUEUE_MISSING

    # When the queue is back and it is registered again (new options)
    again = make_queue("work")
    assert again.url == queue.url
    registered = admin.register(QueueConfig(queue_url=again.url, handler="lambda:worker", max_loops=5))

    # Then the registration is sound again, with the new options, and loops may run
    config = admin.registry.get(queue.url)
    assert (config.broken, config.max_loops, registered.config.version) == (None, 5, 1)
    assert admin.registry.broken(queue.url) is None
    # And registering a sound registration again is refused as ever
    with pytest.raises(ConfigError, match="already registered"):
        admin.register(QueueConfig(queue_url=again.url, handler="lambda:worker"))


def test_update_cannot_set_or_clear_the_broken_mark(admin: QueueAdmin, queue: MadeQueue) -> None:
    admin.register(QueueConfig(queue_url=queue.url, handler="lambda:worker"))

    with pytest.raises(ConfigError, match="cannot update broken_reason"):
        admin.update(queue.url, broken_reason=None)
