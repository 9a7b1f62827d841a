"""One Lambda execution environment: the main of a worker subprocess started by sqsloops.local.executor.

Started as `python -I -S -u .../worker.py CONFIG_JSON`, by path and not as a module, isolated and without the
`site` module: sys.path starts as the standard library alone, none of the virtualenv's site-packages. The config's
paths go first, in Lambda's order: the function directory (/var/task), its layers (/opt/python/lib/python3.11/
site-packages, /opt/python), then the runtime's own packages (boto3 and its dependencies, as /var/runtime). So
the handler imports sqsloops from the layer, and anything neither the code nor a layer ships fails to import, as
on AWS. Only the standard library is imported here.

Protocol: JSON lines on two dedicated pipes (file descriptors in the config), never stdout or stderr, which stay
the function's log (the executor echoes them). The worker writes `{"ready": true}` once its init (the handler
import) is done, then, per request `{"request_id", "event", "deadline_ms", "invoked_function_arn"}`, runs the
handler and answers `{"ok": true, "payload": JSON}` or `{"ok": false, "error": {...}}` with Lambda's error shape.
EOF on the request pipe ends the worker.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The context object of Lambda's Python runtime (awslambdaric), read from the same environment variables."""

    def __init__(self, *, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        remaining_ms = self._deadline_ms - int(time.time() * 1000)
        return remaining_ms if remaining_ms > 0 else 0

    def log(self, message: str) -> None:
        sys.stdout.write(message)


def error_body(exc: BaseException, *, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    """Lambda's error payload for an exception (what `FunctionError: Unhandled` responses carry)."""
    return {
        "errorMessage": str(exc) if message is None else message,
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


class Runtime:
    """Imports the handler (init), then runs one invocation at a time."""

    def __init__(self, handler_name: str) -> None:
        self.handler_name = handler_name
        self.handler: Handler | None = None
        self.init_error: dict[str, Any] | None = None

    def init(self) -> None:
        module_name, _, function_name = self.handler_name.replace("/", ".").rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            self.init_error = error_body(
                exc,
                error_type="Runtime.ImportModuleError",
                message=f"Unable to import module '{module_name}': {exc}",
            )
            _log_error(exc)
            return
        handler = getattr(module, function_name, None)
        if not callable(handler):
            self.init_error = {
                "errorMessage": f"Handler '{function_name}' missing on module '{module_name}'",
                "errorType": "Runtime.HandlerNotFound",
                "requestId": "",
                "stackTrace": [],
            }
            return
        self.handler = handler
        self.init_error = None

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.handler is None:
            self.init()  # Lambda retries a failed init on the next invocation
        if self.handler is None:
            return {"ok": False, "error": {**(self.init_error or {}), "requestId": request["request_id"]}}
        context = LambdaContext(
            request_id=request["request_id"],
            deadline_ms=int(request["deadline_ms"]),
            invoked_function_arn=request["invoked_function_arn"],
        )
        try:
            event = json.loads(request["event"])
            result = self.handler(event, context)
        except Exception as exc:
            _log_error(exc)
            return {"ok": False, "error": {**error_body(exc), "requestId": request["request_id"]}}
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            return {"ok": False, "error": {**error_body(exc, error_type="Runtime.MarshalError", message=message)}}
        return {"ok": True, "payload": payload}


def _log_error(exc: BaseException) -> None:
    """What Lambda's runtime logs for an unhandled exception."""
    lines = traceback.format_exception(exc)
    sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc}\n{''.join(lines)}")
    sys.stderr.flush()


def _write(channel: BinaryIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message).encode() + b"\n")
    channel.flush()


def _set_sys_path(first: list[str]) -> None:
    """Function code, layers and the runtime's packages ahead of the standard library; this script's directory out."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[:] = first + [p for p in rest if p not in first]


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    _set_sys_path(list(config["paths"]))
    requests = os.fdopen(int(config["request_fd"]), "rb")
    replies = os.fdopen(int(config["reply_fd"]), "wb")
    runtime = Runtime(config["handler"])
    runtime.init()
    _write(replies, {"ready": True})
    for line in requests:
        reply = runtime.invoke(json.loads(line))
        sys.stdout.flush()
        sys.stderr.flush()
        _write(replies, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
