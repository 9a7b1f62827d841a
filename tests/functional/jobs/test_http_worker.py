"""http: workers on moto against a real web app on 127.0.0.1: every answer, the app down, receipts, signatures.

Given a queue registered with `http:<the app's URL>` and a job message in it, when a loop's dispatch and settlement
run once, then the job's row, the queue, its DLQ and what the app saw say what happened.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from examples.http_worker import make_server
from sqsloops.clock import ManualClock
from sqsloops.dispatch import Outcome, to_lambda_record
from sqsloops.errors import ConfigError
from sqsloops.handlers import validate_handler
from sqsloops.jobs.api import JobsApi
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.http import (
    ATTEMPT_HEADER,
    JOB_ID_HEADER,
    HttpDispatcher,
    HttpKind,
    InvalidSignatureError,
    SecretSource,
    sign,
    verify,
)
from sqsloops.jobs.receipts import ReceiptDesk
from sqsloops.jobs.store import JobRecord, JobStore
from sqsloops.registry import QueueConfig
from sqsloops.settle import Settler
from tests.conftest import REGION, Clients, TestQueue
from tests.fixtures.http_app import Answer, WebApp, closed_port, web_app

SECRET = "s3cret-current"
OLD_SECRET = "s3cret-previous"
JOB = "send_email"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())  # signatures are checked against the app's real clock


@pytest.fixture
def secrets(aws: Clients, clock: ManualClock) -> SecretSource:
    arn = aws.get("secretsmanager").create_secret(
        Name="sqsloops-test-http-workers", SecretString=json.dumps({"current": SECRET, "previous": OLD_SECRET})
    )["ARN"]
    return SecretSource(secretsmanager=aws.get("secretsmanager"), secret_id=arn, clock=clock)


@pytest.fixture
def app() -> Iterator[WebApp]:
    with web_app(SECRET) as running:
        yield running


@dataclass
class Worker:
    aws: Clients
    store: JobStore
    secrets: SecretSource
    queue: TestQueue
    clock: ManualClock
    handles: tuple[str, ...] | list[str] = ()

    def dispatcher(self, url: str, options: str = "") -> HttpDispatcher:
        kind = HttpKind(store=lambda: self.store, secrets=lambda: self.secrets, clock=self.clock)
        target = url + (f"#{options}" if options else "")
        validate_handler(f"http:{target}")
        return kind.build(target, QueueConfig(queue_url=self.queue.url, handler=f"http:{target}"))

    def send(self, job_id: str = "j1", *args: Any, job: str = JOB) -> None:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        envelope = Envelope.create(job, list(args) or [42], {}, now=now, id=job_id)
        self.aws.sqs.send_message(QueueUrl=self.queue.url, MessageBody=envelope.to_json())

    def run(self, dispatcher: HttpDispatcher) -> tuple[Outcome, list[dict[str, Any]]]:
        """One receive, dispatch and settlement, as a loop does it."""
        messages = self.aws.sqs.receive_message(
            QueueUrl=self.queue.url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        assert messages, "no message to run"
        self.handles = [m["ReceiptHandle"] for m in messages]
        records = [to_lambda_record(m, queue_arn=self.queue.arn, region=REGION) for m in messages]
        outcome = dispatcher.dispatch(records)
        config = QueueConfig(queue_url=self.queue.url, handler="http:x", backoff_base_s=0, backoff_max_s=0)
        Settler(sqs=self.aws.sqs, queue_url=self.queue.url, clock=self.clock).settle(config, messages, outcome)
        return outcome, records

    def reveal(self) -> None:
        """Make the last run's messages visible now (what the end of a hold does)."""
        for handle in self.handles:
            self.aws.sqs.change_message_visibility(QueueUrl=self.queue.url, ReceiptHandle=handle, VisibilityTimeout=0)

    def row(self, job_id: str = "j1") -> JobRecord:
        row = self.store.get(job_id)
        assert row is not None
        return row

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(messages in the queue, visible or not; messages in its DLQ)."""

        def total(queue_url: str) -> int:
            names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            attributes = self.aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
            return sum(int(attributes[name]) for name in names)

        return total(url or self.queue.url), total(self.queue.dlq_url)

    def receipt(self, job_id: str, payload: dict[str, Any], *, secret: str = SECRET) -> tuple[int, dict[str, Any]]:
        desk = ReceiptDesk(store=self.store, sqs=self.aws.sqs, secrets=self.secrets)
        body = json.dumps(payload).encode()
        answer = desk.receive(job_id, sign(body, secret, now_s=self.clock.now()), body)
        return answer.status, answer.body


@pytest.fixture
def worker(
    aws: Clients, store: JobStore, secrets: SecretSource, make_queue: Callable[..., TestQueue], clock: ManualClock
) -> Worker:
    return Worker(aws, store, secrets, make_queue("http-work", max_receive_count=100), clock)


# ---------------------------------------------------------------- the answers


def test_a_2xx_succeeds_with_its_json_result_and_the_request_is_signed(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(200, {"sent": 42}))
    worker.send("j1", 42)

    worker.run(worker.dispatcher(app.url))

    row = worker.row()
    assert (row.state.value, row.attempts, json.loads(row.result or "null")) == ("succeeded", 1, {"sent": 42})
    assert worker.counts() == (0, 0)
    [seen] = app.seen
    assert seen.path == f"/jobs/{JOB}"
    assert seen.verified
    assert seen.headers[JOB_ID_HEADER] == "j1"
    assert seen.headers[ATTEMPT_HEADER] == "1"
    assert (seen.json["id"], seen.json["job"], seen.json["args"]) == ("j1", JOB, [42])


def test_a_4xx_is_dead_at_once_in_the_dlq(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(422, {"error": "no such user"}))
    worker.send()

    outcome, _ = worker.run(worker.dispatcher(app.url))

    assert [f.dead for f in outcome.failed] == [True]
    row = worker.row()
    assert (row.state.value, row.attempts) == ("dead", 1)
    assert "422" in (row.last_error or "")
    assert "no such user" in (row.last_error or "")
    assert worker.counts() == (0, 1)


def test_a_5xx_spends_an_attempt_and_is_retried_until_it_succeeds(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(500, {"error": "db down"}), Answer(200, {"done": True}))
    worker.send()
    dispatcher = worker.dispatcher(app.url)

    outcome, _ = worker.run(dispatcher)

    assert [f.dead for f in outcome.failed] == [False]
    assert (worker.row().state.value, worker.row().attempts) == ("retrying", 1)
    assert worker.counts() == (1, 0)  # kept, hidden for the backoff
    worker.reveal()
    worker.run(dispatcher)
    assert (worker.row().state.value, worker.row().attempts) == ("succeeded", 2)
    assert worker.counts() == (0, 0)
    assert [s.headers[ATTEMPT_HEADER] for s in app.seen] == ["1", "2"]


def test_a_429_is_handed_back_after_retry_after_and_spends_nothing(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(429, None, {"Retry-After": "120"}))
    worker.send()

    outcome, _ = worker.run(worker.dispatcher(app.url))

    assert [f.retry_in_s for f in outcome.failed] == [120]
    assert (worker.row().state.value, worker.row().attempts) == ("retrying", 0)
    assert worker.counts() == (1, 0)


def test_a_503_with_retry_after_spends_an_attempt_and_waits_that_long(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(503, None, {"Retry-After": "30"}))
    worker.send()

    outcome, _ = worker.run(worker.dispatcher(app.url))

    assert [f.retry_in_s for f in outcome.failed] == [30]
    assert (worker.row().state.value, worker.row().attempts) == ("retrying", 1)


def test_no_answer_within_the_timeout_is_a_failed_attempt_retried(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(200, hang_s=30))
    worker.send()

    outcome, _ = worker.run(worker.dispatcher(app.url, "timeout=1s"))
    app.release()

    assert [f.dead for f in outcome.failed] == [False]
    row = worker.row()
    assert (row.state.value, row.attempts) == ("retrying", 1)
    assert "no answer" in (row.last_error or "")
    assert worker.counts() == (1, 0)


def test_a_web_app_that_is_down_spends_nothing_and_loses_nothing(worker: Worker, app: WebApp) -> None:
    worker.send()
    down = f"http://127.0.0.1:{closed_port()}/jobs/{{job}}"

    outcome, _ = worker.run(worker.dispatcher(down))

    assert [(f.dead, f.retry_in_s) for f in outcome.failed] == [(False, None)]  # the queue's backoff
    assert "unreachable" in outcome.failed[0].reason
    assert worker.store.get("j1") is None  # never marked running: no attempt
    assert worker.counts() == (1, 0)
    worker.reveal()  # the app is back (at its address)
    worker.run(worker.dispatcher(app.url))
    assert (worker.row().state.value, worker.row().attempts) == ("succeeded", 1)


# ---------------------------------------------------------------- receipts


def test_a_202_waits_for_its_receipt_and_a_succeeded_receipt_settles_it(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(202, {"accepted": True}))
    worker.send()
    dispatcher = worker.dispatcher(app.url, "receipt_timeout=10m")

    outcome, records = worker.run(dispatcher)

    row = worker.row()
    assert row.state.value == "running"
    assert row.waiting_for_receipt
    assert row.receipt_handle == records[0]["receiptHandle"]
    assert row.receipt_queue_url == worker.queue.url
    assert [f.retry_in_s for f in outcome.failed] == [75]  # one poll: receipt_timeout / 8
    assert worker.counts() == (1, 0)  # kept until settled

    status, body = worker.receipt("j1", {"status": "succeeded", "result": {"n": 1}})

    assert (status, body["state"]) == (200, "succeeded")
    assert json.loads(worker.row().result or "null") == {"n": 1}
    worker.run(dispatcher)  # the route made it visible: the loop deletes it, without posting again
    assert worker.counts() == (0, 0)
    assert len(app.seen) == 1


def test_a_failed_receipt_is_a_failed_attempt_retried_by_the_policy(worker: Worker, app: WebApp) -> None:
    app.answer(Answer(202, None), Answer(200, {"second": True}))
    worker.send()
    dispatcher = worker.dispatcher(app.url)
    worker.run(dispatcher)

    status, _ = worker.receipt("j1", {"status": "failed", "error": "PDF renderer crashed"})
    assert status == 200
    outcome, _ = worker.run(dispatcher)

    row = worker.row()
    assert (row.state.value, row.attempts) == ("retrying", 1)
    assert "PDF renderer crashed" in (row.last_error or "")
    assert [f.dead for f in outcome.failed] == [False]
    assert len(app.seen) == 1  # the failure came by receipt: no POST on that delivery
    worker.reveal()
    worker.run(dispatcher)
    assert (worker.row().state.value, worker.row().attempts) == ("succeeded", 2)


def test_a_missing_receipt_is_a_failed_attempt_and_the_job_is_posted_again(
    worker: Worker, app: WebApp, clock: ManualClock
) -> None:
    app.answer(Answer(202, None), Answer(200, {"ok": 2}))
    worker.send()
    dispatcher = worker.dispatcher(app.url, "timeout=5s&receipt_timeout=2m")
    worker.run(dispatcher)

    worker.reveal()  # back before the deadline (a hand-over, say): held again, not posted again, handle kept
    outcome, records = worker.run(dispatcher)
    assert len(app.seen) == 1
    assert outcome.failed
    assert outcome.failed[0].retry_in_s == pytest.approx(15, abs=1)
    assert worker.row().receipt_handle == records[0]["receiptHandle"]

    clock.advance(121)
    worker.reveal()
    outcome, _ = worker.run(dispatcher)
    row = worker.row()
    assert (row.state.value, row.attempts) == ("retrying", 1)
    assert "no receipt within 120 s" in (row.last_error or "")
    assert len(app.seen) == 1
    worker.reveal()
    worker.run(dispatcher)
    assert (worker.row().state.value, worker.row().attempts) == ("succeeded", 2)
    assert len(app.seen) == 2


def test_a_receipt_signed_with_another_secret_gets_a_401_json_error_from_the_api(
    worker: Worker, app: WebApp, aws: Clients
) -> None:
    app.answer(Answer(202, None))
    worker.send()
    worker.run(worker.dispatcher(app.url))
    client = JobClient(
        sqs=aws.sqs,
        scheduler=aws.scheduler,
        store=worker.store,
        schedule_group="g",
        scheduler_role_arn="arn:aws:iam::123456789012:role/r",
        clock=worker.clock,
    )
    api = JobsApi(client, receipts=ReceiptDesk(store=worker.store, sqs=aws.sqs, secrets=worker.secrets))
    body = json.dumps({"status": "succeeded"})
    event = {
        "version": "2.0",
        "rawPath": "/jobs/j1/receipt",
        "headers": {"host": "api.example.com", **sign(body.encode(), "not-the-secret")},
        "requestContext": {"http": {"method": "POST", "path": "/jobs/j1/receipt"}},
        "body": body,
    }

    answer = api.handle(event)

    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["error"] == "unauthorized"
    assert worker.row().state.value == "running"  # nothing applied
    event["headers"] = {"host": "api.example.com", **sign(body.encode(), SECRET)}
    assert api.handle(event)["statusCode"] == 200
    assert worker.row().state.value == "succeeded"


def test_a_receipt_for_a_job_that_is_not_waiting_is_refused_with_409(worker: Worker, app: WebApp) -> None:
    worker.send()
    worker.run(worker.dispatcher(app.url))  # 200: succeeded

    assert worker.receipt("j1", {"status": "failed"})[0] == 409
    assert worker.receipt("nope", {"status": "succeeded"})[0] == 404
    assert worker.receipt("j1", {"status": "maybe"})[0] == 400


def test_the_readme_example_endpoint_runs_a_quick_job_and_refuses_an_unknown_one(worker: Worker) -> None:
    server = make_server(0, secret={"current": SECRET, "previous": OLD_SECRET})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dispatcher = worker.dispatcher(f"http://127.0.0.1:{server.server_address[1]}/jobs/{{job}}")
        worker.send("j-add", 2, 3, job="add")
        worker.run(dispatcher)
        worker.send("j-nope", job="nope")
        worker.run(dispatcher)
    finally:
        server.shutdown()
        server.server_close()
    assert (worker.row("j-add").state.value, worker.row("j-add").result) == ("succeeded", "5")
    assert worker.row("j-nope").state.value == "dead"  # its 404: never retried


# ---------------------------------------------------------------- verify() and registration


def test_verify_accepts_the_current_and_previous_secrets_and_refuses_the_rest() -> None:
    body = b'{"id": "j1"}'
    now = 1_800_000_000.0
    secret = {"current": SECRET, "previous": OLD_SECRET}
    verify(sign(body, SECRET, now_s=now), body, secret, now_s=now)
    verify(sign(body, OLD_SECRET, now_s=now), body, secret, now_s=now + 299)
    lowered = {k.lower(): v for k, v in sign(body, SECRET, now_s=now).items()}
    verify(lowered, body, SECRET, now_s=now)
    refused = [
        (sign(body, "other", now_s=now), body, now),
        (sign(body, SECRET, now_s=now), b'{"id": "j2"}', now),
        (sign(body, SECRET, now_s=now - 301), body, now),  # stale: a replay
        (sign(body, SECRET, now_s=now + 301), body, now),
        ({}, body, now),
    ]
    for headers, sent, at in refused:
        with pytest.raises(InvalidSignatureError):
            verify(headers, sent, secret, now_s=at)


@pytest.mark.parametrize(
    "handler",
    [
        "http:http://app.example.com/jobs/{job}",  # plain http off the machine
        "http:https://app.example.com/jobs/{job}#receipt_timeout=12h",  # past SQS's visibility ceiling
        "http:https://app.example.com/jobs/{job}#timeout=20m",
        "http:https://app.example.com/jobs/{id}",
        "http:https://user:pw@app.example.com/jobs",
        "http:https://app.example.com/jobs#retries=lots",
    ],
)
def test_registration_refuses_a_bad_http_target(handler: str) -> None:
    with pytest.raises(ConfigError):
        QueueConfig(queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q", handler=handler).validate()


def test_registration_takes_https_and_loopback_http_targets() -> None:
    for handler in (
        "http:https://app.example.com/jobs/{job}#timeout=30s&receipt_timeout=11h&retries=3",
        "http:http://127.0.0.1:8080/jobs/{job}",
    ):
        QueueConfig(queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q", handler=handler).validate()
