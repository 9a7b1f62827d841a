"""SQS calls per message of one real loop at a steady arrival rate, without and with a batching window.

    .venv/bin/python -m bench.batch_window [--rate 10] [--seconds 30] [--windows 0,1] [--batch-size 10]

One ThreadedMotoServer over HTTP (real long polls, real time); a producer sends `rate` messages per second, evenly
spaced, for `seconds`; one loop (sqsloops.loop.run_loop, default heartbeat and reserve, wait_s 20, an in-process
python: handler) consumes them. Counted: every SQS request the loop's clients made (receives, deletes, visibility
changes), divided by the messages it processed. The issue's target: <= 0.25 calls per message at 10 msgs/s with a
1 s window (2.00 without one).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from bench.common import create_core_tables
from sqsloops.dispatch import Dispatchers, core_kinds
from sqsloops.launcher import Launcher
from sqsloops.loop import LoopPayload, run_loop
from sqsloops.registry import CachedRegistry, QueueConfig, Registry
from sqsloops.settings import Settings
from sqsloops.tokens import Token, Tokens

QUEUES, LOOPS = "bench-queues", "bench-loops"


class NoHandOver(Launcher):
    """The measurement ends with the invocation: its hand-over starts nothing."""

    def __init__(self) -> None:
        pass

    def start(self, token: Token) -> None:
        return None


def client(service: str, endpoint: str, *, read_timeout_s: float = 30.0) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2}, read_timeout=read_timeout_s),
    )


def one_run(endpoint: str, *, window_s: int, rate: float, seconds: float, batch_size: int) -> dict[str, Any]:
    sqs, dynamodb, lambda_ = client("sqs", endpoint), client("dynamodb", endpoint), client("lambda", endpoint)
    url = sqs.create_queue(QueueName=f"steady-w{window_s}-{int(time.time() * 1000)}")["QueueUrl"]
    registry = Registry(table_name=QUEUES, dynamodb=dynamodb)
    registry.create(
        QueueConfig(
            queue_url=url,
            handler="python:sqsloops.examples:noop",
            batch_size=batch_size,
            batch_window_s=window_s,
            wait_s=20,
            visibility_timeout_s=60,
        )
    )
    tokens = Tokens(table_name=LOOPS, dynamodb=dynamodb)
    token = tokens.create(url, slot=0)
    assert token is not None
    calls: Counter[str] = Counter()
    sqs.meta.events.register("before-call.sqs.*", lambda model, **_: calls.update([model.name]))
    settings = Settings(queues_table=QUEUES, loops_table=LOOPS, process_function="bench-process")
    producer = client("sqs", endpoint)
    stop = threading.Event()

    def produce() -> None:
        started = time.monotonic()
        for i in range(int(rate * seconds)):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            producer.send_message(QueueUrl=url, MessageBody=f"m{i}")

    thread = threading.Thread(target=produce, daemon=True)
    deadline = time.monotonic() + settings.reserve_s + seconds + 2  # the loop polls until 2 s after the last send
    thread.start()
    result = run_loop(
        LoopPayload.parse(token.payload()),
        remaining_ms=lambda: int((deadline - time.monotonic()) * 1000),
        settings=settings,
        registry=CachedRegistry(registry),
        tokens=tokens,
        sqs=sqs,
        dispatchers=Dispatchers(kinds=core_kinds(lambda_)),
        launcher=NoHandOver(),
    )
    stop.set()
    thread.join()
    processed = max(result.processed, 1)
    return {
        "window_s": window_s,
        "processed": result.processed,
        "batches": result.batches,
        "calls": dict(calls),
        "calls_per_message": sum(calls.values()) / processed,
        "messages_per_batch": result.processed / max(result.batches, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second (steady)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long messages arrive, per run")
    parser.add_argument("--windows", default="0,1", help="batch_window_s values to compare, comma-separated")
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("sqsloops").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        create_core_tables(client("dynamodb", endpoint), queues_table=QUEUES, loops_table=LOOPS)
        print(f"steady {args.rate:g} msgs/s for {args.seconds:g} s, one loop, batch_size {args.batch_size}")
        print(f"{'window_s':>8} {'processed':>9} {'msgs/batch':>10} {'SQS calls/msg':>13}  calls")
        for window_s in (int(w) for w in args.windows.split(",")):
            row = one_run(endpoint, window_s=window_s, rate=args.rate, seconds=args.seconds, batch_size=args.batch_size)
            print(
                f"{row['window_s']:>8} {row['processed']:>9} {row['messages_per_batch']:>10.2f} "
                f"{row['calls_per_message']:>13.3f}  {row['calls']}"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
