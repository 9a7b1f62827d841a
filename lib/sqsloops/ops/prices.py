"""Every AWS price the cost model uses, in one table, each with the page it comes from and when it was read.

Region us-east-1 (US East, N. Virginia), on-demand list prices, first volume tier, no free tier (an account's free
tier is usually spent by its other workloads, and leaving it out keeps the comparison fair to both sides). Prices
change: when one does, edit its row here (amount, per, read_on) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

REGION = "us-east-1"
READ_ON = "2026-11-22"  # when the pages below were read (stored copies, cross-checked against other write-ups)

LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
SQS_PRICING = "https://aws.amazon.com/sqs/pricing/"
DYNAMODB_PRICING = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
CLOUDWATCH_PRICING = "https://aws.amazon.com/cloudwatch/pricing/"
SNS_PRICING = "https://aws.amazon.com/sns/pricing/"
EVENTBRIDGE_PRICING = "https://aws.amazon.com/eventbridge/pricing/"


@dataclass(frozen=True)
class Price:
    """`usd` per `per` units of `unit`, as the pricing page states it (e.g. $0.40 per 1,000,000 requests)."""

    key: str
    usd: float
    per: int
    unit: str
    what: str
    source: str
    read_on: str = READ_ON

    @property
    def usd_per_unit(self) -> float:
        return self.usd / self.per

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "usd": self.usd,
            "per": self.per,
            "unit": self.unit,
            "what": self.what,
            "source": self.source,
            "read_on": self.read_on,
        }


PRICES: dict[str, Price] = {
    price.key: price
    for price in (
        Price(
            "lambda_arm_gb_s",
            0.0000133334,
            1,
            "GB-second",
            "Lambda duration, Arm (arm64), first 7.5 billion GB-seconds a month",
            LAMBDA_PRICING,
        ),
        Price(
            "lambda_request",
            0.20,
            1_000_000,
            "request",
            "Lambda requests (invocations), any architecture",
            LAMBDA_PRICING,
        ),
        Price(
            "sqs_request",
            0.40,
            1_000_000,
            "request",
            "SQS standard queue API requests, first 100 billion a month; each 64 KB chunk of a payload is one request",
            SQS_PRICING,
        ),
        Price(
            "dynamodb_write_unit",
            0.625,
            1_000_000,
            "write request unit",
            "DynamoDB on-demand writes, Standard table class (one unit per write of up to 1 KB)",
            DYNAMODB_PRICING,
        ),
        Price(
            "dynamodb_storage_gb_month",
            0.25,
            1,
            "GB-month",
            "DynamoDB Standard table class storage, beyond the first 25 GB a month",
            DYNAMODB_PRICING,
        ),
        Price(
            "dynamodb_read_unit",
            0.125,
            1_000_000,
            "read request unit",
            "DynamoDB on-demand reads, Standard table class (one strongly consistent or two eventually consistent "
            "reads of up to 4 KB)",
            DYNAMODB_PRICING,
        ),
        Price(
            "cloudwatch_alarm_month",
            0.10,
            1,
            "alarm metric-month",
            "CloudWatch standard-resolution (60 s) alarm, per metric it evaluates, per month",
            CLOUDWATCH_PRICING,
        ),
        Price(
            "cloudwatch_custom_metric_month",
            0.30,
            1,
            "metric-month",
            "CloudWatch custom metric, first 10,000 a month (the AWS/SQS and AWS/Lambda metrics the alarms read are "
            "basic monitoring: free)",
            CLOUDWATCH_PRICING,
        ),
        Price(
            "sns_publish",
            0.50,
            1_000_000,
            "request",
            "SNS standard topic requests (publishes), each 64 KB chunk one request",
            SNS_PRICING,
        ),
        Price("sns_lambda_delivery", 0.0, 1, "delivery", "SNS deliveries to Lambda functions: no charge", SNS_PRICING),
        Price(
            "eventbridge_scheduled_rule",
            0.0,
            1,
            "event",
            "EventBridge scheduled rule (rate/cron) events on the default bus: AWS-generated events, no charge",
            EVENTBRIDGE_PRICING,
        ),
    )
}


def unit_usd(key: str) -> float:
    """The price of one unit (one request, one GB-second, one alarm-month) of PRICES[key]."""
    return PRICES[key].usd_per_unit
