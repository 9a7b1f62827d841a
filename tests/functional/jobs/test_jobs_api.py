"""The HTTP API's function on moto: every route and status code, and bad input of each kind answered with a 4xx.

Requests go through functions/jobs_api/lambda_function.py with the JobClient it builds from its root (catalog, Jobs
table, Scheduler group from the environment), as payload format 2.0 events; answers are read back as JSON, and what a
request left in AWS (the message, the row, the schedule) is read back from moto.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs_api import lambda_function as app
from sqsloops.clock import ManualClock
from sqsloops.jobs.api import MAX_BATCH_ITEMS, JobsApi
from sqsloops.jobs.catalog import CatalogEntry, write_catalog
from sqsloops.jobs.envelope import MAX_MESSAGE_BYTES
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.store import JobStore
from sqsloops.settings import Settings
from tests.conftest import ACCOUNT, Clients
from tests.functional.jobs.conftest import JOBS_TABLE

EVENTS = Path(__file__).resolve().parents[3] / "events"
GROUP = "sqsloops-test-jobs"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sqsloops-test-scheduler"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"


@dataclass
class ApiWorld:
    aws: Clients
    clock: ManualClock
    store: JobStore
    urls: dict[str, str]
    api: JobsApi

    def call(self, method: str, path: str, body: Any = None, **event: Any) -> tuple[int, dict[str, Any], Any]:
        """One request through the function: (status, headers, JSON body)."""
        text = body if isinstance(body, str | None) else json.dumps(body)
        response = app.handle(http_event(method, path, text, **event), None, lambda: self.api)
        return response["statusCode"], response["headers"], json.loads(response["body"])

    def messages(self, job: str) -> list[dict[str, Any]]:
        got = self.aws.sqs.receive_message(QueueUrl=self.urls[job], MaxNumberOfMessages=10, VisibilityTimeout=60)
        return [json.loads(message["Body"]) for message in got.get("Messages", [])]

    def schedules(self) -> list[str]:
        return [s["Name"] for s in self.aws.scheduler.list_schedules(GroupName=GROUP)["Schedules"]]


def http_event(
    method: str, path: str, body: str | None = None, *, base64_body: bool = False, stage: str = "$default"
) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0) as the gateway sends one on an AWS_IAM route."""
    route = f"{method} /jobs/{{id}}" if path.count("/") > 1 and not path.endswith("/batch") else f"{method} {path}"
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {"host": HOST, "content-type": "application/json", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": HOST,
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1"},
            "routeKey": route,
            "stage": stage,
        },
        "isBase64Encoded": base64_body,
    }
    if "{id}" in route:
        event["pathParameters"] = {"id": path.rsplit("/", 1)[1]}
    if body is not None:
        event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    return event


def queue(aws: Clients, name: str) -> tuple[str, str]:
    url = aws.sqs.create_queue(QueueName=f"sqsloops-test-{name}")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def catalog_entries(aws: Clients) -> tuple[dict[str, CatalogEntry], dict[str, str]]:
    entries: dict[str, CatalogEntry] = {}
    urls: dict[str, str] = {}
    for name, options in {
        "send_email": {},
        "charge": {"unique": "until_done", "key": "order-{order_id}"},
        "firehose": {"track": False},
    }.items():
        url, arn = queue(aws, name)
        urls[name] = url
        entries[name] = CatalogEntry(job=name, queue_url=url, queue_arn=arn, **options)  # type: ignore[arg-type]
    return entries, urls


@pytest.fixture
def api_settings(settings: Settings, jobs_table: str) -> Settings:
    return dataclasses.replace(settings, jobs_table=jobs_table, schedule_group=GROUP, scheduler_role_arn=ROLE_ARN)


