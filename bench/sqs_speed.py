"""moto SQS receive+delete throughput over HTTP at depth ~1,000, without and with sqsloops.local.sqs_speed.

    .venv/bin/python bench/sqs_speed.py [--depth 1000] [--seconds 5]

Both runs use the same ThreadedMotoServer process: the first before the patch, the second after it.
"""

from __future__ import annotations

import argparse
import logging
import time

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from sqsloops.local import sqs_speed


def fill(sqs: object, url: str, depth: int) -> None:
    for start in range(0, depth, 10):
        entries = [{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[attr-defined]


def drain_rate(sqs: object, url: str, seconds: float) -> float:
    """Messages received and deleted per second (batches of 10) while the depth stays around its start."""
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])  # type: ignore[attr-defined]
        if not messages:
            break
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[attr-defined]
        # keep the depth steady: put back as many as were taken
        sqs.send_message_batch(  # type: ignore[attr-defined]
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "again"} for i in range(len(messages))]
        )
        done += len(messages)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        rates = {}
        for label in ("moto 5.2.5 as is", "with sqs_speed"):
            if label == "with sqs_speed":
                sqs_speed.apply()
            url = sqs.create_queue(QueueName=f"bench-{len(rates)}")["QueueUrl"]
            fill(sqs, url, args.depth)
            rates[label] = drain_rate(sqs, url, args.seconds)
            print(f"{label:>20}: {rates[label]:7.0f} msgs/s received+deleted at depth ~{args.depth}")
        slow, fast = rates.values()
        print(f"{'speed-up':>20}: {fast / slow:7.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
