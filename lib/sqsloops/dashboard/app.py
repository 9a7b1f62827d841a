"""The dashboard's Starlette app: one route per page, a fragment route per live panel, two POST actions.

Each page renders its panel once and names the fragment URL that htmx polls (`hx-trigger="every Ns"`) to replace
it, so the numbers move without a reload. A read that fails (AWS down, a table missing) renders an error page with
the reason and status 502; an action that fails says so on the page, with what it did manage, never swallowed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sqsloops.dashboard.chart import depth_and_loops_svg
from sqsloops.dashboard.history import Point
from sqsloops.dashboard.model import AWS_ERRORS, COUNT_CAP, ActionOutcome, Dashboard
from sqsloops.dashboard.security import CSRF_FIELD, LOOPBACK_HOSTS, Guard, TokenMiddleware
from sqsloops.errors import ConfigError
from sqsloops.jobs.states import JobState
from sqsloops.log import SERVICE
from sqsloops.ops.watch import describe_error

HERE = Path(__file__).resolve().parent
DEFAULT_REFRESH_S = 2.0
DEFAULT_SAMPLE_INTERVAL_S = 5.0
ACTIONS = ("redrive", "discard")
CHART_MIN_WINDOW_S = 300.0
log = logging.getLogger(f"{SERVICE}.dashboard")


def ago(seconds: float | None) -> str:
    """3 s, 4 min, 2.5 h, 3 d; '-' for unknown."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def rate(per_s: float | None) -> str:
    return "-" if per_s is None else f"{per_s:,.1f}"


def money(usd: float) -> str:
    if usd == 0:
        return "-"
    return "<$0.01" if usd < 0.005 else f"${usd:,.2f}"


def chart_window_s(points: list[Point], dashboard: Dashboard, now: float) -> float:
    """The chart's time span: the history's hour, or less while the dashboard has been up for less (at least
    CHART_MIN_WINDOW_S), so the first minutes are not a sliver at the right edge."""
    covered = now - points[0].at if points else 0.0
    return min(dashboard.history.window_s, max(CHART_MIN_WINDOW_S, covered))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.filters.update(ago=ago, when=when, rate=rate, money=money, urlquote=lambda s: quote(str(s), safe=""))
    env.globals.update(states=[s.value for s in JobState], csrf_field=CSRF_FIELD, count_cap=COUNT_CAP)
    return templates


