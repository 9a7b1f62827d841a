"""uvicorn serving the dashboard from a thread: what `sqsloops dashboard`, `local up --dashboard` and tests start.

The socket is bound before uvicorn starts, so port 0 (any free port) yields a URL to print, and a port in use is an
OSError at start(), not a log line in a thread.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from sqsloops.dashboard.app import DEFAULT_REFRESH_S, DEFAULT_SAMPLE_INTERVAL_S, create_app
from sqsloops.dashboard.model import Dashboard
from sqsloops.dashboard.security import LOOPBACK_HOSTS, new_token
from sqsloops.ops.root import OpsRoot

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
START_TIMEOUT_S = 20.0


class DashboardServer:
    """The dashboard over `root` on host:port (0: a free port); auth=False serves it without a token."""

    def __init__(
        self,
        root: OpsRoot,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        auth: bool = True,
        refresh_s: float = DEFAULT_REFRESH_S,
        sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S,
    ) -> None:
        self.host = host
        self.token = new_token() if auth else None
        self.dashboard = Dashboard(root, min_sample_interval_s=min(1.0, refresh_s / 2))
        loopback = host in LOOPBACK_HOSTS
        # Bound elsewhere than loopback, the operator chose who may reach it; the token still guards it.
        allowed = LOOPBACK_HOSTS if loopback else ("*",)
        self.app = create_app(
            self.dashboard,
            token=self.token,
            allowed_hosts=allowed,
            refresh_s=refresh_s,
            sample_interval_s=sample_interval_s,
        )
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._requested_port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """What to open: the base URL, with the token when auth is on."""
        return f"{self.base_url}/?token={self.token}" if self.token else f"{self.base_url}/"

    def start(self) -> DashboardServer:
        """Bind (OSError if the port is taken), then serve in a daemon thread; returns once it answers."""
        self._socket.bind((self.host, self._requested_port))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="dashboard", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard's server did not start (see the log above)")
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the caller's thread interrupts the wait)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
