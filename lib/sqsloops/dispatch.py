"""Handing a received batch to its handler, and reading back which messages failed.

Records have exactly the shape of Lambda's own SQS event, so a function that already consumes SQS works unchanged,
whether it is invoked (`lambda:`) or called in-process (`python:`). The reply follows Lambda's partial batch response
rules: `{"batchItemFailures": [{"itemIdentifier": id}]}` fails those messages; anything Lambda would call an invalid
response fails the whole batch, so a message is never acknowledged by mistake.

Which code runs a handler string is pluggable: `Dispatchers` gets a mapping kind -> HandlerKind from the composition
root (`core_kinds()` for `lambda:` and `python:`), so a kind defined elsewhere plugs in without this module knowing it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sqsloops.errors import ConfigError, HandlerError, describe
from sqsloops.handlers import LAMBDA, PYTHON, check_lambda_target, check_python_target, parse_handler, resolve_python

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from sqsloops.registry import QueueConfig

Record = dict[str, Any]

# Lambda's synchronous invocation payload limit; larger batches are forwarded in several invokes.
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024
_EVENT_OVERHEAD_BYTES = len('{"Records": []}')


@dataclass(frozen=True)
class Failure:
    """A message that failed, why, and how it is to be settled (`sqsloops.settle`).

    By default it is hidden for the queue's backoff, and SQS moves it to the DLQ after maxReceiveCount receives.
    `retry_in_s` hides it for that long instead (whole seconds, at most SQS's 12 h). `dead` moves it to the queue's
    DLQ now; one that cannot be moved (the queue has no DLQ, the copy fails) is retried as any failure is.
    """

    message_id: str
    reason: str
    retry_in_s: float | None = None
    dead: bool = False

    def __post_init__(self) -> None:
        if self.retry_in_s is not None and not 0 <= self.retry_in_s < math.inf:
            raise ValueError(f"retry_in_s must be a finite number of seconds >= 0, got {self.retry_in_s!r}")


@dataclass(frozen=True)
class Outcome:
    """What became of a batch: ids that succeeded, and each failed id with why.

    `hand_over`: the handler handed work back because it needs more time than this invocation has left (a job
    whose timeout does not fit, sqsloops.budget): the loop hands over after settling instead of polling on.
    """

    succeeded: tuple[str, ...] = ()
    failed: tuple[Failure, ...] = ()
    hand_over: bool = False

    @classmethod
    def all_failed(cls, records: Iterable[Record], reason: str) -> Outcome:
        return cls(failed=tuple(Failure(r["messageId"], reason) for r in records))

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.succeeded + other.succeeded, self.failed + other.failed, self.hand_over or other.hand_over)


class Dispatcher(Protocol):
    def dispatch(self, records: list[Record]) -> Outcome:
        """Run the handler on a batch; never raises: every failure is in the Outcome."""
        ...


def to_lambda_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> Record:
    """One ReceiveMessage entry in the form Lambda's SQS event source mapping delivers it."""
    record: Record = {
        "messageId": message.get("MessageId", ""),
        "receiptHandle": message.get("ReceiptHandle", ""),
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region)
    return record


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributeValue in Lambda's lower-camel form (binary values base64, as in the JSON event)."""
    result: dict[str, Any] = {}
    if "StringValue" in value:
        result["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        result["binaryValue"] = _b64(value["BinaryValue"])
    result["stringListValues"] = list(value.get("StringListValues", []))
    result["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    result["dataType"] = value.get("DataType", "")
    return result


def outcome_from_reply(records: Sequence[Record], reply: Any) -> Outcome:
    """Apply Lambda's partial batch response rules to a handler's reply.

    Success for all: no reply, an object without batchItemFailures, or an empty/null list.
    Failure for all: batchItemFailures that is not a list, or an entry whose itemIdentifier is missing, empty
    or not in the batch. A reply that is not an object says nothing about failures: success.
    """
    ids = [r["messageId"] for r in records]
    if not isinstance(reply, dict) or not reply.get("batchItemFailures"):
        return Outcome(succeeded=tuple(ids))
    entries = reply["batchItemFailures"]
    if not isinstance(entries, list):
        return Outcome.all_failed(records, f"invalid batchItemFailures (not a list): {entries!r:.200}")
    failed: dict[str, Failure] = {}
    for entry in entries:
        item = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(item, str) or not item or item not in ids:
            return Outcome.all_failed(records, f"invalid batchItemFailures entry: {entry!r:.200}")
        failed[item] = Failure(item, "reported in batchItemFailures")
    return Outcome(succeeded=tuple(i for i in ids if i not in failed), failed=tuple(failed.values()))


class LambdaDispatcher:
    """Forwards a batch with a synchronous invoke, as Lambda's SQS event source mapping would."""

    def __init__(self, *, lambda_client: LambdaClient, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def dispatch(self, records: list[Record]) -> Outcome:
        outcome = Outcome()
        for chunk in _chunks_within_payload_limit(records):
            outcome += self._invoke(chunk)
        return outcome

    def _invoke(self, records: list[Record]) -> Outcome:
        try:
            response = self._lambda.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps({"Records": records}).encode(),
            )
            raw = response["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            return Outcome.all_failed(records, f"invoke of {self._function} failed: {describe(exc)}")
        if response.get("FunctionError"):
            detail = raw.decode(errors="replace")[:500]
            return Outcome.all_failed(records, f"{self._function} raised ({response['FunctionError']}): {detail}")
        try:
            reply = json.loads(raw) if raw.strip() else None
        except ValueError:
            return Outcome.all_failed(records, f"{self._function} replied with invalid JSON: {raw[:200]!r}")
        return outcome_from_reply(records, reply)


def _chunks_within_payload_limit(records: list[Record]) -> Iterable[list[Record]]:
    chunk: list[Record] = []
    size = _EVENT_OVERHEAD_BYTES
    for record in records:
        record_size = len(json.dumps(record).encode()) + 2  # the separator
        if chunk and size + record_size > MAX_INVOKE_PAYLOAD_BYTES:
            yield chunk
            chunk, size = [], _EVENT_OVERHEAD_BYTES
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


class PythonMessageDispatcher:
    """Calls `function(record) -> None` for each message; an exception fails that message only."""

    def __init__(self, function: Callable[[Record], Any]) -> None:
        self._function = function

    def dispatch(self, records: list[Record]) -> Outcome:
        succeeded: list[str] = []
        failed: list[Failure] = []
        for record in records:
            try:
                self._function(record)
            except Exception as exc:  # a handler may fail in any way: that message fails, the loop goes on
                failed.append(Failure(record["messageId"], describe(exc)))
            else:
                succeeded.append(record["messageId"])
        return Outcome(tuple(succeeded), tuple(failed))


class PythonBatchDispatcher:
    """Calls `function(records) -> dict | None` once per batch; the reply may carry batchItemFailures."""

    def __init__(self, function: Callable[[list[Record]], Any]) -> None:
        self._function = function

    def dispatch(self, records: list[Record]) -> Outcome:
        try:
            reply = self._function(records)
        except Exception as exc:  # the whole batch failed
            return Outcome.all_failed(records, describe(exc))
        return outcome_from_reply(records, reply)


class UnresolvedDispatcher:
    """Stands in for a handler that cannot be loaded: every message fails with why, and so reaches the DLQ."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def dispatch(self, records: list[Record]) -> Outcome:
        return Outcome.all_failed(records, self.reason)


class HandlerKind(Protocol):
    """Builds the dispatcher of one kind of handler (`lambda`, `python`, ...) from the target after `kind:`."""

    def validate(self, target: str) -> None:
        """Raise ConfigError if this kind cannot take `target`, from its syntax alone: nothing is imported or called."""
        ...

    def build(self, target: str, config: QueueConfig) -> Dispatcher:
        """The dispatcher for `target` on `config`'s queue.

        ConfigError or HandlerError when the target cannot be used (its messages then fail with why, to the DLQ);
        any other exception is taken as passing: that batch fails, and the next one builds again.
        """
        ...


class LambdaKind:
    """`lambda:NAME_OR_ARN`: each batch is forwarded to the function with a synchronous invoke."""

    def __init__(self, lambda_client: LambdaClient) -> None:
        self._lambda = lambda_client

    def validate(self, target: str) -> None:
        check_lambda_target(target)

    def build(self, target: str, config: QueueConfig) -> Dispatcher:
        return LambdaDispatcher(lambda_client=self._lambda, function_name=target)


class PythonKind:
    """`python:package.module:function`: called in the loop's process, per message or per batch (handler_mode)."""

    def validate(self, target: str) -> None:
        check_python_target(target)

    def build(self, target: str, config: QueueConfig) -> Dispatcher:
        function = resolve_python(target)
        if config.handler_mode == "batch":
            return PythonBatchDispatcher(function)
        return PythonMessageDispatcher(function)


def core_kinds(lambda_client: LambdaClient) -> dict[str, HandlerKind]:
    """The kinds the core runs itself; a composition root adds its own beside them (`{**core_kinds(c), **more}`)."""
    return {LAMBDA: LambdaKind(lambda_client), PYTHON: PythonKind()}


class Dispatchers:
    """Builds the dispatcher of a registration once per execution environment, and reuses it.

    `kinds` maps a handler kind (the part before the first colon) to what builds its dispatchers. A handler this
    loop cannot use (an unknown kind, a bad target, an import error) gets an UnresolvedDispatcher: its messages fail
    with the reason and reach the DLQ; the loop goes on.
    """

    def __init__(self, *, kinds: Mapping[str, HandlerKind]) -> None:
        self._kinds = dict(kinds)
        self._cache: dict[tuple[str, str], Dispatcher] = {}

    def for_config(self, config: QueueConfig) -> Dispatcher:
        key = (config.handler, config.handler_mode)
        if key not in self._cache:
            self._cache[key] = self._build(config)
        return self._cache[key]

    def _build(self, config: QueueConfig) -> Dispatcher:
        try:
            spec = parse_handler(config.handler)
            kind = self._kinds.get(spec.kind)
            if kind is None:
                known = ", ".join(f"'{name}:'" for name in sorted(self._kinds)) or "none"
                raise HandlerError(f"this loop has no handler kind {spec.kind!r} (it runs: {known})")
            kind.validate(spec.target)
            return kind.build(spec.target, config)
        except (ConfigError, HandlerError) as exc:
            return UnresolvedDispatcher(f"handler {config.handler!r} unusable: {exc}")
