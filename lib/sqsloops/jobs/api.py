"""The HTTP API's logic: API Gateway HTTP API requests (payload format 2.0) in, `{"statusCode", "headers", "body"}` out.

No web framework: four routes, each a few lines over `JobClient`, and one table from error to status code, so that
bad input is always a 4xx with a JSON body naming the field, never a 500.

    POST   /jobs        {"job", "args"?, "kwargs"?, "delay"?, "run_at"?, "key"?, "id"?}
                        201 {"id", "job", "duplicate": false, "status_url"}; 200 with the first job's id for a
                        unique duplicate (or an id enqueued before)
    POST   /jobs/batch  {"jobs": [<as POST /jobs>, ...]} (1..100): 200 {"results": [{"index", "status", ...}]}
    GET    /jobs/{id}   200 the status row (state, attempts, times, last error, result)
    DELETE /jobs/{id}   200 cancelled; 409 once it runs or has ended
    POST   /jobs/{id}/receipt  an http: worker's receipt (jobs/receipts.py): HMAC-signed, no gateway auth

Errors: `{"error": CODE, "message", "field"?}` with 400 (malformed JSON, an invalid field), 404 (an unknown job or
id, an unknown route), 409 (not cancellable), 413 (a body or a job's message over its limit), 503 (AWS throttled
us; retry). 403 for an unsigned request is the gateway's (AWS_IAM on every route but the receipt route, whose
HMAC signature this function checks: 401 when it does not hold).

`args` is a list of positional arguments, or an object of keyword arguments (then no `kwargs`), as in
`sqsloops.jobs.enqueue`. `delay` is a number of seconds or a duration ("10m", "1h30m"); `run_at` is ISO 8601 with a
time zone. Size limits: a job's message is at most 1 MiB (SQS), 256 KiB when Scheduler delivers it (a delay over
15 minutes); a request body at most MAX_JOB_BODY_BYTES (one job) or MAX_BATCH_BODY_BYTES (a batch, under Lambda's
6 MB synchronous payload limit, past which API Gateway refuses the request before the function runs).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from sqsloops.errors import ConfigError
from sqsloops.jobs.client import JobCall, JobClient, JobNotAppliedError
from sqsloops.jobs.envelope import MAX_MESSAGE_BYTES, check_job_id, format_utc, parse_utc
from sqsloops.jobs.errors import (
    EnqueueTimeError,
    JobArgsError,
    JobNotFoundError,
    JobTooLargeError,
    NotCancellableError,
    UnknownJobError,
)
from sqsloops.jobs.handle import JobHandle
from sqsloops.jobs.receipts import ReceiptDesk
from sqsloops.jobs.store import JobRecord
from sqsloops.log import logger

MAX_BATCH_ITEMS = 100
MAX_JOB_BODY_BYTES = MAX_MESSAGE_BYTES  # a job whose request is larger cannot fit in one SQS message
MAX_BATCH_BODY_BYTES = 5 * 1024 * 1024  # Lambda takes 6 MB per synchronous invoke, the event's headers included
JOB_FIELDS = frozenset({"job", "args", "kwargs", "delay", "run_at", "key", "id"})
THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "ProvisionedThroughputExceeded"}
)
THROTTLED |= {"ProvisionedThroughputExceededException", "RequestLimitExceeded", "ServiceUnavailable"}
RETRY_AFTER_S = 1
JSON_HEADERS = {"content-type": "application/json"}

Response = dict[str, Any]


class RequestError(Exception):
    """A request the API refuses: its status, a code, a message and the field at fault (None: the whole body)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": str(self)}
        if self.field is not None:
            body["field"] = self.field
        return body | self.extra


@dataclass(frozen=True)
class Request:
    """What the routes need from a payload 2.0 event."""

    method: str
    path: str  # rawPath: with the stage's prefix when the stage is not $default
    route: str  # "POST /jobs", "GET /jobs/{id}", ...
    path_id: str | None
    body: bytes
    base_url: str  # scheme://host[/stage]: where status URLs point
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # lower-cased names

    @classmethod
    def parse(cls, event: Any) -> Request:
        if not isinstance(event, Mapping):
            raise RequestError(400, "malformed", "not an API Gateway HTTP API event")
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        method = str(http.get("method") or "").upper()
        path = str(event.get("rawPath") or http.get("path") or "")
        route, path_id, prefix = _route_of(method, path, event.get("pathParameters") or {})
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        host = headers.get("host") or str(context.get("domainName") or "localhost")
        scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
        return cls(method, path, route, path_id, _body_of(event), f"{scheme}://{host}{prefix}", headers)

    def status_url(self, job_id: str) -> str:
        return f"{self.base_url}/jobs/{job_id}"


