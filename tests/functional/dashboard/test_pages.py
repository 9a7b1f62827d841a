"""Each page of the dashboard against a job stack on moto: what it shows is what the tables and queues hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.testclient import TestClient

from sqsloops.dashboard.model import Dashboard
from sqsloops.jobs.states import DEAD, QUEUED, RETRYING, SUCCEEDED
from tests.functional.dashboard.conftest import store_of
from tests.functional.jobs.apply_kit import STACK, JobStack
from tests.functional.jobs.kit import job_in

SEND_EMAIL = f"{STACK}-send_email"


def row_of(page: str, queue_name: str) -> str:
    match = re.search(rf'<tr data-queue="{re.escape(queue_name)}">(.*?)</tr>', page, re.DOTALL)
    assert match, f"no row for {queue_name}"
    return match.group(1)


def cell(row: str, css: str) -> str:
    match = re.search(rf'<td class="num {css}">([^<]*)</td>', row)
    assert match, row
    return match.group(1).strip()


def test_overview_shows_every_queue_with_its_depth_loops_and_health(stack: JobStack, client: TestClient) -> None:
    for n in range(3):
        stack.send(SEND_EMAIL, f'{{"n": {n}}}')
    stack.aws.sqs.delete_queue(QueueUrl=stack.url(f"{STACK}-charge.fifo"))
    stack.root.registry.mark_broken(stack.url(f"{STACK}-digest"), "no handler named jobs:nowhere")

    page = client.get("/")
    assert page.status_code == 200
    assert 'hx-get="/fragments/overview"' in page.text  # the live panel
    row = row_of(page.text, SEND_EMAIL)
    assert cell(row, "visible") == "3"
    assert 'class="health ok"' in row
    assert "queue does not exist" in row_of(page.text, f"{STACK}-charge.fifo")
    assert "handler unusable: no handler named jobs:nowhere" in row_of(page.text, f"{STACK}-digest")


def test_a_fragment_is_the_panel_alone_and_follows_the_queues(stack: JobStack, client: TestClient) -> None:
    before = client.get("/fragments/overview").text
    assert "<html" not in before
    assert cell(row_of(before, SEND_EMAIL), "visible") == "0"
    stack.send(SEND_EMAIL)
    after = client.get("/fragments/overview").text
    assert cell(row_of(after, SEND_EMAIL), "visible") == "1"


def test_the_queue_page_lists_its_loops_and_charts_depth_and_loops(
    stack: JobStack, dashboard: Dashboard, client: TestClient
) -> None:
    url = stack.url(f"{STACK}-resize")  # min_loops 1: registering it put one token
    dashboard.sample()
    stack.clock.advance(30)
    stack.send(f"{STACK}-resize")
    dashboard.sample()

    page = client.get("/queue", params={"url": url})
    assert page.status_code == 200
    assert "slot-0000" in page.text
    assert 'class="loops"' in page.text  # the loops line of the chart: two samples were taken
    assert 'class="depth"' in page.text
    assert "/jobs/resize" in page.text  # the job type whose queue it is
    assert [p.visible for p in dashboard.history.of(url)] == [0, 1]
    assert client.get("/queue", params={"url": url + "-nope"}).status_code == 404
    bad = client.get("/queue", params={"url": "not a queue url"})
    assert bad.status_code == 400  # a one-line reason, not a traceback
    assert '<div class="flash bad" id="error">' in bad.text


def test_jobs_by_type_counts_each_state_and_search_finds_a_job_by_id(stack: JobStack, client: TestClient) -> None:
    store = store_of(stack)
    job_in(store, stack.clock, QUEUED, "q-1")
    job_in(store, stack.clock, QUEUED, "q-2")
    job_in(store, stack.clock, SUCCEEDED, "s-1")
    job_in(store, stack.clock, DEAD, "d-1")

    page = client.get("/jobs").text
    row = re.search(r'<tr data-job="send_email">(.*?)</tr>', page, re.DOTALL)
    assert row
    assert re.search(r'<td class="num queued">2</td>', row.group(1))
    assert re.search(r'<td class="num succeeded">1</td>', row.group(1))
    assert '<a href="/dead/send_email">1</a>' in row.group(1)

    found = client.get("/jobs", params={"id": "s-1"})
    assert (found.status_code, found.headers["location"]) == (303, "/job/s-1")
    missing = client.get("/jobs", params={"id": "no-such-job"})
    assert missing.status_code == 404
    assert "no job with id <code>no-such-job</code>" in missing.text

    by_type = client.get("/jobs/send_email").text
    assert all(f"/job/{job_id}" in by_type for job_id in ("q-1", "q-2", "s-1", "d-1"))
    assert client.get("/jobs/not_a_job").status_code == 404


def test_the_job_page_shows_attempts_timeline_last_error_traceback_and_result(
    stack: JobStack, client: TestClient
) -> None:
    store = store_of(stack)
    job_in(store, stack.clock, DEAD, "d-1")
    job_in(store, stack.clock, SUCCEEDED, "s-1")
    job_in(store, stack.clock, RETRYING, "r-1")

    dead = client.get("/job/d-1").text
    assert '<span class="state dead" id="job-state">dead</span>' in dead
    assert '<div class="big" id="job-attempts">1</div>' in dead
    assert '<pre id="last-error">boom</pre>' in dead
    assert "ValueError: boom" in dead  # the traceback
    assert "redrive this job" in dead
    assert "enqueued 2023-11-14 22:13:20 UTC" in dead  # the timeline, from the row's times
    assert "attempt 1 started" in dead

    succeeded = client.get("/job/s-1").text
    assert '<pre id="result">{&#34;ok&#34;: true}</pre>' in succeeded
    assert "redrive this job" not in succeeded
    assert "due " in client.get("/job/r-1").text  # a retrying job's next attempt
    assert client.get("/job/nope").status_code == 404


def test_the_crons_page_shows_next_runs_in_the_jobs_zone_and_the_tick_ledger(
    stack: JobStack, client: TestClient
) -> None:
    store = store_of(stack)
    ran = datetime(2023, 11, 14, 8, 0, tzinfo=UTC).timestamp()  # 09:00 in Paris
    store.record_tick("digest", ran, job_id="digest@2023-11-14T08:00:00Z")
    store.record_tick("digest", ran - 86400, skipped_reason="missed: not delivered, and the missed-run policy is skip")

    page = client.get("/crons").text
    # The clock is Tuesday 2023-11-14 22:13 UTC: the next run is Wednesday 09:00 in Paris (CET, UTC+1).
    assert "Wed 2023-11-15 09:00 CET" in page
    assert "2023-11-15 08:00 UTC" in page
    assert "Thu 2023-11-16 09:00 CET" in page
    assert "enqueued <a" in page
    assert "digest@2023-11-14T08:00:00Z" in page
    assert "skipped</span>: missed: not delivered, and the missed-run policy is skip" in page
    assert page.index("2023-11-14 08:00:00 UTC") < page.index("2023-11-13 08:00:00 UTC")  # newest first


def test_the_cost_page_prices_each_queue_and_job_type_from_measured_run_times(
    stack: JobStack, client: TestClient
) -> None:
    store = store_of(stack)
    job_in(store, stack.clock, SUCCEEDED, "s-1")  # started and finished 1 s apart on the manual clock

    page = client.get("/cost").text
    assert f"<b>{SEND_EMAIL}</b>" in page
    assert 'job <a href="/jobs/send_email">send_email</a>' in page
    assert "1000.0 ms (measured)" in page  # send_email's row
    assert "100.0 ms (assumed)" in page  # the job types that never succeeded yet
    assert "$" in page  # priced: at least the loops' idle cost (resize keeps one loop)


def test_a_failing_read_is_an_error_page_with_the_reason(stack: JobStack, client: TestClient) -> None:
    stack.aws.dynamodb.delete_table(TableName=stack.settings.jobs_table)
    page = client.get("/jobs")
    assert page.status_code == 502
    assert "ResourceNotFoundException" in page.text
