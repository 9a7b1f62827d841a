"""The Queues table: one registration per queue, validated before it is written, updated optimistically."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from sqsloops import defaults, scaling
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConcurrentUpdateError, ConfigError, NotRegisteredError
from sqsloops.handlers import KNOWN_KINDS, LAMBDA, PYTHON, validate_handler
from sqsloops.log import logger
from sqsloops.queues import QueueRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HandlerMode = Literal["message", "batch"]

# name -> (minimum, maximum): the bounds every numeric setting is checked against.
_BOUNDS: dict[str, tuple[float, float]] = {
    "min_loops": (0, defaults.MAX_LOOPS_LIMIT),
    "max_loops": (0, defaults.MAX_LOOPS_LIMIT),
    "batch_size": (1, defaults.MAX_BATCH_SIZE),  # above RECEIVE_MAX_MESSAGES only with a window (_check_batch)
    "batch_window_s": (0, defaults.MAX_BATCH_WINDOW_S),
    "wait_s": (0, defaults.MAX_WAIT_S),
    "visibility_timeout_s": (0, defaults.MAX_VISIBILITY_TIMEOUT_S),
    "backlog_per_loop": (1, 1_000_000),
    "backoff_base_s": (0, defaults.MAX_VISIBILITY_TIMEOUT_S),
    "backoff_max_s": (0, defaults.MAX_VISIBILITY_TIMEOUT_S),
    "rate_per_s": (0.001, 100_000),
}
_INTEGERS = frozenset(
    {"min_loops", "max_loops", "batch_size", "batch_window_s", "wait_s", "visibility_timeout_s", "backlog_per_loop"}
)
# The attributes that mark a registration broken (see Broken); only Registry.mark_broken writes them.
BROKEN_FIELDS = frozenset({"broken_reason", "broken_at"})


class UnreadableRegistrationError(ConfigError):
    """A registration's item is in the table but cannot be parsed (a bad attribute written by hand or by a handler)."""

    def __init__(self, queue_url: str, error: str) -> None:
        super().__init__(f"registration of {queue_url} cannot be read: {error}")
        self.queue_url = queue_url


@dataclass(frozen=True)
class Broken:
    """Why a registration can never work as it is (its queue was deleted, its item cannot be read), and since when.

    A loop that finds this out stops for good, retires the queue's tokens and marks the registration broken; no
    loop, sweep or scale-up starts loops for it again. `register` again (same queue, any spelling) replaces a broken
    registration and clears the mark; `deregister` removes it.
    """

    reason: str
    at: float  # epoch seconds


