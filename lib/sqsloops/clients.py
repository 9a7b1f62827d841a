"""The boto3 clients of one session, each built once on first use: the only place sqsloops makes a client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

# A forwarded batch waits for the handler function, which may run up to Lambda's 15 minute limit.
FORWARD_READ_TIMEOUT_S = 905
LAMBDA_FORWARDING = "lambda-forwarding"  # the Lambda client whose synchronous invokes wait for a handler function


ClientFactory = Callable[..., Any]  # (service_name, *, config=None) -> client


class Clients:
    """Lazily built clients; `factory` makes them (default: one boto3 session), `overrides` puts given ones in place.

    The embedded AWS passes its own factory (its endpoint and credentials); tests pass wrapped clients.
    """

    def __init__(
        self,
        factory: ClientFactory | None = None,
        *,
        region: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._factory = factory
        self._region = region
        self._session: boto3.session.Session | None = None
        self._built: dict[str, Any] = dict(overrides or {})
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        """The client `name` (a boto3 service name, or LAMBDA_FORWARDING), built once, on first use."""
        with self._lock:
            if name not in self._built:
                self._built[name] = self._make(name)
            return self._built[name]

    def _make(self, name: str) -> Any:
        if name == LAMBDA_FORWARDING:
            if "lambda" in self._built:  # a test's stand-in Lambda client serves forwarding too
                return self._built["lambda"]
            return self._client("lambda", Config(read_timeout=FORWARD_READ_TIMEOUT_S))
        return self._client(name, None)

    def _client(self, service: str, config: Config | None) -> Any:
        if self._factory is not None:
            return self._factory(service, config=config)
        if self._session is None:  # boto3 sessions are not thread-safe: built and used under the lock
            self._session = boto3.session.Session(region_name=self._region)
        return self._session.client(service, config=config)  # type: ignore[call-overload]

    @property
    def sqs(self) -> SQSClient:
        return self.get("sqs")  # type: ignore[no-any-return]

    @property
    def dynamodb(self) -> DynamoDBClient:
        return self.get("dynamodb")  # type: ignore[no-any-return]

    @property
    def lambda_(self) -> LambdaClient:
        return self.get("lambda")  # type: ignore[no-any-return]

    @property
    def lambda_forwarding(self) -> LambdaClient:
        return self.get(LAMBDA_FORWARDING)  # type: ignore[no-any-return]

    @property
    def cloudwatch(self) -> CloudWatchClient:
        return self.get("cloudwatch")  # type: ignore[no-any-return]

    @property
    def sns(self) -> SNSClient:
        return self.get("sns")  # type: ignore[no-any-return]

    @property
    def scheduler(self) -> EventBridgeSchedulerClient:
        return self.get("scheduler")  # type: ignore[no-any-return]

    @property
    def cloudformation(self) -> CloudFormationClient:
        return self.get("cloudformation")  # type: ignore[no-any-return]
