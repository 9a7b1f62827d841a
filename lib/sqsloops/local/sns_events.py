"""The event a Lambda function receives from an SNS subscription (the `Records[0].Sns` shape)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any


def sns_event(
    *,
    topic_arn: str,
    subscription_arn: str,
    message_id: str,
    message: str,
    subject: str | None,
    message_attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event Lambda receives from an SNS subscription."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "EXAMPLE",
                    "UnsubscribeUrl": "EXAMPLE",
                    "MessageAttributes": {
                        name: {"Type": value.get("Type"), "Value": value.get("Value")}
                        for name, value in (message_attributes or {}).items()
                    },
                },
            }
        ]
    }
