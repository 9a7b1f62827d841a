"""Who may use the dashboard: the holder of its startup token, from a page it rendered, on a loopback host name.

- The token is printed in the URL at startup (as Jupyter does). The first request that carries it (`?token=`) gets
  it back as an HttpOnly, SameSite=Strict cookie and is redirected to the same URL without it, so it leaves the
  address bar and the history. A request with neither the token nor the cookie gets 403. `--no-auth` turns this
  off (the dashboard is then anyone's who can reach the port).
- A state-changing request is a POST carrying the CSRF token that only the dashboard's own pages hold (a hidden form
  field or an X-CSRF-Token header) and, when the browser sends an Origin, our own origin. Another site can make a
  browser send a POST with its cookie, but it cannot read a page to learn the CSRF token.
- Host names are checked (Starlette's TrustedHostMiddleware, see app.py): a DNS-rebinding page whose name resolves to
  127.0.0.1 sends its own Host, and is refused.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from starlette.datastructures import URL
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp

TOKEN_PARAM = "token"  # noqa: S105 - the query parameter's name, not a secret
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TOKEN_BYTES = 24
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/static/",)  # htmx and the stylesheet: nothing about the stack
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

REFUSED_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>sqsloops dashboard: token needed</title>
</head><body style="font-family: sans-serif; margin: 3em"><h1>403: this dashboard needs its token</h1>
<p>Open the URL <code>sqsloops dashboard</code> printed when it started (it ends in <code>?token=...</code>);
the token is then kept in a cookie for this browser. Start it with <code>--no-auth</code> to need none.</p>
</body></html>"""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def cookie_name(request: Request) -> str:
    """One cookie per port: cookies ignore ports, and two dashboards on one machine must not evict each other's."""
    return f"sqsloops_dashboard_{request.url.port or 0}"


class Guard:
    """The startup token (None: no auth) and the CSRF token of this server's pages."""

    def __init__(self, token: str | None, *, csrf_token: str | None = None) -> None:
        self.token = token
        self.csrf_token = csrf_token or new_token()

    def authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        offered = request.query_params.get(TOKEN_PARAM) or request.cookies.get(cookie_name(request)) or ""
        return secrets.compare_digest(offered.encode(), self.token.encode())

    def csrf_refusal(self, request: Request, form_value: str | None) -> str | None:
        """Why a state-changing request is refused, or None when its CSRF token (and Origin) are ours."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            parts = urlsplit(origin)
            if parts.netloc != request.headers.get("host", ""):
                return f"cross-origin request refused (Origin {origin})"
        offered = form_value or request.headers.get(CSRF_HEADER) or ""
        if not offered:
            return "CSRF token missing: use the dashboard's own buttons (reload the page)"
        if not secrets.compare_digest(offered.encode(), self.csrf_token.encode()):
            return "CSRF token wrong: the dashboard restarted since this page was loaded (reload it)"
        return None


class TokenMiddleware(BaseHTTPMiddleware):
    """403 without the token; a GET carrying it in the URL is answered with the cookie and a clean redirect."""

    def __init__(self, app: ASGIApp, *, guard: Guard) -> None:
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.guard.token is None or request.url.path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        if not self.guard.authorised(request):
            return HTMLResponse(REFUSED_PAGE, status_code=403)
        if TOKEN_PARAM in request.query_params and request.method in SAFE_METHODS:
            response = RedirectResponse(_without_token(request.url), status_code=303)
            response.set_cookie(
                cookie_name(request), self.guard.token, httponly=True, samesite="strict", path="/", secure=False
            )
            return response
        return await call_next(request)


def _without_token(url: URL) -> str:
    """The same path and query, less the token: a relative URL, so the redirect stays on our host."""
    kept = url.remove_query_params(TOKEN_PARAM)
    return f"{kept.path or '/'}?{kept.query}" if kept.query else kept.path or "/"
