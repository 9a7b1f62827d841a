"""SQS queue identity (URL, ARN, name) and the attributes the rest of sqsloops reads from a queue."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from sqsloops.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_ACCOUNT = re.compile(r"^\d{12}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_REGION_IN_HOST = re.compile(r"^sqs\.([a-z]{2}(-gov)?-[a-z]+-\d)\.")


@dataclass(frozen=True)
class QueueRef:
    """What a queue URL says: the account, the name and, for AWS hosts, the region."""

    url: str
    account_id: str
    name: str
    region: str | None

    @classmethod
    def parse(cls, url: str) -> QueueRef:
        """Parse a queue URL, or raise ConfigError with a one-line reason."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"not a queue URL (expected https://sqs.REGION.amazonaws.com/ACCOUNT/NAME): {url!r}")
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) != 2 or parsed.query or parsed.fragment:
            raise ConfigError(f"a queue URL's path is /ACCOUNT/NAME, got {parsed.path!r} in {url!r}")
        account_id, name = parts
        if not _ACCOUNT.match(account_id):
            raise ConfigError(f"queue URL account must be 12 digits, got {account_id!r}")
        if not _NAME.match(name):
            raise ConfigError(f"invalid queue name {name!r} (1-80 of A-Z a-z 0-9 _ -, optional .fifo)")
        match = _REGION_IN_HOST.match(parsed.hostname or "")
        return cls(url=url, account_id=account_id, name=name, region=match.group(1) if match else None)

    def arn(self, region: str, partition: str = "aws") -> str:
        return f"arn:{partition}:sqs:{self.region or region}:{self.account_id}:{self.name}"


@dataclass(frozen=True)
class Depth:
    """Approximate queue counts, as SQS and its CloudWatch metrics report them."""

    visible: int
    in_flight: int
    delayed: int


def queue_depth(sqs: SQSClient, queue_url: str) -> Depth:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return Depth(
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


@dataclass(frozen=True)
class RedrivePolicy:
    """Where a queue's failing messages go, and after how many receives."""

    dead_letter_arn: str
    max_receive_count: int


def redrive_policy(sqs: SQSClient, queue_url: str) -> RedrivePolicy | None:
    # A queue without the attribute answers with no "Attributes" at all (AWS and moto alike).
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
    raw = attrs.get("RedrivePolicy")
    if not raw:
        return None
    policy = json.loads(raw)
    return RedrivePolicy(
        dead_letter_arn=str(policy["deadLetterTargetArn"]),
        max_receive_count=int(policy["maxReceiveCount"]),
    )


def queue_url_of(sqs: SQSClient, queue_arn: str) -> str:
    """The URL of the queue an ARN names, as this client's endpoint serves it (GetQueueUrl)."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        raise ConfigError(f"not an SQS queue ARN: {queue_arn!r}")
    account_id, name = parts[4], parts[5]
    return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account_id)["QueueUrl"]