class Pages:
    """The route handlers over one Dashboard; `fragment` handlers render only the live panel of their page."""

    def __init__(self, dashboard: Dashboard, guard: Guard, *, refresh_s: float) -> None:
        self.dashboard = dashboard
        self.guard = guard
        self.refresh_s = refresh_s
        self.templates = make_templates()

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        if request.url.path.startswith("/fragments/"):
            name = f"_{name}"  # the panel only: what htmx swaps in
        context.update(
            refresh_ms=int(self.refresh_s * 1000),
            csrf_token=self.guard.csrf_token,
            stack=self.dashboard.settings.stack_name or "",
            now=self.dashboard.clock.now(),
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def error(self, request: Request, status_code: int, title: str, message: str) -> Response:
        context = {
            "title": title,
            "message": message,
            "refresh_ms": 0,
            "csrf_token": "",
            "stack": self.dashboard.settings.stack_name or "",
        }
        return self.templates.TemplateResponse(request, "error.html", context, status_code=status_code)

    # --- queues ---

    def overview(self, request: Request) -> Response:
        snapshot = self.dashboard.snapshot()
        return self.render(request, "overview.html", snapshot=snapshot, rows=self.dashboard.rows(snapshot))

    def queue(self, request: Request) -> Response:
        url = request.query_params.get("url", "")
        view = self.dashboard.queue(url) if url else None
        if view is None:
            return self.error(request, 404, "not found", f"no registered queue: {url or '(no url given)'}")
        now = self.dashboard.clock.now()
        chart = depth_and_loops_svg(view.points, window_s=chart_window_s(view.points, self.dashboard, now), now=now)
        return self.render(request, "queue.html", view=view, chart=chart)

    # --- jobs ---

    def jobs(self, request: Request) -> Response:
        wanted = request.query_params.get("id", "").strip()
        if wanted and self.dashboard.job(wanted) is not None:
            return RedirectResponse(f"/job/{quote(wanted, safe='')}", status_code=303)
        status_code = 404 if wanted else 200
        return self.render(request, "jobs.html", status_code, types=self.dashboard.job_types(), searched=wanted)

    def job_type(self, request: Request) -> Response:
        name = request.path_params["name"]
        view = self.dashboard.job_type(name)
        if view is None:
            return self.error(request, 404, "not found", f"no job type {name} in the catalog (jobs apply)")
        return self.render(request, "job_type.html", view=view)

    def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        record = self.dashboard.job(job_id)
        if record is None:
            return self.error(request, 404, "not found", f"no such job: {job_id} (never written, or purged by its TTL)")
        return self.render(request, "job.html", job=record)

    # --- dead jobs ---

    def dead_index(self, request: Request) -> Response:
        return self.render(request, "dead_index.html", types=self.dashboard.job_types())

    def dead(self, request: Request, outcome: ActionOutcome | None = None, status_code: int = 200) -> Response:
        name = request.path_params["name"]
        view = self.dashboard.dead(name)
        if view is None:
            return self.error(request, 404, "not found", f"no job type {name} in the catalog")
        return self.render(request, "dead.html", status_code, view=view, outcome=outcome)

    def confirm(self, request: Request) -> Response:
        name = request.path_params["name"]
        action = request.query_params.get("action", "")
        if action not in ACTIONS:
            return self.error(request, 400, "bad request", f"unknown action {action!r}")
        view = self.dashboard.dead(name)
        if view is None:
            return self.error(request, 404, "not found", f"no job type {name} in the catalog")
        return self.render(request, "confirm.html", view=view, action=action, ids=request.query_params.getlist("id"))

    async def act(self, request: Request) -> Response:
        """POST /dead/NAME/redrive|discard: CSRF checked first, then ids (or all=1), then the outcome on the page."""
        name = request.path_params["name"]
        action = request.path_params["action"]
        form = await request.form()
        csrf = form.get(CSRF_FIELD)
        refusal = self.guard.csrf_refusal(request, csrf if isinstance(csrf, str) else None)
        if refusal is not None:
            return self.error(request, 403, "refused", refusal)
        if action not in ACTIONS:
            return self.error(request, 400, "bad request", f"unknown action {action!r}")
        ids = [str(i) for i in form.getlist("id") if str(i).strip()]
        if not ids and form.get("all") != "1":
            return self.error(request, 400, "bad request", "say which jobs: one or more ids, or all")
        run: Callable[[str, list[str] | None], ActionOutcome] = (
            self.dashboard.redrive if action == "redrive" else self.dashboard.discard
        )
        outcome = await run_in_threadpool(run, name, ids or None)  # blocking boto3 calls, off the event loop
        log.warning("dashboard action: %s", outcome.message)
        status_code = 200 if outcome.error is None else 502
        return await run_in_threadpool(self.dead, request, outcome, status_code)

    # --- crons and cost ---

    def crons(self, request: Request) -> Response:
        return self.render(request, "crons.html", views=self.dashboard.crons())

    def cost(self, request: Request) -> Response:
        return self.render(request, "cost.html", rows=self.dashboard.costs())

    async def aws_error(self, request: Request, exc: Exception) -> Response:
        return self.error(request, 502, "AWS said no", describe_error(exc))

    async def bad_input(self, request: Request, exc: Exception) -> Response:
        return self.error(request, 400, "bad request", describe_error(exc))

    def routes(self) -> list[BaseRoute]:
        pages: list[tuple[str, Callable[[Request], Response]]] = [
            ("/", self.overview),
            ("/queue", self.queue),
            ("/jobs", self.jobs),
            ("/jobs/{name}", self.job_type),
            ("/job/{job_id:path}", self.job),
            ("/dead/{name}", self.dead),
            ("/cost", self.cost),
        ]
        live = [Route("/fragments" + ("/overview" if path == "/" else path), endpoint) for path, endpoint in pages]
        return [
            *(Route(path, endpoint) for path, endpoint in pages),
            *live,
            Route("/dead", self.dead_index),
            Route("/dead/{name}/confirm", self.confirm),
            Route("/dead/{name}/{action}", self.act, methods=["POST"]),
            Route("/crons", self.crons),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]


def create_app(
    dashboard: Dashboard,
    *,
    token: str | None,
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
    refresh_s: float = DEFAULT_REFRESH_S,
    sample_interval_s: float | None = DEFAULT_SAMPLE_INTERVAL_S,
) -> Starlette:
    """The app over `dashboard`. token None: no auth. sample_interval_s None: no sampler thread (tests)."""
    guard = Guard(token)
    pages = Pages(dashboard, guard, refresh_s=refresh_s)
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        Middleware(TokenMiddleware, guard=guard),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        sampler = None
        if sample_interval_s is not None:
            sampler = threading.Thread(
                target=_sample_until, args=(dashboard, stop, sample_interval_s), name="dashboard-sampler", daemon=True
            )
            sampler.start()
        try:
            yield
        finally:
            stop.set()
            if sampler is not None:
                sampler.join(timeout=5)

    handlers: dict[Any, Any] = dict.fromkeys(AWS_ERRORS, pages.aws_error)
    handlers[ConfigError] = pages.bad_input  # a bad URL or name in the request, not AWS failing
    app = Starlette(routes=pages.routes(), middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    app.state.guard = guard
    app.state.dashboard = dashboard
    return app


def _sample_until(dashboard: Dashboard, stop: threading.Event, interval_s: float) -> None:
    """Sample every interval_s until stopped, so the chart has points when nobody has the page open."""
    while not stop.is_set():
        try:
            dashboard.sample()  # AWS errors become the snapshot's error
        except Exception:  # a bug must not kill the sampler: logged, and the next sample tries again
            log.exception("dashboard sample failed")
        stop.wait(interval_s)