ROUTE_PATTERNS = (
    ("POST /jobs/{id}/receipt", re.compile(r"(?P<prefix>.*)/jobs/(?P<id>[^/]+)/receipt/?")),
    ("POST /jobs/batch", re.compile(r"(?P<prefix>.*)/jobs/batch/?")),
    ("POST /jobs", re.compile(r"(?P<prefix>.*)/jobs/?")),
    ("GET /jobs/{id}", re.compile(r"(?P<prefix>.*)/jobs/(?P<id>[^/]+)/?")),
    ("DELETE /jobs/{id}", re.compile(r"(?P<prefix>.*)/jobs/(?P<id>[^/]+)/?")),
)


def _route_of(method: str, path: str, path_parameters: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """(route, the job id in the path, the path before /jobs): the method and rawPath against the routes, so a
    named stage's prefix and a catch-all route mean the same as on the routes themselves."""
    for route, pattern in ROUTE_PATTERNS:
        match = pattern.fullmatch(path) if route.startswith(method + " ") else None
        if match is not None:
            raw_id = match.groupdict().get("id")
            path_id = path_parameters.get("id") or (None if raw_id is None else unquote(raw_id))
            return route, path_id, match.group("prefix")
    raise RequestError(404, "route_not_found", f"no route {method} {path}")


def _body_of(event: Mapping[str, Any]) -> bytes:
    raw = event.get("body")
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise RequestError(400, "malformed", "the body must be text")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestError(400, "malformed", f"the body is not valid base64: {exc}") from None
    return raw.encode()


class JobsApi:
    """The routes over a JobClient (and the receipt desk of http: workers); `handle` never raises (every failure
    is a response). Without a desk (no http workers secret) the receipt route answers 503 not_configured."""

    def __init__(self, client: JobClient, *, receipts: ReceiptDesk | None = None) -> None:
        self._client = client
        self._receipts = receipts
        self._routes: dict[str, Callable[[Request], Response]] = {
            "POST /jobs": self._enqueue,
            "POST /jobs/batch": self._enqueue_batch,
            "GET /jobs/{id}": self._status,
            "DELETE /jobs/{id}": self._cancel,
            "POST /jobs/{id}/receipt": self._receipt,
        }

    def handle(self, event: Any) -> Response:
        try:
            request = Request.parse(event)
            return self._routes[request.route](request)
        except RequestError as exc:
            return _response(exc.status, exc.body(), retry_after=exc.status == 503)
        except Exception as exc:  # an AWS failure or a bug: logged, and a JSON 500 the client can read
            error = _error_of(exc)
            if error.status >= 500:
                logger.exception("jobs api request failed", extra={"status": error.status})
            return _response(error.status, error.body(), retry_after=error.status == 503)

    # ---------------------------------------------------------------- routes

    def _enqueue(self, request: Request) -> Response:
        data = _json_object(request.body, limit=MAX_JOB_BODY_BYTES)
        call = parse_call(data)
        handle = self._client.enqueue(
            call.job, call.args, call.kwargs, delay=call.delay, run_at=call.run_at, key=call.key, id=call.id
        )
        body = _accepted(handle, request)
        headers = {"location": body["status_url"]} if "status_url" in body else {}
        return _response(200 if handle.duplicate else 201, body, headers=headers)

    def _enqueue_batch(self, request: Request) -> Response:
        data = _json_object(request.body, limit=MAX_BATCH_BODY_BYTES)
        unknown = sorted(set(data) - {"jobs"})
        if unknown:
            raise RequestError(
                400, "invalid", f"unknown field {unknown[0]!r}: a batch is {{'jobs': [...]}}", field=unknown[0]
            )
        items = data.get("jobs")
        if not isinstance(items, list) or not items:
            raise RequestError(400, "invalid", "jobs must be a non-empty list of jobs", field="jobs")
        if len(items) > MAX_BATCH_ITEMS:
            raise RequestError(
                413, "too_large", f"{len(items)} jobs in one batch; at most {MAX_BATCH_ITEMS}", field="jobs"
            )
        results: list[dict[str, Any] | None] = [None] * len(items)
        calls: list[tuple[int, JobCall]] = []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise RequestError(400, "invalid", "each job must be a JSON object", field=f"jobs[{index}]")
                calls.append((index, parse_call(item)))
            except RequestError as exc:
                results[index] = {"index": index, "status": exc.status, **exc.body()}
        sent = self._client.enqueue_many(call for _, call in calls)
        for (index, _), outcome in zip(calls, sent, strict=True):
            if outcome.handle is not None:
                status = 200 if outcome.handle.duplicate else 201
                results[index] = {"index": index, "status": status, **_accepted(outcome.handle, request)}
            else:
                error = _error_of(outcome.error or RuntimeError("no result"))
                if error.status >= 500:
                    logger.error("batch item failed", extra={"index": index, "error": str(outcome.error)})
                results[index] = {"index": index, "status": error.status, **error.body()}
        done = [result for result in results if result is not None]
        accepted = sum(1 for result in done if result["status"] < 300)
        return _response(200, {"accepted": accepted, "failed": len(done) - accepted, "results": done})

    def _status(self, request: Request) -> Response:
        return _response(200, record_body(self._client.status(_path_id(request)), request))

    def _cancel(self, request: Request) -> Response:
        return _response(200, record_body(self._client.cancel(_path_id(request)), request))

    def _receipt(self, request: Request) -> Response:
        if self._receipts is None:
            raise RequestError(
                503, "not_configured", "this stack has no http workers secret (SQSLOOPS_HTTP_SECRET_ARN)"
            )
        job_id = _path_id(request)
        try:
            check_job_id(job_id)
        except ConfigError:
            raise RequestError(404, "not_found", f"no job {job_id[:100]!r}") from None
        answer = self._receipts.receive(job_id, request.headers, request.body)
        return _response(answer.status, answer.body)


# ---------------------------------------------------------------- parsing


def _json_object(body: bytes, *, limit: int) -> dict[str, Any]:
    if len(body) > limit:
        raise RequestError(413, "too_large", f"the request body is {len(body)} bytes; at most {limit}")
    if not body.strip():
        raise RequestError(400, "malformed", "the body is empty: send a JSON object")
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, "malformed", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "malformed", f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_call(data: Mapping[str, Any]) -> JobCall:
    """A POST /jobs object as a JobCall; RequestError naming the field for anything off (what JobClient checks
    itself, the job's name, its arguments against the catalog, the times, is left to it)."""
    unknown = sorted(set(data) - JOB_FIELDS)
    if unknown:
        raise RequestError(
            400, "invalid", f"unknown field {unknown[0]!r}; fields are {sorted(JOB_FIELDS)}", field=unknown[0]
        )
    job = data.get("job")
    if not isinstance(job, str) or not job:
        raise RequestError(400, "invalid", "job must be the job's name (a string)", field="job")
    args: Any = data.get("args", [])
    kwargs: Any = data.get("kwargs")
    if isinstance(args, dict):
        if kwargs is not None:
            raise RequestError(
                400, "invalid", "args is an object (keyword arguments): leave out kwargs", field="kwargs"
            )
        args, kwargs = [], args
    if not isinstance(args, list):
        raise RequestError(400, "invalid", "args must be a list, or an object of keyword arguments", field="args")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise RequestError(400, "invalid", "kwargs must be an object", field="kwargs")
    delay = data.get("delay")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float | str)):
        raise RequestError(400, "invalid", "delay must be a number of seconds or a duration like '10m'", field="delay")
    run_at = _run_at(data.get("run_at"))
    if delay is not None and run_at is not None:
        raise RequestError(400, "invalid", "give delay or run_at, not both", field="run_at")
    key = _text(data, "key")
    job_id = _text(data, "id")
    if job_id is not None:
        try:
            check_job_id(job_id)
        except ConfigError as exc:
            raise RequestError(400, "invalid", str(exc), field="id") from None
    return JobCall(job, args, kwargs, delay=delay, run_at=run_at, key=key, id=job_id)


