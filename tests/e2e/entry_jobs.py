"""Jobs the entry-topic e2e test (test_entry_topic_e2e.py) applies as `jobs:tests.e2e.entry_jobs`: the process
function's workers import them from the test layer (conftest.py: TEST_HANDLERS_LAYER), beside the lib layer's
sqsloops. `entry_late` is applied only after messages for it landed in Unroutable."""

from __future__ import annotations

from sqsloops.jobs import job


@job(timeout="5s", retries=0)
def entry_greet(name: str) -> str:
    return f"hello {name}"


@job(timeout="5s", retries=0)
def entry_late(n: int) -> int:
    return n * 2
