"""Starting a loop: an asynchronous invoke of the process function with the token's next payload."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.tokens import Token
from sqsloops.transient import call_aws

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class Launcher:
    """Starts loops. The same call serves scale-up, the restart sweep, registration and a loop's own recursion.

    The Lambda client retries within its budget (sqsloops.clients), so an invoke whose first attempt went through
    unseen may be delivered twice: the payload's hop makes the second delivery stop at its claim.
    """

    def __init__(self, *, lambda_client: LambdaClient, function_name: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lambda = lambda_client
        self._function = function_name
        self._clock = clock

    def start(self, token: Token) -> None:
        """Invoke the process function asynchronously (InvocationType=Event) with `token.payload()` (its hop + 1):
        returns once Lambda has queued it. TransientAwsError if Lambda kept throttling or failing."""
        payload = json.dumps(token.payload()).encode()
        call_aws(lambda: self._lambda.invoke(FunctionName=self._function, InvocationType="Event", Payload=payload))