@pytest.fixture
def world(aws: Clients, api_settings: Settings, store: JobStore, clock: ManualClock) -> ApiWorld:
    entries, urls = catalog_entries(aws)
    write_catalog(aws.dynamodb, table_name=JOBS_TABLE, entries=entries, expected_version=0, clock=clock)
    aws.scheduler.create_schedule_group(Name=GROUP)
    root = JobsRoot(api_settings, clients=aws, clock=clock)
    return ApiWorld(aws, clock, store, urls, JobsApi(root.job_client))


# ---------------------------------------------------------------- POST /jobs


def test_a_job_posted_is_sent_and_answered_201_with_its_status_url(world: ApiWorld) -> None:
    status, headers, body = world.call("POST", "/jobs", {"job": "send_email", "args": [42], "kwargs": {"t": "hi"}})

    assert status == 201
    assert body == {
        "id": body["id"],
        "job": "send_email",
        "duplicate": False,
        "status_url": f"https://{HOST}/jobs/{body['id']}",
    }
    assert headers["location"] == body["status_url"]
    [message] = world.messages("send_email")
    assert (message["id"], message["args"], message["kwargs"]) == (body["id"], [42], {"t": "hi"})
    assert world.store.get(body["id"]).state.value == "queued"  # type: ignore[union-attr]


def test_args_as_an_object_are_keyword_arguments(world: ApiWorld) -> None:
    status, _, _ = world.call("POST", "/jobs", {"job": "send_email", "args": {"user_id": 7}})
    assert status == 201
    [message] = world.messages("send_email")
    assert (message["args"], message["kwargs"]) == ([], {"user_id": 7})


def test_a_unique_duplicate_is_200_with_the_first_jobs_id(world: ApiWorld) -> None:
    first = world.call("POST", "/jobs", {"job": "charge", "kwargs": {"order_id": 9}})
    second = world.call("POST", "/jobs", {"job": "charge", "kwargs": {"order_id": 9}})
    assert (first[0], second[0]) == (201, 200)
    assert (second[2]["id"], second[2]["duplicate"]) == (first[2]["id"], True)
    assert len(world.messages("charge")) == 1


def test_an_id_posted_twice_is_one_job(world: ApiWorld) -> None:
    first = world.call("POST", "/jobs", {"job": "send_email", "args": [1], "id": "welcome-1"})
    second = world.call("POST", "/jobs", {"job": "send_email", "args": [1], "id": "welcome-1"})
    assert (first[0], first[2]["id"], second[0], second[2]["id"]) == (201, "welcome-1", 200, "welcome-1")


