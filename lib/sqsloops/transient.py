"""Retrying AWS calls that failed for reasons that pass (throttling, 5xx) and nothing else."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from sqsloops import defaults
from sqsloops.backoff import compute_backoff_s
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import TransientAwsError

T = TypeVar("T")

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflictException",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: throttling, server-side failures, dropped connections."""
    if isinstance(exc, ConnectionError | ReadTimeoutError):
        return True
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error.get("Code", "") in TRANSIENT_CODES or status >= 500


def retry_transient(
    call: Callable[[], T],
    *,
    attempts: int = defaults.TRANSIENT_RETRIES,
    base_s: float = defaults.TRANSIENT_BASE_S,
    max_s: float = defaults.TRANSIENT_MAX_S,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
) -> T:
    """Call, retrying transient failures with jittered backoff; raise TransientAwsError when they persist.

    Every other exception (a failed condition, a validation error) propagates at once: retrying cannot fix it.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise TransientAwsError(f"gave up after {attempts} attempts: {exc}") from exc
            clock.sleep(compute_backoff_s(attempt, base_s=base_s, max_s=max_s, rng=rng))
    raise AssertionError("unreachable")  # pragma: no cover
