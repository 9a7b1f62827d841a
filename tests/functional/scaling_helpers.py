"""Test seams for the scaling tests: a turnstile for races, loop identities to compare, the functions' environment.

Which loops were started is observed through tests.fixtures.fakes.RecordingLauncher (moto cannot run Lambda code
without Docker); the tokens themselves are always real items in moto's DynamoDB, and tests read them back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from moto.core.config import default_user_config

from sqsloops.settings import Settings
from sqsloops.tokens import Token
from tests.conftest import create_function, settings_env


def loop_ids(tokens: list[Token]) -> set[tuple[str, str]]:
    return {(t.slot, t.loop_id) for t in tokens}


class Turnstile:
    """Lets threads race on moto's DynamoDB the way they race on AWS's.

    DynamoDB applies each request atomically; moto, across threads, checks a condition and writes without a lock.
    Every request of an attached client therefore goes through one at a time, which leaves the race to the
    conditions, where it belongs. All attached clients also meet before their first `meet_before` request, so each
    thread acts on what it read before any of them wrote.
    """

    def __init__(
        self,
        parties: int,
        *,
        meet_before: str,
        timeout_s: float = 5.0,
        after_each: Callable[[str], None] | None = None,
    ) -> None:
        """`after_each(operation)` runs after every request, before the next one: it sees the table between writes."""
        self._meet = threading.Barrier(parties, timeout=timeout_s)
        self._meet_before = meet_before
        self._one_at_a_time = threading.Lock()
        self._timeout_s = timeout_s
        self._after_each = after_each

    def attach(self, client: Any) -> Any:
        met = threading.Event()

        def before(model: Any, **_: Any) -> None:
            if model.name == self._meet_before and not met.is_set():
                met.set()
                self._meet.wait()
            if not self._one_at_a_time.acquire(timeout=self._timeout_s):
                raise TimeoutError("a DynamoDB call never finished")

        def after(model: Any, **_: Any) -> None:
            try:
                if self._after_each is not None:
                    self._after_each(model.name)
            finally:
                self._one_at_a_time.release()

        client.meta.events.register("before-call.dynamodb", before)
        client.meta.events.register("after-call.dynamodb", after)
        return client


def deploy_for_functions(aws: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the template gives the functions, and a process function moto invokes without Docker
    (moto's Docker-less Lambda accepts the invoke and runs nothing: the tokens in DynamoDB are what tests read)."""
    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    create_function(aws, settings.process_function)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
