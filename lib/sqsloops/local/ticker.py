"""A background daemon thread that does one piece of work every tick: what moto lacks runs on these."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqsloops.log import logger


class Ticker:
    """Calls `work` every `interval_s()` seconds until stopped; an exception is logged and never ends the thread."""

    def __init__(self, *, name: str, work: Callable[[], object], interval_s: Callable[[], float]) -> None:
        self._name = name
        self._work = work
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._work()
            except Exception:  # a transient moto error must never end the work
                logger.exception("background tick failed; will retry", extra={"ticker": self._name})
            self._stop.wait(self._interval_s())
