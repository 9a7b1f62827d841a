"""The 2016 pattern, as a baseline: a Lambda function that polls SQS once per invocation and invokes itself.

Faithful to the self-invoking SQS pollers of 2016 (before Lambda had an SQS trigger): one long poll per
invocation (up to 10 messages, WaitTimeSeconds 20), each message handled and then deleted on its own
(DeleteMessage), and after every poll, empty or not, an asynchronous invocation of itself with the same event.
A chain is started with one asynchronous invoke of `{"queue_url": ...}`; N chains are N consumers.

BENCH_STOP (an environment variable the benchmark sets to end the chains) is read from the environment, so
stopping costs no API call.
"""

import json
import os
from typing import Any

import boto3

sqs = boto3.client("sqs")
lambda_client = boto3.client("lambda")


def process(message: Any) -> None:
    """The no-op handler."""


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if os.environ.get("BENCH_STOP"):
        print("pattern2016 chain stopped", flush=True)
        return {"stopped": True}
    queue_url = event["queue_url"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20).get("Messages", [])
    for message in messages:
        process(message)
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    lambda_client.invoke(FunctionName=context.function_name, InvocationType="Event", Payload=json.dumps(event))
    return {"received": len(messages)}
