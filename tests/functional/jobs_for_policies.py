"""Jobs the process function runs in tests/functional/test_template_policies.py's traced scenario (`jobs:` kind)."""

from __future__ import annotations

from sqsloops.jobs import job


@job
def noted(n: int) -> dict[str, int]:
    """Succeeds: the row goes queued -> running -> succeeded (UpdateItem)."""
    return {"n": n}


@job(unique="until_done", key="once-{n}")
def once(n: int) -> None:
    """Succeeds and frees its unique key (DeleteItem)."""
    return None
