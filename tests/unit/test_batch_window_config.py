"""A registration's batching window and batch size follow Lambda's SQS trigger's limits (checked before writing)."""

from __future__ import annotations

from typing import Any

import pytest

from sqsloops.errors import ConfigError
from sqsloops.registry import QueueConfig

STANDARD = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
FIFO = "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo"


def config(queue_url: str = STANDARD, handler: str = "lambda:worker", **options: Any) -> QueueConfig:
    return QueueConfig(queue_url=queue_url, handler=handler, **options)


def test_no_window_by_default() -> None:
    assert config().validate().batch_window_s == 0


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 10_000, "batch_window_s": 1},
        {"batch_size": 10, "batch_window_s": 300},
        {"batch_size": 50, "batch_window_s": 1, "handler": "python:app.handlers:batch", "handler_mode": "batch"},
        {"batch_size": 10, "batch_window_s": 5, "queue_url": FIFO},  # a FIFO queue may gather, up to 10
    ],
)
def test_large_batches_and_windows_within_the_native_triggers_limits_are_valid(options: dict[str, Any]) -> None:
    config(**options).validate()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"batch_window_s": 301}, "batch_window_s must be between 0 and 300"),
        ({"batch_window_s": 1.5}, "batch_window_s must be a whole number"),
        ({"batch_window_s": True}, "batch_window_s must be a number"),
        ({"batch_size": 11}, "batch_size must be between 1 and 10, got 11 (up to 10000 with batch_window_s"),
        ({"batch_size": 10_001, "batch_window_s": 1}, "batch_size must be between 1 and 10000"),
        ({"batch_size": 11, "batch_window_s": 1, "queue_url": FIFO}, "between 1 and 10 on a FIFO queue"),
        ({"batch_size": 11, "batch_window_s": 1, "handler": "python:app.handlers:one"}, "handler_mode 'batch'"),
        ({"visibility_timeout_s": 43_000, "batch_window_s": 201}, "must not exceed 43200"),
    ],
)
def test_out_of_range_windows_and_batches_are_refused(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(**options).validate()

    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_window_is_stored_and_read_back() -> None:
    stored = config(batch_size=200, batch_window_s=3).validate()

    assert QueueConfig.from_item(stored.to_item()) == stored
