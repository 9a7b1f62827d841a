"""One queue, one registration: every spelling of a queue's URL is reduced to the same key before anything is keyed.

Against moto, which (like SQS) answers a queue's attributes for any host that names its account and name; its
GetQueueUrl returns the URL sqsloops keys by, as AWS's does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sqsloops.clock import ManualClock
from sqsloops.errors import ConfigError
from sqsloops.ops.registration import QueueAdmin
from sqsloops.ops.root import OpsRoot
from sqsloops.queues import QueueRef, canonical_queue_url
from sqsloops.registry import QueueConfig
from sqsloops.settings import Settings
from tests.conftest import ACCOUNT, REGION, Clients
from tests.conftest import TestQueue as MadeQueue
from tests.functional.test_registration import RecordingLauncher, alarms_in_cloudwatch, live_tokens_in_table

CANONICAL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders"
SPELLINGS = (
    CANONICAL,
    f"http://localhost:4566/{ACCOUNT}/orders",
    f"https://queue.amazonaws.com/{ACCOUNT}/orders",  # the legacy us-east-1 endpoint
    f"http://127.0.0.1:5000/{ACCOUNT}/orders",  # the embedded AWS's host
    f"https://{REGION}.queue.amazonaws.com/{ACCOUNT}/orders",  # the legacy regional endpoint
)


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def service(aws: Clients, settings: Settings, launcher: RecordingLauncher) -> QueueAdmin:
    return OpsRoot(
        settings, clients=aws, launcher=launcher, clock=ManualClock(1_700_000_000.0), check_handlers=False
    ).admin


@pytest.fixture
def queue(make_queue: Callable[..., MadeQueue]) -> MadeQueue:
    made = make_queue("orders")
    assert made.url == CANONICAL
    return made


def config(url: str, **options: int) -> QueueConfig:
    values = {"min_loops": 1, "max_loops": 1, **options}
    return QueueConfig(queue_url=url, handler="lambda:worker", **values)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_canonicalises_to_the_url_get_queue_url_returns(
    aws: Clients, queue: MadeQueue, spelling: str
) -> None:
    url, identity = canonical_queue_url(aws.sqs, spelling)

    assert url == queue.url
    assert identity.arn == queue.arn


@pytest.mark.parametrize("first", [SPELLINGS[0], SPELLINGS[1]])
@pytest.mark.parametrize("second", SPELLINGS[1:])
def test_registering_the_same_queue_by_another_spelling_is_refused(
    aws: Clients,
    settings: Settings,
    service: QueueAdmin,
    launcher: RecordingLauncher,
    queue: MadeQueue,
    first: str,
    second: str,
) -> None:
    # Given the queue registered under one spelling, with one loop
    registered = service.register(config(first))
    assert registered.config.queue_url == queue.url  # stored under the canonical URL, whatever was typed

    # When it is registered again under another spelling, Then that is refused as a duplicate
    with pytest.raises(ConfigError, match="already registered"):
        service.register(config(second, max_loops=5))

    # And there is one registration, one set of loops and one set of alarms, all under the canonical URL
    assert [c.queue_url for c in service.list()] == [queue.url]
    assert [item["queue_url"]["S"] for item in live_tokens_in_table(aws, settings)] == [queue.url]
    assert [t.queue_url for t in launcher.started] == [queue.url]
    names = [alarm["AlarmName"] for alarm in alarms_in_cloudwatch(aws)]
    assert names == service.alarms.names(queue.url)


def test_a_registration_written_under_an_old_spelling_still_counts_as_the_queue(
    aws: Clients, service: QueueAdmin, queue: MadeQueue
) -> None:
    # Given a registration written before canonicalisation, keyed by the legacy URL the user typed then
    legacy = f"https://queue.amazonaws.com/{ACCOUNT}/orders"
    service.registry.create(config(legacy))

    # Then registering the canonical URL is a duplicate of it, and commands given any spelling find it
    with pytest.raises(ConfigError, match=f"already registered as {legacy}"):
        service.register(config(queue.url))
    assert service.resolve(queue.url) == legacy
    assert [s.queue_url for s in service.status(queue.url)] == [legacy]
    assert service.deregister(f"http://localhost:4566/{ACCOUNT}/orders").queue_url == legacy
    assert service.list() == []


def test_commands_given_another_spelling_act_on_the_one_registration(
    aws: Clients, settings: Settings, service: QueueAdmin, queue: MadeQueue
) -> None:
    service.register(config(queue.url, max_loops=3))
    other = f"http://localhost:4566/{ACCOUNT}/orders"

    updated = service.update(other, max_loops=4)
    change = service.scale(other, 2)
    deregistered = service.deregister(other)

    assert (updated.config.queue_url, updated.config.max_loops) == (queue.url, 4)
    assert (change.queue_url, change.after) == (queue.url, 2)
    assert (deregistered.queue_url, deregistered.tokens_retired) == (queue.url, 2)
    assert service.list() == []


def test_another_queue_of_the_same_name_in_another_region_is_another_queue() -> None:
    here = QueueRef.parse(f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders")

    assert here.same_queue(QueueRef.parse(f"http://localhost:4566/{ACCOUNT}/orders"), region=REGION)
    assert here.same_queue(QueueRef.parse(f"https://queue.amazonaws.com/{ACCOUNT}/orders"), region=REGION)
    assert not here.same_queue(QueueRef.parse(f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/orders"), region=REGION)
    assert not here.same_queue(QueueRef.parse(f"https://sqs.{REGION}.amazonaws.com/210987654321/orders"), region=REGION)
    assert not here.same_queue(QueueRef.parse(f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders2"), region=REGION)