def test_a_long_delay_becomes_a_schedule_and_a_short_one_a_message_delay(world: ApiWorld) -> None:
    status, _, later = world.call("POST", "/jobs", {"job": "send_email", "args": [1], "delay": "2h"})
    assert (status, later["scheduled"]) == (201, True)
    assert world.schedules() == [f"job-{later['id']}"]
    assert world.store.get(later["id"]).state.value == "scheduled"  # type: ignore[union-attr]

    status, _, soon = world.call("POST", "/jobs", {"job": "send_email", "args": [2], "delay": 60})
    assert status == 201
    assert "scheduled" not in soon
    attributes = world.aws.sqs.get_queue_attributes(
        QueueUrl=world.urls["send_email"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_run_at_in_the_future_is_scheduled(world: ApiWorld) -> None:
    status, _, body = world.call("POST", "/jobs", {"job": "send_email", "args": [1], "run_at": "2030-01-31T09:00:00Z"})
    assert (status, body["scheduled"]) == (201, True)


def test_an_untracked_job_has_no_status_url(world: ApiWorld) -> None:
    status, headers, body = world.call("POST", "/jobs", {"job": "firehose", "args": [1]})
    assert (status, body["tracked"], "status_url" in body, "location" in headers) == (201, False, False, False)


def test_a_named_stage_keeps_its_prefix_in_the_status_url(world: ApiWorld) -> None:
    _, _, body = world.call("POST", "/jobs", {"job": "send_email", "args": [1]}, stage="prod")
    assert body["status_url"] == f"https://{HOST}/prod/jobs/{body['id']}"


def test_a_base64_body_is_decoded(world: ApiWorld) -> None:
    status, _, _ = world.call("POST", "/jobs", json.dumps({"job": "send_email", "args": [3]}), base64_body=True)
    assert status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"args": [1]}, "job"),
        ({"job": 5}, "job"),
        ({"job": "send_email", "args": "1"}, "args"),
        ({"job": "send_email", "kwargs": [1]}, "kwargs"),
        ({"job": "send_email", "args": {"a": 1}, "kwargs": {"b": 2}}, "kwargs"),
        ({"job": "send_email", "delay": "soon"}, "delay"),
        ({"job": "send_email", "delay": True}, "delay"),
        ({"job": "send_email", "delay": -5}, "delay"),
        ({"job": "send_email", "run_at": "2030-01-31T09:00:00"}, "run_at"),  # no zone
        ({"job": "send_email", "run_at": "yesterday"}, "run_at"),
        ({"job": "send_email", "run_at": "2001-01-01T00:00:00Z"}, "run_at"),  # in the past
        ({"job": "send_email", "delay": 5, "run_at": "2030-01-31T09:00:00Z"}, "run_at"),
        ({"job": "send_email", "id": "not an id"}, "id"),
        ({"job": "send_email", "key": "k"}, "key"),  # not a unique job
        ({"job": "send_email", "key": ""}, "key"),
        ({"job": "charge", "args": [9]}, "kwargs"),  # its key is rendered from keyword arguments
        ({"job": "send_email", "delay_s": 5}, "delay_s"),  # a typo is refused, not ignored
    ],
)
def test_an_invalid_field_is_400_naming_it_and_sends_nothing(world: ApiWorld, body: Any, field: str) -> None:
    status, _, answer = world.call("POST", "/jobs", body)
    assert (status, answer["error"], answer.get("field")) == (400, "invalid", field), answer
    assert world.messages("send_email") == []
    assert world.schedules() == []


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', "", "   ", '{"job": NaN}', "[" * 100_000])
def test_a_malformed_body_is_400(world: ApiWorld, body: str) -> None:
    status, _, answer = world.call("POST", "/jobs", body)
    assert (status, answer["error"]) == (400, "malformed"), answer


def test_a_body_that_is_not_base64_when_it_says_so_is_400(world: ApiWorld) -> None:
    event = http_event("POST", "/jobs", "!!not base64!!")
    event["isBase64Encoded"] = True
    response = app.handle(event, None, lambda: world.api)
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (400, "malformed")


def test_an_unknown_job_is_404_naming_the_field(world: ApiWorld) -> None:
    status, _, answer = world.call("POST", "/jobs", {"job": "nope", "args": [1]})
    assert (status, answer["error"], answer["field"]) == (404, "unknown_job", "job")


def test_a_body_over_the_message_limit_is_413(world: ApiWorld) -> None:
    status, _, answer = world.call("POST", "/jobs", {"job": "send_email", "args": ["x" * MAX_MESSAGE_BYTES]})
    assert (status, answer["error"]) == (413, "too_large")


def test_a_message_over_the_limit_is_413_even_when_the_body_fits(world: ApiWorld) -> None:
    # the envelope adds its fields to the arguments: a body just under 1 MiB makes a message just over it
    status, _, answer = world.call("POST", "/jobs", {"job": "send_email", "args": ["x" * (MAX_MESSAGE_BYTES - 100)]})
    assert (status, answer["error"], answer["field"]) == (413, "too_large", "args")
    # and a delayed job goes through Scheduler, whose input is smaller
    status, _, answer = world.call("POST", "/jobs", {"job": "send_email", "args": ["x" * 300_000], "delay": "1h"})
    assert (status, answer["error"]) == (413, "too_large")
    assert world.messages("send_email") == []
    assert world.schedules() == []


# ---------------------------------------------------------------- POST /jobs/batch


