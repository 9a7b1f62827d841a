"""A Lambda SQS handler that accepts every message: what `lambda:` forwarding costs, without any work."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"batchItemFailures": []}
