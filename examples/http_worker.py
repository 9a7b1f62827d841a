"""An http: worker endpoint in the standard library only: the web app side of `http:https://app/jobs/{job}`.

    SQSLOOPS_HTTP_SECRET='{"current": "..."}'  (the stack's HttpWorkersSecretArn value; or just the current value)
    SQSLOOPS_JOBS_API_URL=https://abc123.execute-api.us-east-1.amazonaws.com   (the stack's JobsApiUrl, for receipts)
    python examples/http_worker.py 8080

Each request is checked with `sqsloops.jobs.http.verify` (401 if it fails). A quick job answers 200 with its result
(kept as the job's result). A long one answers 202 at once, runs in a thread, and POSTs its receipt, signed the same
way, to `POST /jobs/{id}/receipt`. A 4xx means "never retry this"; raise and answer 500 for "retry later".
Use the X-Sqsloops-Job-Id header to make the work idempotent: a job may arrive more than once.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqsloops.jobs.http import ATTEMPT_HEADER, JOB_ID_HEADER, InvalidSignatureError, sign, verify


def add(a: int, b: int) -> int:
    return a + b


def render_report(pages: int) -> dict[str, int]:
    return {"pages": pages}


QUICK: dict[str, Callable[..., Any]] = {"add": add}  # answered 200 with the result
LONG: dict[str, Callable[..., Any]] = {"render_report": render_report}  # answered 202, then a receipt


def send_receipt(api_url: str, secret: str, job_id: str, attempt: int, outcome: dict[str, Any]) -> None:
    if not api_url.startswith(("https://", "http://127.0.0.1")):
        raise ValueError(f"the jobs API URL must be https (or local), got {api_url!r}")
    body = json.dumps({**outcome, "attempt": attempt}).encode()
    headers = {"Content-Type": "application/json", **sign(body, secret)}
    url = f"{api_url}/jobs/{job_id}/receipt"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (checked above)
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


def make_server(port: int, *, secret: Any, api_url: str = "") -> ThreadingHTTPServer:
    """The app on 127.0.0.1:port (0: any free port); `secret` as verify() takes it (a value, or the secret's JSON)."""
    signing = secret if isinstance(secret, str) else secret["current"]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                verify(dict(self.headers.items()), body, secret)
            except InvalidSignatureError as exc:
                return self.reply(401, {"error": str(exc)})
            envelope = json.loads(body)
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            job_id, attempt = self.headers[JOB_ID_HEADER], int(self.headers[ATTEMPT_HEADER])
            if name in QUICK:
                return self.reply(200, QUICK[name](*envelope["args"], **envelope["kwargs"]))
            if name in LONG and api_url:
                threading.Thread(target=self.run_long, args=(LONG[name], envelope, job_id, attempt)).start()
                return self.reply(202, {"accepted": job_id})
            return self.reply(404, {"error": f"no job {name}"})  # a 4xx: dead at once, never retried

        def run_long(self, fn: Callable[..., Any], envelope: dict[str, Any], job_id: str, attempt: int) -> None:
            try:
                outcome = {"status": "succeeded", "result": fn(*envelope["args"], **envelope["kwargs"])}
            except Exception as exc:
                outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            send_receipt(api_url, signing, job_id, attempt, outcome)

        def reply(self, status: int, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    raw = os.environ["SQSLOOPS_HTTP_SECRET"]
    secret = json.loads(raw) if raw.lstrip().startswith("{") else raw
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = make_server(port, secret=secret, api_url=os.environ.get("SQSLOOPS_JOBS_API_URL", "").rstrip("/"))
    print(f"http worker on http://127.0.0.1:{server.server_address[1]}/jobs/{{job}}")
    server.serve_forever()


if __name__ == "__main__":
    main()
