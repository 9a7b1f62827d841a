"""Redrive and discard from the dashboard: a confirmation page, a POST with its CSRF token, and a page that says
what was done and how many messages moved, or why it failed."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from tests.functional.dashboard.conftest import csrf_of, kill, store_of
from tests.functional.jobs.apply_kit import STACK, JobStack

DLQ = f"{STACK}-send_email-dlq"
QUEUE = f"{STACK}-send_email"


def bodies(stack: JobStack, name: str) -> list[dict[str, object]]:
    """Every message the queue holds now (received and hidden, so each is seen once)."""
    found: list[dict[str, object]] = []
    while batch := stack.aws.sqs.receive_message(QueueUrl=stack.url(name), MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in batch]
    return found


def confirm(client: TestClient, query: str) -> str:
    page = client.get(f"/dead/send_email/confirm?{query}")
    assert page.status_code == 200
    assert 'id="confirm-form"' in page.text
    return csrf_of(page.text)


def test_the_dead_page_lists_dead_jobs_with_the_dlq_count_and_asks_before_acting(
    stack: JobStack, client: TestClient
) -> None:
    kill(stack, "d-1")
    kill(stack, "d-2")
    page = client.get("/dead/send_email").text
    assert '<b id="dlq-messages">2</b> message(s) in the dead-letter queue' in page
    assert 'data-id="d-1"' in page
    assert "ValueError: boom" in page
    # Every button leads to a confirmation page (a GET that changes nothing), never straight to an action.
    assert 'href="/dead/send_email/confirm?action=redrive&amp;id=d-1"' in page
    question = client.get("/dead/send_email/confirm?action=discard").text
    assert "Discard every dead job of send_email?" in question
    assert len(bodies(stack, DLQ)) == 2  # asking moved nothing


def test_redrive_one_then_discard_all_say_what_they_did_and_how_many_messages_moved(
    stack: JobStack, client: TestClient
) -> None:
    kill(stack, "d-1")
    kill(stack, "d-2")

    csrf = confirm(client, "action=redrive&id=d-1")
    redrove = client.post("/dead/send_email/redrive", data={"id": "d-1", "csrf": csrf})
    assert redrove.status_code == 200
    assert (
        "redrove 1 job(s) of send_email: 1 message(s) moved from its dead-letter queue back to its queue"
        in redrove.text
    )
    row = store_of(stack).get("d-1")
    assert row is not None
    assert (row.state.value, row.attempts) == ("queued", 0)
    [moved] = bodies(stack, QUEUE)
    assert (moved["id"], moved["attempt"]) == ("d-1", 0)

    csrf = confirm(client, "action=discard")
    discarded = client.post("/dead/send_email/discard", data={"all": "1", "csrf": csrf})
    assert discarded.status_code == 200
    assert "discarded 1 job(s) of send_email: 1 message(s) deleted from its dead-letter queue" in discarded.text
    assert bodies(stack, DLQ) == []


def test_redrive_all_moves_every_dead_job_once(stack: JobStack, client: TestClient) -> None:
    for n in range(12):  # more than one batch of ten
        kill(stack, f"d-{n}")
    csrf = confirm(client, "action=redrive")
    page = client.post("/dead/send_email/redrive", data={"all": "1", "csrf": csrf})
    assert "redrove 12 job(s) of send_email: 12 message(s) moved" in page.text
    assert sorted(str(b["id"]) for b in bodies(stack, QUEUE)) == sorted(f"d-{n}" for n in range(12))


def test_an_id_not_in_the_dlq_is_reported_not_swallowed(stack: JobStack, client: TestClient) -> None:
    kill(stack, "d-1")
    csrf = confirm(client, "action=redrive&id=gone")
    page = client.post("/dead/send_email/redrive", data={"id": "gone", "csrf": csrf})
    assert page.status_code == 200
    assert 'class="flash bad"' in page.text
    assert "redrove 0 job(s) of send_email: 0 message(s) moved" in page.text
    assert "<code>gone</code>: not in the dead-letter queue" in page.text
    assert [b["id"] for b in bodies(stack, DLQ)] == ["d-1"]  # the other one is still there, handed back


def test_an_action_that_fails_shows_why_with_status_502(stack: JobStack, client: TestClient) -> None:
    kill(stack, "d-1")
    csrf = confirm(client, "action=redrive")
    stack.aws.sqs.delete_queue(QueueUrl=stack.url(DLQ))
    page = client.post("/dead/send_email/redrive", data={"all": "1", "csrf": csrf})
    assert page.status_code == 502
    assert "redrive of send_email failed: AWS.SimpleQueueService.NonExistentQueue" in page.text
    assert "dead-letter queue unreadable" in page.text


def test_an_action_must_name_its_jobs(stack: JobStack, client: TestClient) -> None:
    kill(stack, "d-1")
    csrf = confirm(client, "action=discard")
    page = client.post("/dead/send_email/discard", data={"csrf": csrf})
    assert page.status_code == 400
    assert "say which jobs" in page.text
    assert client.post("/dead/send_email/delete", data={"csrf": csrf, "all": "1"}).status_code == 400
    assert len(bodies(stack, DLQ)) == 1