def test_a_batch_answers_each_item(world: ApiWorld) -> None:
    items = [
        {"job": "send_email", "args": [1]},
        {"job": "nope"},
        {"job": "send_email", "delay": "soon"},
        "not an object",
        {"job": "charge", "kwargs": {"order_id": 1}},
        {"job": "charge", "kwargs": {"order_id": 1}},
        {"job": "send_email", "args": [2], "delay": "3h"},
    ]
    status, _, body = world.call("POST", "/jobs/batch", {"jobs": items})

    assert status == 200
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [201, 404, 400, 400, 201, 200, 201]
    assert (results[1]["field"], results[2]["field"], results[3]["field"]) == ("job", "delay", "jobs[3]")
    assert results[5]["id"] == results[4]["id"]
    assert results[5]["duplicate"] is True
    assert (body["accepted"], body["failed"]) == (4, 3)
    assert [m["id"] for m in world.messages("send_email")] == [results[0]["id"]]
    assert world.schedules() == [f"job-{results[6]['id']}"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"jobs": []}, 400, "jobs"),
        ({"jobs": {"job": "send_email"}}, 400, "jobs"),
        ({}, 400, "jobs"),
        ({"jobs": [{"job": "send_email"}], "extra": 1}, 400, "extra"),
        ({"jobs": [{"job": "send_email", "args": [i]} for i in range(MAX_BATCH_ITEMS + 1)]}, 413, "jobs"),
    ],
)
def test_a_batch_that_is_off_as_a_whole_is_refused_and_sends_nothing(
    world: ApiWorld, body: Any, status: int, field: str
) -> None:
    got, _, answer = world.call("POST", "/jobs/batch", body)
    assert (got, answer.get("field")) == (status, field), answer
    assert world.messages("send_email") == []


def test_a_batch_of_the_maximum_size_is_sent(world: ApiWorld) -> None:
    items = [{"job": "send_email", "args": [i]} for i in range(MAX_BATCH_ITEMS)]
    status, _, body = world.call("POST", "/jobs/batch", {"jobs": items})
    assert (status, body["accepted"], body["failed"]) == (200, MAX_BATCH_ITEMS, 0)


# ---------------------------------------------------------------- GET /jobs/{id}


def test_get_shows_state_attempts_times_last_error_and_result(world: ApiWorld) -> None:
    _, _, posted = world.call("POST", "/jobs", {"job": "send_email", "args": [1]})
    job_id = posted["id"]
    status, _, queued = world.call("GET", f"/jobs/{job_id}")
    assert status == 200
    assert (queued["state"], queued["attempts"], queued["result"], queued["last_error"]) == ("queued", 0, None, None)
    assert queued["enqueued_at"].endswith("Z")
    assert queued["started_at"] is None

    world.store.mark_running(job_id, job="send_email", attempt=1)
    world.store.mark_retrying(job_id, attempts=1, error="SMTP down", next_run_at=world.clock.now() + 10)
    world.store.mark_running(job_id, job="send_email", attempt=2)
    world.store.mark_succeeded(job_id, result_json='{"sent": 1}')
    _, _, done = world.call("GET", f"/jobs/{job_id}")
    assert (done["state"], done["attempts"], done["result"], done["last_error"]) == (
        "succeeded",
        2,
        {"sent": 1},
        "SMTP down",
    )
    assert done["started_at"]
    assert done["finished_at"]
    assert "traceback" not in done


@pytest.mark.parametrize("job_id", ["0123456789abcdef", "not%20an%20id", "x" * 200])
def test_get_of_an_unknown_or_impossible_id_is_404(world: ApiWorld, job_id: str) -> None:
    status, _, answer = world.call("GET", f"/jobs/{job_id}")
    assert (status, answer["error"]) == (404, "not_found")


# ---------------------------------------------------------------- DELETE /jobs/{id}


