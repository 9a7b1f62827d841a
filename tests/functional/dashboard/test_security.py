"""Who may use the dashboard: the startup token (URL, then cookie), CSRF on POSTs, loopback host names."""

from __future__ import annotations

from starlette.testclient import TestClient

from sqsloops.dashboard.app import create_app
from sqsloops.dashboard.model import Dashboard
from sqsloops.dashboard.security import cookie_name
from tests.functional.dashboard.conftest import HOST, TOKEN, csrf_of, kill
from tests.functional.jobs.apply_kit import STACK, JobStack


def test_without_the_token_every_page_and_action_is_refused(anonymous: TestClient) -> None:
    for path in ("/", "/fragments/overview", "/jobs", "/dead/send_email", "/crons", "/cost"):
        response = anonymous.get(path)
        assert response.status_code == 403, path
        assert "needs its token" in response.text
    assert anonymous.post("/dead/send_email/redrive", data={"all": "1"}).status_code == 403
    assert anonymous.get("/?token=wrong-token").status_code == 403


def test_static_files_need_no_token(anonymous: TestClient) -> None:
    response = anonymous.get("/static/htmx.min.js")
    assert response.status_code == 200
    assert "htmx" in response.text


def test_the_token_in_the_url_becomes_an_http_only_cookie_and_leaves_the_url(anonymous: TestClient) -> None:
    response = anonymous.get(f"/jobs?token={TOKEN}&id=")
    assert response.status_code == 303
    assert response.headers["location"] == "/jobs?id="
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sqsloops_dashboard_")
    assert f"={TOKEN};" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert anonymous.get("/").status_code == 200  # the cookie is enough from now on


def test_a_cookie_with_a_wrong_token_is_refused(dashboard: Dashboard) -> None:
    app = create_app(dashboard, token=TOKEN, allowed_hosts=(HOST,), sample_interval_s=None)
    with TestClient(app, follow_redirects=False) as browser:
        browser.cookies.set("sqsloops_dashboard_0", TOKEN)  # TestClient's URL has no port: 0
        assert browser.get("/").status_code == 200
        browser.cookies.set("sqsloops_dashboard_0", "stolen-guess")
        assert browser.get("/").status_code == 403


def test_no_auth_serves_without_a_token(dashboard: Dashboard) -> None:
    app = create_app(dashboard, token=None, allowed_hosts=(HOST,), sample_interval_s=None)
    with TestClient(app) as browser:
        assert browser.get("/").status_code == 200


def test_a_host_name_that_is_not_ours_is_refused(dashboard: Dashboard) -> None:
    """A DNS-rebinding page resolves its own name to 127.0.0.1: its requests carry its Host header."""
    app = create_app(dashboard, token=None, sample_interval_s=None)  # the loopback names only
    with TestClient(app, base_url="http://evil.example") as browser:
        assert browser.get("/").status_code == 400
    with TestClient(app, base_url="http://127.0.0.1:8765") as browser:
        assert browser.get("/").status_code == 200


def test_a_post_without_or_with_a_wrong_csrf_token_or_from_another_origin_moves_nothing(
    stack: JobStack, client: TestClient
) -> None:
    kill(stack, "d-1")
    csrf = csrf_of(client.get("/dead/send_email/confirm?action=redrive&id=d-1").text)

    missing = client.post("/dead/send_email/redrive", data={"id": "d-1"})
    assert missing.status_code == 403
    assert "CSRF token missing" in missing.text
    wrong = client.post("/dead/send_email/redrive", data={"id": "d-1", "csrf": "not-it"})
    assert wrong.status_code == 403
    assert "CSRF token wrong" in wrong.text
    foreign = client.post(
        "/dead/send_email/redrive", data={"id": "d-1", "csrf": csrf}, headers={"origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert "cross-origin" in foreign.text

    dlq = stack.aws.sqs.get_queue_attributes(
        QueueUrl=stack.url(f"{STACK}-send_email-dlq"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "1"  # still there: nothing moved


def test_the_cookie_is_named_by_port_so_two_dashboards_keep_theirs() -> None:
    from starlette.requests import Request

    def request_on(port: int) -> Request:
        scope = {"type": "http", "scheme": "http", "server": ("127.0.0.1", port), "path": "/", "headers": []}
        return Request(scope)

    assert cookie_name(request_on(8765)) != cookie_name(request_on(8766))