def _run_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(400, "invalid", "run_at must be an ISO 8601 time with a zone", field="run_at")
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise RequestError(400, "invalid", f"run_at: {exc}; e.g. 2030-01-31T09:00:00Z", field="run_at") from None


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise RequestError(400, "invalid", f"{name} must be a non-empty string", field=name)
    return value


def _path_id(request: Request) -> str:
    if not request.path_id:
        raise RequestError(404, "not_found", "no job id in the path")
    return request.path_id


# ---------------------------------------------------------------- answers


# Errors whose answer is fixed: (type, status, code, field). Checked in order, after RequestError.
_ERROR_TABLE: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (UnknownJobError, 404, "unknown_job", "job"),
    (JobNotAppliedError, 404, "unknown_job", "job"),  # declared somewhere, never applied: no queue to send to
    (JobNotFoundError, 404, "not_found", None),
)


def _error_of(exc: BaseException) -> RequestError:
    """The one table from an exception to its answer: bad input is a 4xx, AWS throttling a 503, the rest a 500."""
    if isinstance(exc, RequestError):
        return exc
    for kind, status, code, field in _ERROR_TABLE:
        if isinstance(exc, kind):
            return RequestError(status, code, str(exc), field=field)
    refused = _refusal(exc)
    if refused is not None:
        return refused
    code = str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""
    if code in THROTTLED:
        return RequestError(503, "unavailable", f"AWS is throttling this API ({code}); retry shortly")
    return RequestError(500, "internal", f"the request failed ({code or type(exc).__name__}); see the function's log")


