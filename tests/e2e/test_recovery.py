"""Recovery on the embedded AWS: a loop whose execution environment dies mid-batch comes back (through the process
function's OnFailure destination at once, else the restart sweep once its token is stale), and the messages it held
come back through their visibility timeout."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sqsloops.ops.registration import QueueAdmin
from sqsloops.registry import QueueConfig
from tests.e2e.conftest import eventually, is_empty, send_bodies
from tests.e2e.handlers import read_log

pytestmark = pytest.mark.e2e

MESSAGES = 20
VISIBILITY_S = 10  # about when the sweep has revived the loop (stale after 12 s at the e2e time scale)


def test_a_loop_killed_mid_batch_is_revived_and_loses_no_message(
    embedded_aws: Any,
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    tmp_path: Path,
) -> None:
    sqs, tokens = embedded_aws.client("sqs"), registrations.tokens
    # Given a queue with exactly one loop, whose handler blocks while the gate file exists
    queue_url, dlq_url = make_queue_with_dlq("recovery")
    register(
        queue_url,
        handler="python:tests.e2e.handlers:blocking",
        min_loops=1,
        max_loops=1,
        batch_size=5,
        visibility_timeout_s=VISIBILITY_S,
    )
    [before] = tokens.list(queue_url)
    gate, blocked_log, log = tmp_path / "gate", tmp_path / "blocked.jsonl", tmp_path / "processed.jsonl"
    gate.touch()
    ids = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(MESSAGES)]
    bodies = [{"id": i, "log": str(log), "gate": str(gate), "blocked_log": str(blocked_log)} for i in ids]
    send_bodies(sqs, queue_url, bodies)

    # When the loop's execution environment is killed while its handler is in the middle of a batch
    [blocked] = eventually(lambda: read_log(blocked_log), what="the handler blocked mid-batch")
    os.kill(blocked["pid"], signal.SIGKILL)
    gate.unlink()

    # Then the restart sweep takes the stale token over: the same token, with a new loop_id
    revived = eventually(
        lambda: [token for token in tokens.list(queue_url) if token.loop_id != before.loop_id],
        what="the token taken over by a new loop",
    )
    assert [token.slot for token in revived] == [before.slot]

    # And every message is handled, those of the killed batch after their visibility timeout
    eventually(lambda: {entry["id"] for entry in read_log(log)} == set(ids), what="every message handled")
    retried = [entry["receive_count"] for entry in read_log(log) if entry["id"] == blocked["id"]]
    assert max(retried) >= 2

    eventually(lambda: is_empty(sqs, queue_url), what="the queue drained")
    assert is_empty(sqs, dlq_url)
    # And the revived loop is the only one
    assert [token.slot for token in tokens.list(queue_url)] == [before.slot]


@contextmanager
def restart_sweep_paused(embedded_aws: Any) -> Iterator[None]:
    """Disable the schedule that runs the restart sweep (the embedded scheduler skips disabled rules), then restore it.

    With the sweep off, a loop can only come back through the OnFailure destination.
    """
    events = embedded_aws.client("events")
    restart_arn = embedded_aws.client("lambda").get_function(FunctionName=f"{embedded_aws.stack_name}-restart")[
        "Configuration"
    ]["FunctionArn"]
    names = events.list_rule_names_by_target(TargetArn=restart_arn)["RuleNames"]
    assert names, "the restart function has no schedule rule"
    for name in names:
        events.disable_rule(Name=name)
    try:
        yield
    finally:
        for name in names:
            events.enable_rule(Name=name)


def test_a_failed_invocation_is_revived_through_its_on_failure_destination_without_the_sweep(
    embedded_aws: Any,
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    tmp_path: Path,
) -> None:
    sqs, tokens = embedded_aws.client("sqs"), registrations.tokens
    # Given a queue with exactly one loop, blocked in the middle of a batch
    queue_url, dlq_url = make_queue_with_dlq("revive")
    register(
        queue_url,
        handler="python:tests.e2e.handlers:blocking",
        min_loops=1,
        max_loops=1,
        batch_size=5,
        visibility_timeout_s=VISIBILITY_S,
    )
    [before] = tokens.list(queue_url)
    gate, blocked_log, log = tmp_path / "gate", tmp_path / "blocked.jsonl", tmp_path / "processed.jsonl"
    gate.touch()
    ids = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(MESSAGES)]
    bodies = [{"id": i, "log": str(log), "gate": str(gate), "blocked_log": str(blocked_log)} for i in ids]
    send_bodies(sqs, queue_url, bodies)
    [blocked] = eventually(lambda: read_log(blocked_log), what="the handler blocked mid-batch")

    with restart_sweep_paused(embedded_aws):
        # When its invocation fails (its execution environment killed) while no sweep runs
        os.kill(blocked["pid"], signal.SIGKILL)
        gate.unlink()

        # Then the restart function, sent the failure record, took that token over for a new loop at once
        revived = eventually(
            lambda: [token for token in tokens.list(queue_url) if token.loop_id != before.loop_id],
            what="the token taken over through the OnFailure destination",
        )
        assert [token.slot for token in revived] == [before.slot]
        # And every message is handled by it, the killed batch's after their visibility timeout
        eventually(lambda: {entry["id"] for entry in read_log(log)} == set(ids), what="every message handled")

    eventually(lambda: is_empty(sqs, queue_url), what="the queue drained")
    assert is_empty(sqs, dlq_url)
    assert [token.slot for token in tokens.list(queue_url)] == [before.slot]
