"""The errors sqsloops raises: a small hierarchy, each carrying what a caller needs to act on it."""

from __future__ import annotations


class SqsloopsError(Exception):
    """Base of every sqsloops error."""


class ConfigError(SqsloopsError):
    """A registration, setting or argument is invalid; nothing was written."""


class NotRegisteredError(SqsloopsError):
    """The queue has no registration."""

    def __init__(self, queue_url: str) -> None:
        super().__init__(f"queue is not registered: {queue_url}")
        self.queue_url = queue_url


class ConcurrentUpdateError(SqsloopsError):
    """A registration changed under an optimistic update; re-read and try again."""


class TokenLostError(SqsloopsError):
    """The loop's token is gone or now carries another loop_id: the loop must stop."""

    def __init__(self, queue_url: str, token: str, loop_id: str) -> None:
        super().__init__(f"token {token} of {queue_url} no longer belongs to loop {loop_id}")
        self.queue_url = queue_url
        self.token = token
        self.loop_id = loop_id


class HopClaimedError(TokenLostError):
    """The loop's token is at another hop: a repeated (or late) event, or a newer invocation holds it; stop."""

    def __init__(self, queue_url: str, token: str, loop_id: str, *, hop: int, found_hop: int) -> None:
        super().__init__(queue_url, token, loop_id)
        if found_hop == hop:
            why = "another delivery of the same event claimed it"
        elif found_hop > hop:
            why = "a later invocation holds it"
        else:
            why = "the hop before never claimed it"
        self.args = (f"token {token} of {queue_url} is at hop {found_hop}, this invocation's is {hop}: {why}",)
        self.hop = hop
        self.found_hop = found_hop


class TransientAwsError(SqsloopsError):
    """An AWS call kept failing with throttling or a server error; worth retrying later, never fatal."""


class HandlerError(SqsloopsError):
    """A handler string cannot be resolved to something callable."""


class AlarmNotificationError(SqsloopsError):
    """An SNS message is not a CloudWatch alarm notification we can act on."""


class MotoChangedError(SqsloopsError):
    """moto is not the version (or shape) sqsloops.local patches; nothing was patched."""


class DeployError(SqsloopsError):
    """The embedded AWS could not deploy the stack (packaging, translation or CloudFormation failed)."""


def describe(exc: BaseException) -> str:
    """`Type: message`, how every log line and failure reason names an exception."""
    return f"{type(exc).__name__}: {exc}"
