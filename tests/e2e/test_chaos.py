"""The chaos benchmark, small, on the e2e stack: 1,000 messages (5% failing once, 0.5% poison) drained while
DynamoDB is throttled, self-invokes fail or are dropped and running loops are killed. Nothing may be lost and the
DLQ must hold exactly the poison. Timing is the benchmark's business (make chaos), not this test's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import DEFAULT_FAULTS, drain
from sqsloops.local.faults import Faults
from sqsloops.local.server import EmbeddedAws

pytestmark = pytest.mark.e2e

MESSAGES = 1000
LOOPS = 3


def test_under_faults_nothing_is_lost_and_the_dlq_holds_exactly_the_poison(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    faults = Faults.parse(f"{DEFAULT_FAULTS},seed=5")
    run = drain(embedded_aws, messages=MESSAGES, loops=LOOPS, faults=faults, log_dir=tmp_path, seed=5, deadline_s=60)
    assert run.sent == MESSAGES
    assert run.drain_s is not None, f"the queue did not drain: {run.left_in_queue} left"
    assert run.lost == 0
    assert run.in_dlq == round(MESSAGES * 0.005)
    assert run.dlq_exact
    assert run.processed == MESSAGES - run.in_dlq
