"""sqsloops.local.sqs_speed: moto's SQS made cheap per message, pinned to moto 5.2.5, behaviour unchanged."""

from __future__ import annotations

import time
from typing import Any

import moto
import pytest
from botocore.exceptions import ClientError
from moto.core import utils as moto_utils
from moto.sqs import models as sqs_models

from sqsloops.errors import MotoChangedError
from sqsloops.local import sqs_speed
from tests.conftest import Clients


class ControlledTime:
    """Stands in for the `time` module inside the patch: SQS sees this clock, nothing sleeps."""

    def __init__(self) -> None:
        self.now_s = time.time()

    def time(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ControlledTime:
    sqs_speed.apply()
    controlled = ControlledTime()
    monkeypatch.setattr(sqs_speed, "time", controlled)
    return controlled


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto as shipped for the duration of one test (monkeypatch puts the patch back afterwards)."""
    monkeypatch.setattr(sqs_models, "unix_time", moto_utils.unix_time)
    monkeypatch.setattr(sqs_models, "unix_time_millis", moto_utils.unix_time_millis)
    assert not sqs_speed.is_applied()


def attributes(aws: Clients, url: str) -> dict[str, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    raw = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {name: int(raw[name]) for name in names}


def receive(aws: Clients, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    response = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], **kwargs
    )
    return list(response.get("Messages", []))


# ---------------------------------------------------------------- applied, and pinned


def test_the_patch_is_applied_once_and_stays_applied() -> None:
    # When applied twice
    sqs_speed.apply()
    sqs_speed.apply()
    # Then moto's SQS runs the fast versions
    assert sqs_speed.is_applied()
    assert sqs_models.unix_time is sqs_speed.unix_time


@pytest.mark.usefixtures("unpatched")
def test_another_moto_version_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a moto that is not the pinned version
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    # When the patch is applied, Then it refuses and names both versions
    with pytest.raises(MotoChangedError, match=r"5\.2\.5 only.*moto is 5\.3\.0"):
        sqs_speed.apply()
    assert not sqs_speed.is_applied()


@pytest.mark.usefixtures("unpatched")
def test_a_changed_shape_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the pinned version whose retention check was renamed away
    monkeypatch.delattr(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period")
    # Then applying the patch fails and says what changed
    with pytest.raises(MotoChangedError, match="is_message_valid_based_on_retention_period"):
        sqs_speed.apply()
    assert sqs_models.unix_time is moto_utils.unix_time


def test_a_changed_time_helper_is_refused_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto.sqs.models no longer using moto's unix_time
    monkeypatch.setattr(sqs_models, "unix_time", lambda dt=None: 0.0)
    with pytest.raises(MotoChangedError, match="unix_time"):
        sqs_speed.check_target()


# ---------------------------------------------------------------- behaviour preserved


def test_a_received_message_is_invisible_until_its_visibility_timeout_ends(aws: Clients, clock: ControlledTime) -> None:
    url = aws.sqs.create_queue(QueueName="visibility")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="one")
    # When received with a 30 s visibility timeout
    assert len(receive(aws, url, VisibilityTimeout=30)) == 1
    # Then it is in flight, not receivable
    assert receive(aws, url) == []
    assert attributes(aws, url)["ApproximateNumberOfMessagesNotVisible"] == 1
    # When the timeout passes, Then it comes back with a higher receive count
    clock.advance(31)
    again = receive(aws, url)
    assert [m["Body"] for m in again] == ["one"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_delayed_message_arrives_after_its_delay(aws: Clients, clock: ControlledTime) -> None:
    url = aws.sqs.create_queue(QueueName="delay")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=10)
    assert receive(aws, url) == []
    assert attributes(aws, url) == {
        "ApproximateNumberOfMessages": 0,
        "ApproximateNumberOfMessagesNotVisible": 0,
        "ApproximateNumberOfMessagesDelayed": 1,
    }
    clock.advance(11)
    assert [m["Body"] for m in receive(aws, url)] == ["later"]


def test_a_message_past_retention_is_not_delivered(aws: Clients, clock: ControlledTime) -> None:
    url = aws.sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="old")
    clock.advance(61)
    assert receive(aws, url) == []


def test_delete_removes_the_message_and_tolerates_a_second_delete(aws: Clients, clock: ControlledTime) -> None:
    url = aws.sqs.create_queue(QueueName="delete")["QueueUrl"]
    for body in ("a", "b", "c"):
        aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    received = receive(aws, url, VisibilityTimeout=30)
    first = next(m for m in received if m["Body"] == "b")
    # When one message is deleted (twice, as an at-least-once consumer may)
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    # Then the others come back after their timeout and the deleted one does not
    clock.advance(31)
    assert sorted(m["Body"] for m in receive(aws, url)) == ["a", "c"]
    # And a receipt handle SQS never issued is still rejected
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")


def test_a_message_received_too_often_moves_to_the_dead_letter_queue(aws: Clients, clock: ControlledTime) -> None:
    dlq_url = aws.sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = aws.sqs.create_queue(
        QueueName="work",
        Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "1"}}'},
    )["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="poison")
    assert len(receive(aws, url, VisibilityTimeout=5)) == 1
    clock.advance(6)
    assert receive(aws, url) == []
    assert [m["Body"] for m in receive(aws, dlq_url)] == ["poison"]
