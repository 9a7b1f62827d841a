"""The parent's side of one warm worker: a `worker.py` subprocess and its two JSON-lines pipes.

The protocol (ready line, one request and one reply per invocation) is documented in worker.py, the subprocess
side. The worker's stdout and stderr are the function's log: a thread per stream echoes them, labelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")

Echo = Callable[[str], None]


class WorkerGoneError(Exception):
    """The worker exited (or its pipe closed) before answering."""


class WorkerTimeoutError(Exception):
    """The worker did not answer in time."""


class Worker:
    """A worker subprocess and its two protocol pipes; stdout/stderr lines go to `echo`."""

    def __init__(
        self, *, config: dict[str, Any], env: dict[str, str], cwd: str, fingerprint: str, label: str, echo: Echo
    ) -> None:
        self.fingerprint = fingerprint
        self.label = label
        self._echo = echo
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        config = {**config, "request_fd": request_read, "reply_fd": reply_write}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter running our own worker script
                [sys.executable, "-I", "-S", "-u", str(WORKER_SCRIPT), json.dumps(config)],  # no site-packages
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_read, reply_write),
                start_new_session=True,  # a Ctrl-C in the terminal is for the parent, which then stops us
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._fds: tuple[int, ...] = (self._request_write, self._reply_read)
        self._buffer = b""
        self._ready = False
        self._pumps = [
            threading.Thread(target=self._pump, args=(stream,), name=f"{label}-log", daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            self._echo(f"{self.label} {raw.decode(errors='replace').rstrip()}")
        stream.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def ensure_ready(self, timeout_s: float) -> None:
        if not self._ready:
            self._read_message(time.monotonic() + timeout_s)
            self._ready = True

    def call(self, request: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """Send one request; the reply, or WorkerTimeoutError at `deadline` (monotonic), or WorkerGoneError."""
        try:
            os.write(self._request_write, json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise WorkerGoneError(str(exc)) from exc
        return self._read_message(deadline)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise WorkerTimeoutError()
            try:
                readable, _, _ = select.select([self._reply_read], [], [], remaining_s)
                chunk = os.read(self._reply_read, 65536) if readable else None
            except (OSError, ValueError) as exc:
                raise WorkerGoneError(str(exc)) from exc
            if chunk is None:
                continue
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=2)  # its pipe closed as it exited: let the status arrive
                raise WorkerGoneError(f"exit status {self.process.poll()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def crash(self) -> None:
        """SIGKILL the process and return at once, as a crash would (fault injection): whoever waits on its reply
        sees it gone and discards it. Safe from any thread."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def kill(self) -> None:
        """End the process; a thread waiting on its reply sees it gone. Safe from any thread."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        for pump in self._pumps:
            pump.join(timeout=5)

    def close(self) -> None:
        """Kill, then release the pipes: only by the thread using the worker, or for an idle one."""
        self.kill()
        fds, self._fds = self._fds, ()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
