"""`@job(http=URL)`: a job of a web app, declared in Python (its arguments checked at enqueue), applied like any job:
its queue is registered with the `http:` handler carrying the job's timeout, retries and receipt timeout, and its
catalog entry lets every door enqueue it by name."""

from __future__ import annotations

from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.handlers import parse_http_target
from sqsloops.jobs import job
from sqsloops.jobs.catalog import read_catalog
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.errors import JobArgsError, JobDefinitionError
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.functional.jobs.apply_kit import STACK, JobStack, job_stack

APP_URL = "https://app.example.com/jobs/{job}"


@job(http=APP_URL, timeout="20s", retries=4, receipt_timeout="2h", concurrency=3)
def send_invoice(invoice_id: int) -> None:
    """Runs in the billing app: this only declares its arguments."""


@job
def resize(image: str) -> None:
    return None


JOBS: dict[str, JobFunction[..., Any]] = {fn.name: fn for fn in (send_invoice, resize)}


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    return job_stack(aws, settings, clock)


def test_an_http_job_is_registered_with_its_http_handler_and_options(stack: JobStack) -> None:
    stack.run(JOBS)

    config = stack.root.admin.registry.find(stack.url(f"{STACK}-send_invoice"))
    assert config is not None
    kind, _, target = config.handler.partition(":")
    assert kind == "http"
    spec = parse_http_target(target)
    assert (spec.url, spec.timeout_s, spec.retries, spec.receipt_timeout_s) == (APP_URL, 20.0, 4, 7200.0)
    assert config.max_loops == 3
    # the loop job beside it keeps its jobs: registration
    other = stack.root.admin.registry.find(stack.url(f"{STACK}-resize"))
    assert other is not None
    assert other.handler.startswith("jobs:")
    # and its catalog entry lets the API, the CLI and the entry topic send it by name
    entry = read_catalog(stack.aws.dynamodb, table_name=stack.settings.jobs_table).entries["send_invoice"]
    assert entry.queue_url == stack.url(f"{STACK}-send_invoice")
    assert entry.track


def test_a_second_apply_changes_nothing_and_prune_removes_an_http_job(stack: JobStack) -> None:
    stack.run(JOBS)
    assert stack.run(JOBS).changes == []

    pruned = stack.run({"resize": resize}, prune=True)

    assert ("delete", "registration") in {(s.action, s.kind) for s in pruned.changes}
    assert f"{STACK}-send_invoice" not in stack.queue_names()


def test_an_http_job_is_enqueued_with_its_declared_arguments(stack: JobStack) -> None:
    stack.run(JOBS)
    client = stack.root.job_client

    handle = client.enqueue("send_invoice", [7])

    assert handle.status().state.value == "queued"
    with pytest.raises(JobArgsError, match="do not fit"):  # from code, the declaration checks the call
        send_invoice.enqueue(7, 8)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"http": APP_URL, "track": False}, "tracked"),
        ({"http": APP_URL, "unique": "until_done"}, "unique"),
        ({"http": APP_URL, "backoff": ("1s", "1m")}, "default backoff"),
        ({"http": APP_URL, "runs_in": "function"}, "runs_in"),
        ({"http": "http://app.example.com/jobs/{job}"}, "plain http"),
        ({"http": "https://app.example.com/{queue}"}, "placeholder"),
        ({"http": APP_URL, "receipt_timeout": "13h"}, "12 h"),
        ({"http": 7}, "URL"),
        ({"receipt_timeout": "1h"}, "http jobs only"),
    ],
)
def test_a_bad_http_declaration_is_refused_at_import_naming_the_option(options: dict[str, Any], problem: str) -> None:
    def invoice(invoice_id: int) -> None:
        return None

    with pytest.raises(JobDefinitionError, match=problem) as refused:
        job(**options)(invoice)
    assert "invoice" in str(refused.value)


def test_jobs_sharing_a_queue_must_agree_on_where_they_run() -> None:
    import types

    from sqsloops.jobs.definition import jobs_in

    def a(n: int) -> None:
        return None

    def b(n: int) -> None:
        return None

    module = types.ModuleType("mixed")
    module.a = job(http=APP_URL, queue="shared")(a)  # type: ignore[attr-defined]
    module.b = job(queue="shared")(b)  # type: ignore[attr-defined]
    with pytest.raises(JobDefinitionError, match="http_target"):
        jobs_in(module)
