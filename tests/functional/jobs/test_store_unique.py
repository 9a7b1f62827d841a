"""Unique keys against moto: a claim per scope, its release by its owner, a window that passes."""

from __future__ import annotations

import math

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.jobs import schema
from sqsloops.jobs.store import DEFAULT_TTL_S, JobStore, KeyClaim, KeyScope
from tests.conftest import Clients
from tests.functional.jobs.conftest import raw_item
from tests.functional.jobs.kit import JOB


@pytest.mark.parametrize("scope", [KeyScope.UNTIL_STARTED, KeyScope.UNTIL_DONE, "until_done"])
def test_a_held_key_makes_a_second_enqueue_a_duplicate_until_its_owner_releases_it(
    aws: Clients, store: JobStore, clock: ManualClock, scope: str
) -> None:
    # Given a key claimed by the first job
    first = store.claim_key(JOB, "order-7", job_id="j1", scope=scope)

    # When a second job claims it, and a job that does not hold it tries to release it
    second = store.claim_key(JOB, "order-7", job_id="j2", scope=scope)
    released_by_other = store.release_key(JOB, "order-7", job_id="j2")

    # Then the first holds it, the second is told the first's id, and only the owner's release counts
    assert first == KeyClaim(claimed=True, job_id="j1", expires_at=math.ceil(clock.now() + DEFAULT_TTL_S))
    assert (second.claimed, second.duplicate, second.job_id) == (False, True, "j1")
    assert released_by_other is False
    item = raw_item(aws, schema.key_pk(JOB, "order-7"))
    assert item is not None
    assert (item["job_id"], item["scope"]) == ({"S": "j1"}, {"S": str(scope)})

    # When the owner releases it (at start or at a final state), a new job may claim it
    assert store.release_key(JOB, "order-7", job_id="j1") is True
    assert raw_item(aws, schema.key_pk(JOB, "order-7")) is None
    assert store.claim_key(JOB, "order-7", job_id="j3", scope=scope).claimed
    assert store.release_key(JOB, "order-7", job_id="j1") is False  # released once


def test_claiming_again_for_the_same_job_is_still_its_claim(aws: Clients, store: JobStore, clock: ManualClock) -> None:
    first = store.claim_key(JOB, "k", job_id="j1", scope="window", window_s=60)
    clock.advance(10)
    again = store.claim_key(JOB, "k", job_id="j1", scope="window", window_s=60)
    assert again == first  # a retried enqueue: claimed, and the window is not extended


def test_a_window_claim_holds_for_its_window_then_is_free_before_ttl_deletes_it(
    aws: Clients, store: JobStore, clock: ManualClock
) -> None:
    # Given a claim for a 10-minute window
    clock.advance(0.5)
    claim = store.claim_key(JOB, "daily-report", job_id="j1", scope=KeyScope.WINDOW, window_s=600)
    assert claim.expires_at == math.ceil(clock.now() + 600)

    # When another job claims it within the window, and again once the window has passed
    clock.advance(599)
    within = store.claim_key(JOB, "daily-report", job_id="j2", scope="window", window_s=600)
    clock.advance(2)
    assert raw_item(aws, schema.key_pk(JOB, "daily-report")) is not None  # TTL has not deleted it (it may not for 48 h)
    after = store.claim_key(JOB, "daily-report", job_id="j3", scope="window", window_s=600)

    # Then the first is a duplicate of j1, the second gets the key: the expired claim counted as free
    assert (within.duplicate, within.job_id) == (True, "j1")
    assert (after.claimed, after.job_id) == (True, "j3")
    item = raw_item(aws, schema.key_pk(JOB, "daily-report"))
    assert item is not None
    assert item["job_id"] == {"S": "j3"}
    assert int(item["expires_at"]["N"]) == math.ceil(clock.now() + 600)


def test_an_until_claim_whose_release_was_lost_frees_itself_after_its_ttl(store: JobStore, clock: ManualClock) -> None:
    store.claim_key(JOB, "k", job_id="j1", scope="until_done", ttl_s=3600)
    clock.advance(3601)
    assert store.claim_key(JOB, "k", job_id="j2", scope="until_done").claimed


def test_keys_are_per_job(store: JobStore) -> None:
    assert store.claim_key(JOB, "k", job_id="j1", scope="until_done").claimed
    assert store.claim_key("other_job", "k", job_id="j2", scope="until_done").claimed


def test_a_key_claim_is_no_job_row(store: JobStore) -> None:
    store.claim_key(JOB, "k", job_id="j1", scope="until_done")
    assert store.list(JOB) == ([], None)
    assert store.get("k") is None


@pytest.mark.parametrize(
    ("scope", "window_s"),
    [("forever", None), ("window", None), ("window", 0), ("until_done", 60)],
)
def test_a_bad_claim_is_refused(aws: Clients, store: JobStore, scope: str, window_s: float | None) -> None:
    with pytest.raises(ConfigError):
        store.claim_key(JOB, "k", job_id="j1", scope=scope, window_s=window_s)
    assert raw_item(aws, schema.key_pk(JOB, "k")) is None
