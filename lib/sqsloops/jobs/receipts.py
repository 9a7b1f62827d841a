"""`POST /jobs/{id}/receipt`: a web app reports how an http: job it accepted (202) ended (jobs/http.py).

Body `{"status": "succeeded" | "failed", "result"?: <JSON>, "error"?: str, "attempt"?: int}`, signed as the loop
signs its requests (X-Sqsloops-Timestamp and X-Sqsloops-Signature over the raw body, the stack's secret; current
or previous). The route has no gateway auth (API Gateway refuses an unsigned request on an AWS_IAM route before the
function runs, and the web app holds an HMAC secret, not AWS credentials): this signature is its auth.

    succeeded  the row becomes succeeded with the result; 200
    failed     the row keeps `running` with receipt "failed" and the error; the loop applies the retry policy
               (retry or dead) when it next sees the message; 200
    a job not running (settled, cancelled, another attempt): 409 `not_waiting` with its state (a repeated
    succeeded receipt for a succeeded job: 200, nothing changes); unknown id: 404; bad signature: 401

Then the message is made visible at once (ChangeMessageVisibility 0 with the receipt handle the row holds), so a
loop settles it now rather than at its next poll; if that fails (a handle from an older receive), the poll does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqsloops.jobs.http import InvalidSignatureError, SecretSource, verify
from sqsloops.jobs.states import RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobRecord, JobStore, Refused
from sqsloops.log import logger

RECEIPT_FIELDS = frozenset({"status", "result", "error", "attempt"})
MAX_RECEIPT_BYTES = 256 * 1024
STATUSES = ("succeeded", "failed")


@dataclass(frozen=True)
class ReceiptAnswer:
    status: int
    body: dict[str, Any]


class _RefusedError(Exception):
    """A receipt answered with an error (raised where it is found, answered by `receive`)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.answer = ReceiptAnswer(status, {"error": code, "message": message, **extra})


@dataclass(frozen=True)
class _Receipt:
    succeeded: bool
    result_json: str | None
    error: str | None
    attempt: int | None


class ReceiptDesk:
    """Checks and applies receipts; `receive` never raises for what the caller sent."""

    def __init__(self, *, store: JobStore, sqs: Any, secrets: SecretSource) -> None:
        self._store = store
        self._sqs = sqs
        self._secrets = secrets

    def receive(self, job_id: str, headers: Mapping[str, str], body: bytes) -> ReceiptAnswer:
        try:
            return self._apply(job_id, headers, body)
        except _RefusedError as refused:
            return refused.answer

    def _apply(self, job_id: str, headers: Mapping[str, str], body: bytes) -> ReceiptAnswer:
        try:
            secrets = self._secrets.get()
        except Exception as exc:
            logger.error("cannot read the http workers secret", extra={"error": str(exc)})
            raise _RefusedError(503, "unavailable", "the signing secret cannot be read now; retry shortly") from None
        try:
            verify(headers, body, secrets)  # wall time, as the app signed it (never a compressed clock)
        except InvalidSignatureError as exc:
            raise _RefusedError(401, "unauthorized", f"receipt refused: {exc}") from None
        receipt = _parse(body)
        row = self._store.get(job_id)
        if row is None:
            raise _RefusedError(404, "not_found", f"no job {job_id}")
        if row.state is SUCCEEDED and receipt.succeeded:
            return ReceiptAnswer(200, {"id": job_id, "state": row.state.value, "duplicate": True})
        if row.state is not RUNNING or (receipt.attempt is not None and receipt.attempt != row.attempts):
            message = f"job {job_id} is {row.state.value}, attempt {row.attempts}: receipt not applied"
            raise _RefusedError(409, "not_waiting", message, state=row.state.value, attempts=row.attempts)
        written = self._store.record_receipt(
            job_id,
            succeeded=receipt.succeeded,
            result_json=receipt.result_json,
            error=receipt.error,
            attempt=row.attempts,
        )
        if isinstance(written, Refused):
            state = written.current.state.value if written.current is not None else None
            raise _RefusedError(409, "not_waiting", f"receipt not applied: {written.detail}", state=state)
        self._nudge(row)
        status = "succeeded" if receipt.succeeded else "failed"
        logger.info("receipt applied", extra={"job_id": job_id, "status": status})
        return ReceiptAnswer(200, {"id": job_id, "state": written.state.value, "attempts": written.attempts})

    def _nudge(self, row: JobRecord) -> None:
        if not row.receipt_queue_url or not row.receipt_handle:
            return
        try:
            self._sqs.change_message_visibility(
                QueueUrl=row.receipt_queue_url, ReceiptHandle=row.receipt_handle, VisibilityTimeout=0
            )
        except Exception as exc:  # an older receive's handle, most likely: the loop's next poll settles it
            logger.info("cannot make the job's message visible now", extra={"job_id": row.id, "error": str(exc)})


def _parse(body: bytes) -> _Receipt:
    if len(body) > MAX_RECEIPT_BYTES:
        raise _RefusedError(413, "too_large", f"a receipt is at most {MAX_RECEIPT_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _RefusedError(400, "malformed", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _RefusedError(400, "malformed", "the body must be a JSON object")
    unknown = sorted(set(data) - RECEIPT_FIELDS)
    if unknown:
        raise _RefusedError(400, "invalid", f"unknown field {unknown[0]!r}", field=unknown[0])
    status = data.get("status")
    if status not in STATUSES:
        raise _RefusedError(400, "invalid", "status must be 'succeeded' or 'failed'", field="status")
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        raise _RefusedError(400, "invalid", "error must be a string", field="error")
    attempt = data.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1):
        message = "attempt must be the X-Sqsloops-Attempt it answers (1, 2, ...)"
        raise _RefusedError(400, "invalid", message, field="attempt")
    result = data.get("result")
    result_json = None if result is None else json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    return _Receipt(status == "succeeded", result_json, error, attempt)
