"""Jobs API: the HTTP API's function (API Gateway HTTP API, payload format 2.0, AWS_IAM on every route).

POST /jobs, POST /jobs/batch, GET /jobs/{id}, DELETE /jobs/{id}, and POST /jobs/{id}/receipt (http: workers, HMAC-
signed, no gateway auth): sqsloops.jobs.api does the work; this takes the root's JobClient and receipt desk once per
execution environment and answers a stack without the job layer with a JSON 503.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from sqsloops.errors import ConfigError
from sqsloops.jobs.api import JobsApi
from sqsloops.jobs.root import JobsRoot
from sqsloops.log import logger


@functools.cache
def api() -> JobsApi:
    """Built on the first request, then reused (with the catalog's cache) by this execution environment."""
    root = JobsRoot.from_env()
    return JobsApi(root.job_client, receipts=root.receipt_desk)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context, api)


def handle(event: Any, context: Any, make_api: Callable[[], JobsApi]) -> dict[str, Any]:
    try:
        jobs_api = make_api()
    except ConfigError as exc:  # the deployment is wrong, not the request: say so, never a bare 500
        logger.error("jobs api is not configured", extra={"error": str(exc)})
        body = {"error": "not_configured", "message": str(exc)}
        return {"statusCode": 503, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
    return jobs_api.handle(event)
