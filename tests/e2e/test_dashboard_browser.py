"""`sqsloops dashboard` in a real browser: Debian's Chromium, headless, driven by Playwright, against the package's
embedded AWS with tests/e2e/dashboard_jobs.py applied as `sqsloops jobs apply` would.

Every page loads; a burst of jobs raises the loops on the overview while it refreshes itself (no reload); a dead job
is redriven from its page (confirmation, POST with the CSRF token) and then runs; a POST without the token is refused.
The same run saves the README's screenshots (docs/dashboard-overview.png, docs/dashboard-job.png).

The system's Chromium is used through `executable_path`: `playwright install` (which downloads browsers) is never
run. Without Chromium the module is skipped and the pytest summary (-ra) says why (.ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from sqsloops.dashboard.server import DashboardServer
from sqsloops.jobs.client import JobCall
from sqsloops.jobs.states import DEAD, SUCCEEDED
from sqsloops.jobs.store import JobStore
from sqsloops.local.server import EmbeddedAws
from sqsloops.ops.jobs_apply import JobsApply, import_jobs
from sqsloops.ops.root import OpsRoot
from tests.e2e import dashboard_jobs
from tests.e2e.conftest import STACK, eventually

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MODULE = "tests.e2e.dashboard_jobs"
# SQSLOOPS_CHROMIUM points at another build of Chromium (or, set to a missing path, shows what a skip looks like).
CHROMIUM = os.environ.get("SQSLOOPS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BURST = 400  # dash_work jobs of 0.1 s: one loop would need 40 s, so the backlog calls for more loops
WAIT_MS = 60_000


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does): dashboard browser tests NOT run"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed (the test extra): dashboard browser tests NOT run"
    return None


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or ""),
]


@pytest.fixture(scope="module")
def root(embedded_aws: EmbeddedAws) -> Iterator[OpsRoot]:
    """The stack with tests/e2e/dashboard_jobs.py applied; pruned again afterwards."""
    ops = embedded_aws.root()
    applier = JobsApply.for_root(ops)
    _, jobs = import_jobs(MODULE, app_dir=ROOT)
    applier.apply(applier.plan(MODULE, jobs))
    yield ops
    applier.apply(applier.plan(MODULE, {}, prune=True, force=True))


@pytest.fixture(scope="module")
def server(root: OpsRoot) -> Iterator[DashboardServer]:
    with DashboardServer(root, port=0, auth=True, refresh_s=0.5, sample_interval_s=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, server: DashboardServer) -> Iterator[Page]:
    """A tab that opened the printed URL: it holds the token's cookie."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    response = tab.goto(server.url)
    assert response is not None
    assert response.status == 200
    assert "token=" not in tab.url  # traded for the cookie
    yield tab
    context.close()


def store_of(root: OpsRoot) -> JobStore:
    store = root.job_store
    assert store is not None
    return store


def queue_name(job: str) -> str:
    return f"{STACK}-{job}"


def test_every_page_loads(page: Page, server: DashboardServer, root: OpsRoot) -> None:
    work_url = root.sqs.get_queue_url(QueueName=queue_name("dash_work"))["QueueUrl"]
    pages: dict[str, str] = {
        "/": "Queues",
        f"/queue?url={quote(work_url, safe='')}": f"Queue {queue_name('dash_work')}",
        "/jobs": "Jobs by type",
        "/jobs/dash_work": "Job type dash_work",
        "/dead": "Dead jobs",
        "/dead/dash_fragile": "Dead jobs of dash_fragile",
        "/crons": "Cron jobs",
        "/cost": "Cost, estimated",
    }
    for path, heading in pages.items():
        response = page.goto(server.base_url + path)
        assert response is not None
        assert response.status == 200, path
        assert page.locator("h1").inner_text().startswith(heading), path
    page.goto(server.base_url + "/crons")
    section = page.locator('section.cron[data-job="dash_nightly"]')
    assert "JST" in section.locator("table.next-runs").inner_text()  # next runs in the job's own zone


def test_a_burst_raises_the_loops_on_the_overview_without_a_reload(
    page: Page, server: DashboardServer, root: OpsRoot
) -> None:
    page.goto(server.base_url + "/")
    page.evaluate("window.__not_reloaded = true")
    row = page.locator(f'tr[data-queue="{queue_name("dash_work")}"]')
    assert int(row.locator("td.running").inner_text()) == 0  # scaled to zero before the burst

    results = root.job_client.enqueue_many(JobCall("dash_work", (n,)) for n in range(BURST))
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]

    page.wait_for_function(
        f"""() => {{
            const cell = document.querySelector('tr[data-queue="{queue_name("dash_work")}"] td.running');
            return cell && parseInt(cell.textContent) >= 2;
        }}""",
        timeout=WAIT_MS,
    )
    assert page.evaluate("window.__not_reloaded") is True  # htmx swapped the panel in: the page never reloaded
    DOCS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 360})  # the page is short: no blank half in the README
    page.screenshot(path=str(DOCS / "dashboard-overview.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def test_a_dead_job_is_redriven_from_its_page_and_then_runs(page: Page, server: DashboardServer, root: OpsRoot) -> None:
    store = store_of(root)
    item = uuid.uuid4().hex[:8]
    handle = root.job_client.enqueue("dash_fragile", (item,))
    eventually(lambda: (r := store.get(handle.id)) is not None and r.state is DEAD, what="dash_fragile dies")

    page.goto(server.base_url + f"/job/{quote(handle.id, safe='')}")
    assert page.locator("#job-state").inner_text() == "dead"
    assert "not fixed yet" in page.locator("#last-error").inner_text()
    page.screenshot(path=str(DOCS / "dashboard-job.png"), full_page=True)

    dashboard_jobs.fix(item, root.clients.dynamodb, table=root.settings.jobs_table)
    page.goto(server.base_url + "/dead/dash_fragile")
    page.locator(f'tr[data-id="{handle.id}"] a.redrive').click()
    page.locator("#confirm").click()  # the confirmation page's POST, with its CSRF token
    outcome = page.locator("#outcome").inner_text()
    assert "redrove 1 job(s) of dash_fragile: 1 message(s) moved from its dead-letter queue back to its queue" in (
        outcome
    )

    record = eventually(
        lambda: (r := store.get(handle.id)) is not None and r.state is SUCCEEDED and r, what="the redriven job ran"
    )
    assert record.attempts == 1  # redrive reset the count: it ran once more and succeeded
    page.goto(server.base_url + f"/job/{quote(handle.id, safe='')}")
    assert page.locator("#job-state").inner_text() == "succeeded"
    assert item in page.locator("#result").inner_text()


def test_a_post_without_the_token_or_without_the_csrf_token_is_refused(
    browser: Browser, page: Page, server: DashboardServer
) -> None:
    stranger = browser.new_context()
    try:
        response = stranger.request.post(server.base_url + "/dead/dash_fragile/redrive", form={"all": "1"})
        assert response.status == 403
        assert "needs its token" in response.text()
    finally:
        stranger.close()

    page.goto(server.base_url + "/dead/dash_fragile")
    status: Any = page.evaluate(
        """() => fetch('/dead/dash_fragile/redrive', {method: 'POST', body: new URLSearchParams({all: '1'})})
                 .then(r => r.status)"""
    )
    assert status == 403  # the cookie alone is not enough: a POST needs the page's CSRF token
