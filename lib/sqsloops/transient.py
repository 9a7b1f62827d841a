"""AWS failures that pass (throttling, 5xx, dropped connections), and what is left of them once retries are spent.

There is one retry layer: botocore's standard mode, with attempts and timeouts per client from `sqsloops.clients`,
so that one call never outlasts the time its caller has. `call_aws` makes the call once more than nothing: it
names a transient failure that outlasted those retries (TransientAwsError) and lets every other error through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

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


def call_aws(call: Callable[[], T]) -> T:
    """Call once (the client retries within its budget); raise TransientAwsError if a transient failure persisted.

    Every other exception (a failed condition, a validation error) propagates as it is: retrying cannot fix it.
    """
    try:
        return call()
    except Exception as exc:
        if is_transient(exc):
            raise TransientAwsError(f"gave up within the client's retry budget: {exc}") from exc
        raise
