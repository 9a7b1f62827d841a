"""Stopping a job that overruns its timeout: SIGALRM on the main thread, a watched thread elsewhere.

On the main thread (the process function, a per-job Lambda and the eager mode all run there) an interval timer
raises `JobTimeoutError` inside the job, wherever it is: a sleep, a socket read, a busy loop in Python. It keeps
firing every REFIRE_S until the job gives up, so a job whose `except Exception:` swallows the first one is stopped
by the next, and a job that returns after it fired still counts as timed out. The previous SIGALRM handler and
timer are put back afterwards.

Off the main thread signals cannot be used; the job then runs in a thread of its own and the caller waits for it
up to the timeout. Such a thread cannot be stopped: the attempt fails with JobTimeoutError and the thread is left
to finish in the background (logged). The loop itself never runs there; this is for embedders that call the
runner from a thread of their own.
"""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

REFIRE_S = 1.0  # after the first alarm, how often it fires again while the job refuses to stop


class JobTimeoutError(Exception):
    """The job ran past its timeout and was stopped; the attempt counts as failed (retried by the job's policy).

    An Exception, so `non_retryable=(JobTimeoutError,)` and the retry policy treat it like any failure; a job may
    catch it to clean up, but the alarm fires again until the job returns or raises.
    """

    def __init__(self, timeout_s: float, *, stopped: bool = True) -> None:
        how = "stopped" if stopped else "left running in a background thread (not on the main thread: no signal)"
        super().__init__(f"the job ran past its {timeout_s:g} s timeout and was {how}")
        self.timeout_s = timeout_s
        self.stopped = stopped


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def call_with_timeout(fn: Callable[[], T], timeout_s: float) -> T:
    """fn() within timeout_s, else JobTimeoutError; see the module doc for how it is stopped."""
    if timeout_s <= 0:
        raise JobTimeoutError(timeout_s)
    if on_main_thread():
        return _with_alarm(fn, timeout_s)
    return _in_thread(fn, timeout_s)


def _with_alarm(fn: Callable[[], T], timeout_s: float) -> T:
    fired = False

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        fired = True
        raise JobTimeoutError(timeout_s)

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay_s, previous_interval_s = signal.setitimer(signal.ITIMER_REAL, timeout_s, REFIRE_S)
    try:
        try:
            result = fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except JobTimeoutError:
        if fired:
            raise JobTimeoutError(timeout_s) from None
        raise  # the job raised one of its own
    finally:
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay_s > 0:  # someone else's timer was running: put back what is left of it
            left_s = max(previous_delay_s - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left_s, previous_interval_s)
    if fired:  # it fired, the job swallowed it and returned: still an overrun
        raise JobTimeoutError(timeout_s)
    return result


def _in_thread(fn: Callable[[], T], timeout_s: float) -> T:
    outcome: dict[str, object] = {}
    context = contextvars.copy_context()  # the job's context (current_job) goes with it

    def target() -> None:
        try:
            outcome["result"] = context.run(fn)
        except BaseException as exc:  # handed to the caller's thread as is
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="sqsloops-job", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        from sqsloops.log import logger  # here, so that importing sqsloops.jobs stays free of the AWS SDK

        logger.error(
            "job overran its timeout off the main thread; it cannot be stopped and goes on in the background",
            extra={"timeout_s": timeout_s},
        )
        raise JobTimeoutError(timeout_s, stopped=False)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]