def _refusal(exc: BaseException) -> RequestError | None:
    """The answer to what the job layer refuses with a reason (a state, an argument, a time), or None."""
    if isinstance(exc, NotCancellableError):
        return RequestError(409, "not_cancellable", str(exc), state=exc.state)
    if isinstance(exc, JobTooLargeError):
        return RequestError(413, "too_large", str(exc), field="args")
    if isinstance(exc, JobArgsError):
        return RequestError(400, "invalid", str(exc), field=_args_field(exc.problem))
    if isinstance(exc, EnqueueTimeError):
        return RequestError(400, "invalid", str(exc), field="run_at" if str(exc).startswith("run_at") else "delay")
    if isinstance(exc, ConfigError):
        return RequestError(400, "invalid", str(exc))
    return None


def _args_field(problem: str) -> str:
    """Which field a JobArgsError is about, from what JobClient says (its errors carry the job, not the field)."""
    if "kwargs" in problem or "by name" in problem:  # a key or a group rendered from keyword arguments
        return "kwargs"
    if problem.startswith(("key", "its unique key")):
        return "key"
    return "args"


def _accepted(handle: JobHandle, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"id": handle.id, "job": handle.job, "duplicate": handle.duplicate}
    if handle.schedule_name is not None:
        body["scheduled"] = True
    if handle.tracked:
        body["status_url"] = request.status_url(handle.id)
    else:
        body["tracked"] = False  # track=False: no status row to read or cancel
    return body


def record_body(record: JobRecord, request: Request) -> dict[str, Any]:
    """A status row as the API shows it: times in ISO 8601 UTC, the result as JSON (no traceback: it is the job's
    code, not the producer's business; `sqsloops jobs status` shows it)."""
    body: dict[str, Any] = {
        "id": record.id,
        "job": record.job,
        "state": record.state.value,
        "attempts": record.attempts,
        "status_url": request.status_url(record.id),
    }
    for name in ("enqueued_at", "run_at", "started_at", "finished_at", "updated_at"):
        moment = getattr(record, name)
        body[name] = None if not moment else format_utc(datetime.fromtimestamp(moment, UTC))
    body["last_error"] = record.last_error
    body["result"] = None if record.result is None else json.loads(record.result)
    if record.result_truncated:
        body["result_truncated"] = True
        body["result_bytes"] = record.result_bytes
    if record.key is not None:
        body["key"] = record.key
    return body


def _response(
    status: int, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None, retry_after: bool = False
) -> Response:
    all_headers = {**JSON_HEADERS, **(headers or {})}
    if retry_after:
        all_headers["retry-after"] = str(RETRY_AFTER_S)
    return {"statusCode": status, "headers": all_headers, "body": json.dumps(body, ensure_ascii=False)}
