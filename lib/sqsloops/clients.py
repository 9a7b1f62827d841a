"""The boto3 clients of one session, each built once on first use: the only place sqsloops makes a client.

Every client gets a budget: botocore's standard retry mode with a number of attempts and per-attempt connect and
read timeouts, chosen so that one call, every attempt and every backoff pause included, fits the time its caller
has. That is the one retry layer (`sqsloops.transient` only names what outlasted it). The budgets follow the stack's
settings: a heartbeat (DynamoDB) within HEARTBEAT_CALL_SHARE of heartbeat_s, so it never blocks a loop past its next
heartbeat (let alone stale_after_s); the last heartbeat plus the hand-over invoke (Lambda) within HANDOVER_SHARE of
reserve_s, so a loop hands over inside its reserve.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from sqsloops import defaults

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from sqsloops.settings import Settings

# A forwarded batch waits for the handler function, which may run up to Lambda's 15 minute limit.
FORWARD_READ_TIMEOUT_S = 905
LAMBDA_FORWARDING = "lambda-forwarding"  # the Lambda client whose synchronous invokes wait for a handler function
SQS_RECEIVE = "sqs-receive"  # the SQS client whose long polls wait up to MAX_WAIT_S for messages


def retry_pause_ceiling_s(retry: int) -> float:
    """The longest pause botocore's standard mode makes before retry number `retry` (1-based): full jitter under
    RETRY_FIRST_BACKOFF_S * 2^(retry-1), capped at RETRY_MAX_BACKOFF_S."""
    return min(defaults.RETRY_FIRST_BACKOFF_S * 2.0 ** (retry - 1), defaults.RETRY_MAX_BACKOFF_S)


@dataclass(frozen=True)
class CallBudget:
    """What one call on a client may take: attempts (the first included) and per-attempt timeouts."""

    max_attempts: int
    connect_timeout_s: float
    read_timeout_s: float

    @property
    def worst_case_s(self) -> float:
        """Every attempt timing out (connect, then read) and every pause at its ceiling."""
        attempts_s = self.max_attempts * (self.connect_timeout_s + self.read_timeout_s)
        return attempts_s + sum(retry_pause_ceiling_s(n) for n in range(1, self.max_attempts))

    @classmethod
    def within(cls, budget_s: float, *, read_timeout_s: float) -> CallBudget:
        """The most attempts (up to CALL_MAX_ATTEMPTS) whose worst case fits budget_s; one when even one does not."""
        fitting = cls(1, defaults.CONNECT_TIMEOUT_S, read_timeout_s)
        for attempts in range(2, defaults.CALL_MAX_ATTEMPTS + 1):
            more = cls(attempts, defaults.CONNECT_TIMEOUT_S, read_timeout_s)
            if more.worst_case_s > budget_s:
                break
            fitting = more
        return fitting

    def config(self, **options: Any) -> Config:
        return Config(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            **options,
        )


@dataclass(frozen=True)
class ClientBudgets:
    """The budget of each client, derived from the stack's timing (`for_timing`)."""

    dynamodb: CallBudget  # heartbeats and claims; token, registration and job-status reads and writes
    lambda_: CallBudget  # the asynchronous invokes that start and hand over loops
    sqs: CallBudget  # settlement (delete, change visibility, send to the DLQ), queue attributes, sends
    sqs_receive: CallBudget  # long polls; a failed receive is retried by the loop itself (its back-off)
    lambda_forwarding: CallBudget  # synchronous invokes of handler functions, which run as long as they run
    other: CallBudget  # CloudWatch, SNS, Scheduler, CloudFormation: never on a loop's path

    @classmethod
    def for_timing(cls, *, heartbeat_s: float, reserve_s: float) -> ClientBudgets:
        call_s = defaults.HEARTBEAT_CALL_SHARE * heartbeat_s
        dynamodb = CallBudget.within(call_s, read_timeout_s=defaults.DYNAMODB_READ_TIMEOUT_S)
        handover_s = defaults.HANDOVER_SHARE * reserve_s - dynamodb.worst_case_s
        return cls(
            dynamodb=dynamodb,
            lambda_=CallBudget.within(handover_s, read_timeout_s=defaults.LAMBDA_READ_TIMEOUT_S),
            sqs=CallBudget.within(call_s, read_timeout_s=defaults.SQS_READ_TIMEOUT_S),
            sqs_receive=CallBudget(1, defaults.CONNECT_TIMEOUT_S, defaults.MAX_WAIT_S + defaults.RECEIVE_READ_MARGIN_S),
            lambda_forwarding=CallBudget(
                defaults.OTHER_MAX_ATTEMPTS, defaults.CONNECT_TIMEOUT_S, FORWARD_READ_TIMEOUT_S
            ),
            other=CallBudget(defaults.OTHER_MAX_ATTEMPTS, defaults.CONNECT_TIMEOUT_S, defaults.OTHER_READ_TIMEOUT_S),
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> ClientBudgets:
        return cls.for_timing(heartbeat_s=settings.heartbeat_s, reserve_s=settings.reserve_s)

    def of(self, name: str) -> CallBudget:
        """The budget of the client `name` (a boto3 service name, LAMBDA_FORWARDING or SQS_RECEIVE)."""
        by_name = {
            "dynamodb": self.dynamodb,
            "lambda": self.lambda_,
            "sqs": self.sqs,
            SQS_RECEIVE: self.sqs_receive,
            LAMBDA_FORWARDING: self.lambda_forwarding,
        }
        return by_name.get(name, self.other)


DEFAULT_BUDGETS = ClientBudgets.for_timing(heartbeat_s=defaults.HEARTBEAT_S, reserve_s=defaults.RESERVE_S)


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
        budgets: ClientBudgets = DEFAULT_BUDGETS,
    ) -> None:
        self._factory = factory
        self._region = region
        self.budgets = budgets
        self._session: boto3.session.Session | None = None
        self._built: dict[str, Any] = dict(overrides or {})
        self._overridden = frozenset(self._built)
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        """The client `name` (a boto3 service name, LAMBDA_FORWARDING or SQS_RECEIVE), built once, on first use."""
        with self._lock:
            if name not in self._built:
                self._built[name] = self._make(name)
            return self._built[name]

    def _make(self, name: str) -> Any:
        service = {LAMBDA_FORWARDING: "lambda", SQS_RECEIVE: "sqs"}.get(name, name)
        if service != name and service in self._overridden:  # a test's stand-in client serves its variants too
            return self._built[service]
        return self._client(service, self.budgets.of(name).config())

    def _client(self, service: str, config: Config) -> Any:
        if self._factory is not None:
            return self._factory(service, config=config)
        if self._session is None:  # boto3 sessions are not thread-safe: built and used under the lock
            self._session = boto3.session.Session(region_name=self._region)
        return self._session.client(service, config=config)  # type: ignore[call-overload]

    @property
    def sqs(self) -> SQSClient:
        return self.get("sqs")  # type: ignore[no-any-return]

    @property
    def sqs_receive(self) -> SQSClient:
        return self.get(SQS_RECEIVE)  # type: ignore[no-any-return]

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
