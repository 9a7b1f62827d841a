"""The raw limit: a bare boto3 loop of ReceiveMessage (10, long poll) + DeleteMessageBatch. One per process.

    python -m bench.raw_consumer QUEUE_URL

The endpoint, region, credentials and User-Agent app id come from the environment. Runs until killed.
"""

from __future__ import annotations

import sys

import boto3


def main(queue_url: str) -> None:
    sqs = boto3.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20).get(
            "Messages", []
        )
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1])
