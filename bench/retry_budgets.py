"""How long one heartbeat and one hand-over invoke block when AWS keeps failing, and how many HTTP attempts they make.

    .venv/bin/python bench/retry_budgets.py [--faults throttle,5xx,hang] [--heartbeat-s 10] [--reserve-s 15]

In-process moto, with the clients the process function builds (`Root(settings)`), in real time. Every HTTP attempt
of the call under test is answered by a fault through botocore's before-send hook (below every retry layer, so
each retry is counted and each backoff really sleeps):
- throttle: DynamoDB ThrottlingException (400), Lambda TooManyRequestsException (429);
- 5xx:      DynamoDB InternalServerError (500), Lambda ServiceException (500);
- hang:     the endpoint never answers: each attempt waits the client's read_timeout, then times out.
Prints one line per (call, fault): attempts, seconds, and what the call raised in the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto import mock_aws

from sqsloops.root import Root
from sqsloops.settings import Settings

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/work"

FAULTS: dict[str, dict[str, tuple[int, dict[str, str], bytes]]] = {
    "throttle": {
        "dynamodb": (400, {}, json.dumps({"__type": "ThrottlingException", "message": "injected"}).encode()),
        "lambda": (
            429,
            {"x-amzn-ErrorType": "TooManyRequestsException"},
            json.dumps({"message": "injected", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}).encode(),
        ),
    },
    "5xx": {
        "dynamodb": (500, {}, json.dumps({"__type": "InternalServerError", "message": "injected"}).encode()),
        "lambda": (500, {"x-amzn-ErrorType": "ServiceException"}, json.dumps({"message": "injected"}).encode()),
    },
}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, *_: Any) -> bytes:
        return self._data

    def stream(self, **_: Any) -> Any:
        yield self._data


def inject(client: Any, event: str, fault: str, attempts: list[float]) -> None:
    """Answer every attempt of `event` (before-send.SERVICE.OPERATION) with `fault`; count attempts."""
    service = event.split(".")[1]

    def answer(request: Any, **_: Any) -> AWSResponse:
        attempts.append(time.perf_counter())
        if fault == "hang":
            time.sleep(client.meta.config.read_timeout)
            raise ReadTimeoutError(endpoint_url=request.url)
        status, headers, body = FAULTS[fault][service]
        return AWSResponse(request.url, status, {"Content-Type": "application/json", **headers}, _Body(body))  # type: ignore[arg-type]

    client.meta.events.register(event, answer)


def measure(name: str, fault: str, call: Callable[[], Any], client: Any, event: str) -> dict[str, Any]:
    attempts: list[float] = []
    inject(client, event, fault, attempts)
    started = time.perf_counter()
    try:
        call()
        outcome = "returned"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:90]}"
    elapsed_s = time.perf_counter() - started
    return {"call": name, "fault": fault, "attempts": len(attempts), "seconds": round(elapsed_s, 1), "raised": outcome}


def create_tables(root: Root) -> None:
    ddb = root.clients.dynamodb
    ddb.create_table(
        TableName=root.settings.loops_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "queue_url", "AttributeType": "S"},
            {"AttributeName": "token", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "queue_url", "KeyType": "HASH"},
            {"AttributeName": "token", "KeyType": "RANGE"},
        ],
    )


def run(faults: list[str], *, heartbeat_s: float, reserve_s: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for fault in faults:
        with mock_aws():
            # A fresh Root per fault: the clients' retry quotas start full, as in a fresh execution environment.
            settings = Settings(
                queues_table="bench-queues",
                loops_table="bench-loops",
                process_function="bench-process",
                heartbeat_s=heartbeat_s,
                reserve_s=reserve_s,
            )
            root = Root(settings)
            create_tables(root)
            token = root.tokens.create(QUEUE_URL, slot=0)
            assert token is not None
            heartbeat = functools.partial(root.tokens.heartbeat, QUEUE_URL, token.slot, token.loop_id)
            rows.append(
                measure("Tokens.heartbeat", fault, heartbeat, root.clients.dynamodb, "before-send.dynamodb.UpdateItem")
            )
        with mock_aws():
            root = Root(
                Settings(
                    queues_table="q",
                    loops_table="l",
                    process_function="bench-process",
                    heartbeat_s=heartbeat_s,
                    reserve_s=reserve_s,
                )
            )
            start = functools.partial(root.launcher.start, token)
            rows.append(measure("Launcher.start", fault, start, root.clients.lambda_, "before-send.lambda.Invoke"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default="throttle,5xx,hang")
    parser.add_argument("--heartbeat-s", type=float, default=10.0)
    parser.add_argument("--reserve-s", type=float, default=15.0)
    args = parser.parse_args()
    timing = {"heartbeat_s": args.heartbeat_s, "reserve_s": args.reserve_s}
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    logging.getLogger("sqsloops").setLevel(logging.ERROR)
    print(f"heartbeat_s {args.heartbeat_s}, reserve_s {args.reserve_s}")
    budgets = getattr(Root(Settings(queues_table="q", loops_table="l", **timing)).clients, "budgets", None)
    if budgets is not None:
        for name in ("dynamodb", "lambda_", "sqs", "sqs_receive"):
            budget = getattr(budgets, name)
            print(
                f"budget {name:<12} attempts {budget.max_attempts}, connect {budget.connect_timeout_s} s, read"
                f" {budget.read_timeout_s} s: worst case {budget.worst_case_s:.1f} s"
            )
    for row in run(args.faults.split(","), heartbeat_s=args.heartbeat_s, reserve_s=args.reserve_s):
        print(
            f"{row['call']:<17} {row['fault']:<9} attempts {row['attempts']:>3}  {row['seconds']:>7.1f} s"
            f"  raised {row['raised']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
