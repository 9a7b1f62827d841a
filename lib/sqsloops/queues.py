"""SQS queue identity (URL, ARN, name) and the attributes the rest of sqsloops reads from a queue."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from sqsloops.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_ACCOUNT = re.compile(r"^\d{12}$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d"
# sqs.REGION.amazonaws.com (and .com.cn, and the embedded AWS's sqs.REGION.localhost...), and the legacy hosts
# REGION.queue.amazonaws.com and queue.amazonaws.com (us-east-1).
_REGION_IN_HOST = re.compile(rf"^(?:sqs\.({_REGION})\.|({_REGION})\.queue\.amazonaws\.com$)")
_LEGACY_US_EAST_1 = "queue.amazonaws.com"
MISSING_QUEUE_CODES = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})


def queue_missing(exc: BaseException) -> bool:
    """True when an SQS call failed because the queue does not exist (deleted, or never created)."""
    if not isinstance(exc, ClientError):
        return False
    return exc.response.get("Error", {}).get("Code", "") in MISSING_QUEUE_CODES


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
        host = (parsed.hostname or "").lower()
        match = _REGION_IN_HOST.match(host)
        region = (match.group(1) or match.group(2)) if match else ("us-east-1" if host == _LEGACY_US_EAST_1 else None)
        return cls(url=url, account_id=account_id, name=name, region=region)

    def arn(self, region: str, partition: str = "aws") -> str:
        return f"arn:{partition}:sqs:{self.region or region}:{self.account_id}:{self.name}"

    def same_queue(self, other: QueueRef, *, region: str) -> bool:
        """Whether two URLs name one queue: same account and name, and same region (`region` where a host names
        none, such as localhost or the embedded AWS). Read from the URLs alone: no call, so it works for a queue
        that no longer exists."""
        return (self.account_id, self.name, self.region or region) == (
            other.account_id,
            other.name,
            other.region or region,
        )


@dataclass(frozen=True)
class QueueId:
    """A queue's identity, as its ARN states it: partition, region, account and name."""

    partition: str
    region: str
    account_id: str
    name: str

    @classmethod
    def from_arn(cls, arn: str) -> QueueId:
        parts = arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
            raise ConfigError(f"not an SQS queue ARN: {arn!r}")
        return cls(partition=parts[1], region=parts[3], account_id=parts[4], name=parts[5])

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account_id}:{self.name}"


def canonical_queue_url(sqs: SQSClient, queue_url: str) -> tuple[str, QueueId]:
    """The one URL sqsloops keys a queue by, and the queue's identity: any spelling of a queue's URL gives the same.

    Registrations, tokens, alarms and status are keyed by queue URL (the Queues and Loops tables' hash key since
    the first release). Every spelling of one queue (sqs.REGION.amazonaws.com, the legacy queue.amazonaws.com,
    localhost, the embedded AWS's host) is reduced to the queue's ARN (GetQueueAttributes QueueArn: account,
    region and name as SQS itself knows them), and the ARN back to the URL GetQueueUrl returns through this
    client's endpoint. That is the URL `create_queue` and `get_queue_url` hand a user, so registrations written
    before canonicalisation, which nearly always used it, keep their keys. A queue in another region than the
    client's is refused: the stack's loops poll with clients of the stack's region.
    ClientError (QueueDoesNotExist) when the queue does not exist.
    """
    QueueRef.parse(queue_url)
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]).get("Attributes", {})
    queue = QueueId.from_arn(str(attrs.get("QueueArn", "")))
    region = sqs.meta.region_name
    if region and queue.region != region:
        raise ConfigError(f"queue {queue.arn} is in {queue.region}, the stack in {region}: register it there")
    url = sqs.get_queue_url(QueueName=queue.name, QueueOwnerAWSAccountId=queue.account_id)["QueueUrl"]
    return url, queue


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
