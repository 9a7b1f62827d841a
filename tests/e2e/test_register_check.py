"""`register` asks the deployed process function whether a python: handler imports there, and the stack's role
whether it may invoke a lambda: handler, before writing anything (on the embedded AWS: the real template, its role
in IAM, the process function running in a worker)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sqsloops.errors import ConfigError
from sqsloops.ops.registration import QueueAdmin
from sqsloops.registry import QueueConfig
from tests.e2e.conftest import STACK, MakeFunction

HANDLER = "def handler(event, context):\n    return {'batchItemFailures': []}\n"


def test_a_python_handler_is_checked_inside_the_process_function(
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_url: Callable[[str], str],
) -> None:
    queue_url = make_queue_url("checked")

    # A module the process function cannot import is refused, and nothing is written
    with pytest.raises(ConfigError, match=r"does not load in the process function: cannot import 'nosuch\.module'"):
        registrations.register(QueueConfig(queue_url=queue_url, handler="python:nosuch.module:fn", min_loops=1))
    with pytest.raises(ConfigError, match="has no callable 'nosuch'"):
        registrations.register(QueueConfig(queue_url=queue_url, handler="python:tests.e2e.handlers:nosuch"))
    assert registrations.registry.find(queue_url) is None
    assert registrations.tokens.list(queue_url) == []
    assert registrations.alarms.names(queue_url) == []

    # And one it imports (the test handlers' layer is attached to it) is registered
    config = register(queue_url, handler="python:tests.e2e.handlers:record", min_loops=0)
    assert config.handler == "python:tests.e2e.handlers:record"


def test_a_lambda_handler_must_exist_and_be_invocable_by_the_stacks_role(
    registrations: QueueAdmin,
    register: Callable[..., QueueConfig],
    make_queue_url: Callable[[str], str],
    make_function: MakeFunction,
) -> None:
    queue_url = make_queue_url("forwarded")
    outside = make_function(HANDLER, name=f"elsewhere-{STACK}")

    with pytest.raises(ConfigError, match="lambda handler function does not exist: no-such-function"):
        registrations.register(QueueConfig(queue_url=queue_url, handler="lambda:no-such-function"))
    with pytest.raises(
        ConfigError, match=rf"process role may not invoke .*:function:{outside}: name it {STACK}-handler-"
    ):
        registrations.register(QueueConfig(queue_url=queue_url, handler=f"lambda:{outside}"))
    assert registrations.registry.find(queue_url) is None

    inside = make_function(HANDLER, name=f"{STACK}-handler-checked")
    assert register(queue_url, handler=f"lambda:{inside}", min_loops=0).handler == f"lambda:{inside}"
