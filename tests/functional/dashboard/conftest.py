"""The dashboard app over a job stack on moto (tests/functional/jobs/apply_kit.py's, its jobs applied), through
Starlette's TestClient: real HTTP requests into the ASGI app, real boto3 calls behind it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from sqsloops.clock import ManualClock
from sqsloops.dashboard.app import create_app
from sqsloops.dashboard.model import Dashboard
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.store import JobStore
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.functional.jobs.apply_kit import STACK, JobStack, job_stack

TOKEN = "the-startup-token"
HOST = "testserver"  # TestClient's host name, allowed as a loopback name is in a real server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    made = job_stack(aws, settings, clock)
    made.run()  # send_email, resize (min 1 loop), digest (cron, Europe/Paris), charge
    return made


@pytest.fixture
def dashboard(stack: JobStack) -> Dashboard:
    return Dashboard(stack.root, min_sample_interval_s=0.0)


@pytest.fixture
def anonymous(dashboard: Dashboard) -> Iterator[TestClient]:
    """A browser that has not been given the token."""
    app = create_app(dashboard, token=TOKEN, allowed_hosts=(HOST,), sample_interval_s=None)
    with TestClient(app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    """A browser that opened the printed URL once: it holds the token's cookie."""
    response = anonymous.get(f"/?token={TOKEN}")
    assert response.status_code == 303, response.text
    return anonymous


def store_of(stack: JobStack) -> JobStore:
    store = stack.root.job_store
    assert store is not None
    return store


def kill(stack: JobStack, job_id: str, name: str = "send_email") -> None:
    """A job as the runner leaves a dead one: its row dead after 3 attempts, its envelope in the DLQ."""
    store = store_of(stack)
    now = datetime.fromtimestamp(stack.clock.now(), UTC)
    envelope = replace(Envelope.create(name, [7], {}, now=now, id=job_id), attempt=3)
    assert store.create(job_id, name, enqueued_at=stack.clock.now())
    store.mark_running(job_id, job=name, attempt=3)
    store.mark_dead(job_id, attempts=3, error="ValueError: boom", traceback="Traceback (most recent call last):\n...")
    stack.send(f"{STACK}-{name}-dlq", envelope.to_json())


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]
