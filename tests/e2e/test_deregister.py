"""Deregistration on the embedded AWS: every loop of the queue stops within a heartbeat, and nothing brings one back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqsloops.ops.registration import QueueAdmin
from sqsloops.queues import queue_depth
from sqsloops.registry import QueueConfig
from tests.e2e.conftest import eventually, send_bodies
from tests.e2e.handlers import read_log

pytestmark = pytest.mark.e2e

LOOPS = 2
LONG_POLL_S = 1.0  # a loop's receive wait never exceeds its time to the next heartbeat, or 1 s
MARGIN_S = 3.0  # one batch of a fast handler, and a loaded 2-core machine


def test_deregistering_stops_every_loop_within_a_heartbeat_and_no_message_is_received_after(
    embedded_aws: Any,
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_with_dlq: Callable[..., tuple[str, str]],
    tmp_path: Path,
) -> None:
    sqs, tokens = embedded_aws.client("sqs"), registrations.tokens
    heartbeat_s = embedded_aws.settings.heartbeat_s
    log = tmp_path / "processed.jsonl"
    # Given a queue whose two loops are running: they handle messages and have proved their tokens
    queue_url, _ = make_queue_with_dlq("dereg")
    register(
        queue_url,
        handler="python:tests.e2e.handlers:record",
        min_loops=LOOPS,
        max_loops=LOOPS,
        visibility_timeout_s=30,
    )
    before = [{"id": f"before-{i}", "log": str(log)} for i in range(5)]
    send_bodies(sqs, queue_url, before)
    eventually(lambda: {e["id"] for e in read_log(log)} == {b["id"] for b in before}, what="the loops handling")
    eventually(
        lambda: [t.invocations > 0 for t in tokens.list(queue_url)] == [True] * LOOPS,
        what=f"{LOOPS} loops that heartbeat",
    )

    # When the queue is deregistered
    result = registrations.deregister(queue_url)

    # Then its tokens and alarms are gone at once
    assert result.tokens_retired == LOOPS
    assert tokens.list(queue_url) == []
    assert registrations.alarms.names(queue_url) == []
    # And after one heartbeat period (plus a long poll and a batch) no loop receives from it any more
    stop_s = heartbeat_s + LONG_POLL_S + MARGIN_S
    time.sleep(stop_s)
    handled_before = len(read_log(log))
    after = [{"id": f"after-{uuid.uuid4().hex[:6]}", "log": str(log)} for _ in range(10)]
    send_bodies(sqs, queue_url, after)
    watch_until = time.monotonic() + stop_s
    while time.monotonic() < watch_until:
        depth = queue_depth(sqs, queue_url)
        assert (depth.visible, depth.in_flight) == (len(after), 0)
        time.sleep(0.25)
    assert len(read_log(log)) == handled_before
    # And neither the sweep nor a scale-up brought a token back
    assert tokens.list(queue_url) == []