@dataclass(frozen=True, kw_only=True)
class QueueConfig:
    """A registration: which handler consumes the queue, and how many loops may do it."""

    queue_url: str
    handler: str
    min_loops: int = defaults.MIN_LOOPS
    max_loops: int = defaults.MAX_LOOPS
    batch_size: int = defaults.BATCH_SIZE
    # Seconds a loop may go on gathering a batch after a partial receive (Lambda's MaximumBatchingWindowInSeconds):
    # fewer, fuller receives and dispatches below saturation. 0: each receive is dispatched as it comes.
    batch_window_s: int = defaults.BATCH_WINDOW_S
    wait_s: int = defaults.WAIT_S
    visibility_timeout_s: int = defaults.VISIBILITY_TIMEOUT_S
    backlog_per_loop: int = defaults.BACKLOG_PER_LOOP
    backoff_base_s: float = defaults.BACKOFF_BASE_S
    backoff_max_s: float = defaults.BACKOFF_MAX_S
    rate_per_s: float | None = None
    handler_mode: HandlerMode = "message"
    enabled: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0
    broken_reason: str | None = None  # set (with broken_at) by Registry.mark_broken; see Broken
    broken_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # attributes written by later versions: kept, not lost

    @property
    def broken(self) -> Broken | None:
        """Why this registration cannot work, if a loop found it broken; None for a sound one."""
        if self.broken_reason is None:
            return None
        return Broken(reason=self.broken_reason, at=self.broken_at or 0.0)

    def validate(self, *, handler_kinds: Collection[str] = KNOWN_KINDS) -> QueueConfig:
        """Check every field; raise ConfigError naming the first bad one. Returns self for chaining.

        The handler's kind must be one of `handler_kinds` (sqsloops.handlers.KNOWN_KINDS unless told otherwise).
        """
        QueueRef.parse(self.queue_url)
        spec = validate_handler(self.handler, kinds=handler_kinds)
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if name in _INTEGERS and value != int(value):
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
        if self.min_loops > self.max_loops:
            raise ConfigError(f"min_loops ({self.min_loops}) must not exceed max_loops ({self.max_loops})")
        if self.backoff_base_s > self.backoff_max_s:
            raise ConfigError(
                f"backoff_base_s ({self.backoff_base_s:g}) must not exceed backoff_max_s ({self.backoff_max_s:g})"
            )
        if self.handler_mode not in ("message", "batch"):
            raise ConfigError(f"handler_mode must be 'message' or 'batch', got {self.handler_mode!r}")
        if self.handler_mode == "batch" and spec.kind != PYTHON:
            raise ConfigError("handler_mode 'batch' applies to python: handlers; lambda: handlers always get batches")
        self._check_batch(spec.kind)
        return self

    def _check_batch(self, kind: str) -> None:
        """Batches above one receive's 10 messages follow Lambda's SQS trigger: with a window of at least 1 s, on a
        standard queue, for handlers that take a batch at once (a `lambda:` function, which gets it in invokes
        within the payload limit, or a python: batch handler). A window keeps messages hidden while it gathers,
        so the visibility timeout plus the window must fit SQS's 12 h."""
        if self.visibility_timeout_s + self.batch_window_s > defaults.MAX_VISIBILITY_TIMEOUT_S:
            raise ConfigError(
                f"visibility_timeout_s + batch_window_s must not exceed {defaults.MAX_VISIBILITY_TIMEOUT_S} "
                f"(SQS's longest visibility timeout), got {self.visibility_timeout_s} + {self.batch_window_s}"
            )
        if self.batch_size <= defaults.RECEIVE_MAX_MESSAGES:
            return
        limit = defaults.RECEIVE_MAX_MESSAGES
        got = f"got {self.batch_size}"
        if QueueRef.parse(self.queue_url).name.endswith(".fifo"):
            raise ConfigError(f"batch_size must be between 1 and {limit} on a FIFO queue, {got}")
        if self.batch_window_s < 1:
            raise ConfigError(
                f"batch_size must be between 1 and {limit}, {got} (up to {defaults.MAX_BATCH_SIZE} with "
                "batch_window_s of at least 1)"
            )
        if kind != LAMBDA and not (kind == PYTHON and self.handler_mode == "batch"):
            raise ConfigError(
                f"batch_size above {limit} applies to lambda: handlers and python: handlers with handler_mode "
                f"'batch', {got}"
            )

    def desired_loops(self, visible: int) -> int:
        """How many loops a backlog of `visible` messages calls for (sqsloops.scaling.desired_loops decides)."""
        return scaling.desired_loops(self, visible)

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for key, value in {**self.extra, **asdict(self)}.items():
            if key == "extra" or value is None:
                continue
            item[key] = _to_attr(value)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> QueueConfig:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {key: _from_attr(attr) for key, attr in item.items()}
        kwargs = {key: value for key, value in values.items() if key in known}
        extra = {key: value for key, value in values.items() if key not in known}
        for name, value in kwargs.items():
            kwargs[name] = _typed(name, value)
        return cls(**kwargs, extra=extra)


_FLOATS = frozenset({"backoff_base_s", "backoff_max_s", "rate_per_s", "created_at", "updated_at", "broken_at"})
_BOOLS = frozenset({"enabled"})


def _typed(name: str, value: Any) -> Any:
    """A known field's stored value as its type; ValueError when it is not one (`max_loops: "ten"`)."""
    numeric = {**dict.fromkeys(_INTEGERS | {"version"}, int), **dict.fromkeys(_FLOATS, float)}.get(name)
    if numeric is not None:
        if not isinstance(value, bool) and isinstance(value, int | float | str):
            try:
                return numeric(value)
            except (ValueError, OverflowError):
                pass
        kind = "a whole number" if numeric is int else "a number"
        raise ValueError(f"{name} must be {kind}, got {repr(value)[:100]}")
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {value!r}")
    return value


def _to_attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    raise TypeError(f"cannot store {type(value).__name__} in a registration")


def _from_attr(attr: dict[str, Any]) -> Any:
    if "BOOL" in attr:
        return bool(attr["BOOL"])
    if "N" in attr:
        number = float(attr["N"])
        return int(number) if number.is_integer() and "." not in attr["N"] and "e" not in attr["N"] else number
    if "S" in attr:
        return attr["S"]
    raise TypeError(f"unexpected attribute in a registration: {attr!r}")