def test_delete_cancels_a_queued_job_and_frees_its_key(world: ApiWorld) -> None:
    _, _, first = world.call("POST", "/jobs", {"job": "charge", "kwargs": {"order_id": 3}})
    status, _, cancelled = world.call("DELETE", f"/jobs/{first['id']}")
    assert (status, cancelled["state"]) == (200, "cancelled")
    again, _, _ = world.call("POST", "/jobs", {"job": "charge", "kwargs": {"order_id": 3}})
    assert again == 201  # the key was freed: a new job, not a duplicate


def test_delete_of_a_scheduled_job_deletes_its_schedule(world: ApiWorld) -> None:
    _, _, posted = world.call("POST", "/jobs", {"job": "send_email", "args": [1], "delay": "1d"})
    assert world.schedules() == [f"job-{posted['id']}"]
    status, _, _ = world.call("DELETE", f"/jobs/{posted['id']}")
    assert (status, world.schedules()) == (200, [])


def test_delete_of_a_job_that_ran_is_409_with_its_state(world: ApiWorld) -> None:
    _, _, posted = world.call("POST", "/jobs", {"job": "send_email", "args": [1]})
    world.store.mark_running(posted["id"], job="send_email", attempt=1)
    status, _, answer = world.call("DELETE", f"/jobs/{posted['id']}")
    assert (status, answer["error"], answer["state"]) == (409, "not_cancellable", "running")
    world.store.mark_succeeded(posted["id"], result_json=None)
    assert world.call("DELETE", f"/jobs/{posted['id']}")[2]["state"] == "succeeded"


def test_delete_of_a_cancelled_job_is_409_and_of_an_unknown_one_404(world: ApiWorld) -> None:
    _, _, posted = world.call("POST", "/jobs", {"job": "send_email", "args": [1]})
    assert world.call("DELETE", f"/jobs/{posted['id']}")[0] == 200
    assert world.call("DELETE", f"/jobs/{posted['id']}")[0] == 409
    assert world.call("DELETE", "/jobs/never-was")[0] == 404


# ---------------------------------------------------------------- routes, events and wiring


@pytest.mark.parametrize(("method", "path"), [("GET", "/jobs"), ("PUT", "/jobs/x"), ("POST", "/other")])
def test_an_unknown_route_is_404(world: ApiWorld, method: str, path: str) -> None:
    status, _, answer = world.call(method, path)
    assert (status, answer["error"]) == (404, "route_not_found")


@pytest.mark.parametrize("event", [None, [], "text", {}])
def test_an_event_that_is_not_an_http_api_request_is_answered_not_raised(world: ApiWorld, event: Any) -> None:
    response = app.handle(event, None, lambda: world.api)
    assert 400 <= response["statusCode"] < 500


def test_the_sample_event_from_the_docs_shape_enqueues(world: ApiWorld) -> None:
    event = json.loads((EVENTS / "http_api_post_jobs.json").read_text())
    response = app.handle(event, None, lambda: world.api)
    assert response["statusCode"] == 201, response
    assert json.loads(response["body"])["status_url"].startswith("https://r3pmxmplak.execute-api.us-east-1")


def test_the_function_builds_its_client_from_its_environment(
    world: ApiWorld, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in api_settings.environment().items():
        monkeypatch.setenv(name, value)
    app.api.cache_clear()
    try:
        response = app.handler(http_event("POST", "/jobs", json.dumps({"job": "send_email", "args": [5]})), None)
    finally:
        app.api.cache_clear()
    assert response["statusCode"] == 201, response
    assert [m["args"] for m in world.messages("send_email")] == [[5]]


def test_a_stack_without_the_job_layer_answers_503_not_configured(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in settings.environment().items():  # no SQSLOOPS_JOBS_TABLE
        monkeypatch.setenv(name, value)
    app.api.cache_clear()
    try:
        response = app.handler(http_event("GET", "/jobs/abc"), None)
    finally:
        app.api.cache_clear()
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (503, "not_configured")