class Registry:
    """Reads and writes registrations in the Queues table; `handler_kinds` are the kinds a registration may name."""

    def __init__(
        self,
        *,
        table_name: str,
        dynamodb: DynamoDBClient,
        clock: Clock = SYSTEM_CLOCK,
        handler_kinds: Collection[str] = KNOWN_KINDS,
    ) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._clock = clock
        self._handler_kinds = frozenset(handler_kinds)

    def get(self, queue_url: str, *, consistent: bool = True) -> QueueConfig:
        item = self._ddb.get_item(
            TableName=self._table, Key={"queue_url": {"S": queue_url}}, ConsistentRead=consistent
        ).get("Item")
        if item is None:
            raise NotRegisteredError(queue_url)
        return _parse(item)

    def find(self, queue_url: str) -> QueueConfig | None:
        try:
            return self.get(queue_url)
        except NotRegisteredError:
            return None

    def create(self, config: QueueConfig, *, replace_broken: bool = False) -> QueueConfig:
        """Write a new registration; ConfigError if the queue is registered already.

        replace_broken: a registration marked broken under the same key may be overwritten (its mark goes with it).
        """
        now = self._clock.now()
        stored = replace(
            config.validate(handler_kinds=self._handler_kinds),
            created_at=now,
            updated_at=now,
            version=1,
            broken_reason=None,
            broken_at=None,
        )
        condition = "attribute_not_exists(queue_url)"
        if replace_broken:
            condition += " OR attribute_exists(broken_at)"
        try:
            self._ddb.put_item(TableName=self._table, Item=stored.to_item(), ConditionExpression=condition)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConfigError(f"queue is already registered: {config.queue_url}") from exc
            raise
        return stored

    def update(self, config: QueueConfig) -> QueueConfig:
        """Replace a registration if nobody changed it since `config` was read (its version)."""
        stored = replace(
            config.validate(handler_kinds=self._handler_kinds), updated_at=self._clock.now(), version=config.version + 1
        )
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=stored.to_item(),
                ConditionExpression="version = :read",
                ExpressionAttributeValues={":read": {"N": str(config.version)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConcurrentUpdateError(
                    f"registration of {config.queue_url} changed since version {config.version}; re-read it"
                ) from exc
            raise
        return stored

    def mark_broken(self, queue_url: str, reason: str) -> bool:
        """Mark a registration broken (see Broken), whether or not its item can be parsed; False if there is none.

        Bumps the version, so an operator's optimistic update that read the registration before retries on top.
        The first mark is kept: a second loop finding the same fault does not move broken_at.
        """
        now = self._clock.now()
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"queue_url": {"S": queue_url}},
                UpdateExpression=(
                    "SET broken_reason = if_not_exists(broken_reason, :reason), broken_at = if_not_exists(broken_at, "
                    ":now), updated_at = :now, version = if_not_exists(version, :zero) + :one"
                ),
                ConditionExpression="attribute_exists(queue_url)",
                ExpressionAttributeValues={
                    ":reason": {"S": reason},
                    ":now": {"N": repr(now)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def broken(self, queue_url: str) -> Broken | None:
        """Whether a registration is marked broken, read from its two attributes alone: it answers for an item that
        cannot be parsed too. None for a sound registration or none at all."""
        item = self._ddb.get_item(
            TableName=self._table,
            Key={"queue_url": {"S": queue_url}},
            ConsistentRead=True,
            ProjectionExpression="broken_reason, broken_at",
        ).get("Item")
        if not item or "S" not in item.get("broken_reason", {}):
            return None
        try:
            at = float(item.get("broken_at", {}).get("N", "0"))
        except ValueError:
            at = 0.0
        return Broken(reason=item["broken_reason"]["S"], at=at)

    def delete(self, queue_url: str) -> bool:
        """Remove a registration; False if there was none."""
        old = self._ddb.delete_item(TableName=self._table, Key={"queue_url": {"S": queue_url}}, ReturnValues="ALL_OLD")
        return "Attributes" in old

    def all(self, *, unreadable: list[UnreadableRegistrationError] | None = None) -> Iterator[QueueConfig]:
        """Every registration, each item parsed in its own guard: one that cannot be read is logged with its key
        (and added to `unreadable`, when given) and skipped, so it never stops a sweep over the others."""
        paginator = self._ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=self._table, ConsistentRead=True):
            for item in page.get("Items", []):
                try:
                    yield _parse(item)
                except UnreadableRegistrationError as exc:
                    logger.error(
                        "unreadable registration skipped", extra={"queue_url": exc.queue_url, "error": str(exc)}
                    )
                    if unreadable is not None:
                        unreadable.append(exc)


def _parse(item: dict[str, Any]) -> QueueConfig:
    """A registration item parsed, or UnreadableRegistrationError naming its key."""
    try:
        return QueueConfig.from_item(item)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        key = item.get("queue_url", {})
        queue_url = str(key.get("S", key)) if isinstance(key, dict) else repr(key)
        raise UnreadableRegistrationError(queue_url[:500], f"{type(exc).__name__}: {exc}") from exc


class CachedRegistry:
    """A registry read through a short TTL cache: a loop re-reads its registration at most every ttl_s."""

    def __init__(self, registry: Registry, *, ttl_s: float = defaults.CONFIG_TTL_S, clock: Clock = SYSTEM_CLOCK):
        self._registry = registry
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, QueueConfig]] = {}

    def get(self, queue_url: str) -> QueueConfig:
        hit = self._cache.get(queue_url)
        now = self._clock.monotonic()
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        config = self._registry.get(queue_url, consistent=False)
        self._cache[queue_url] = (now, config)
        return config

    def invalidate(self, queue_url: str) -> None:
        self._cache.pop(queue_url, None)

    def mark_broken(self, queue_url: str, reason: str) -> bool:
        """Registry.mark_broken, and the cached copy dropped."""
        self.invalidate(queue_url)
        return self._registry.mark_broken(queue_url, reason)
