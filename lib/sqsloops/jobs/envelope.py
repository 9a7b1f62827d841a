"""The job message body, and the names and ids it carries.

    {"v": 1, "id", "job", "args", "kwargs", "enqueued_at", "run_at"?, "attempt", "key"?, "scheduled"?}

`attempt` counts attempts already spent (0 when enqueued): the runner, not SQS's receive count, decides when a job
is dead, because rate limits, throttles and lost invocations receive a message without spending an attempt.
`scheduled: true` marks the copy a one-time schedule delivers (due on arrival, whatever the runner's clock says).
Times are ISO 8601 in UTC with a "Z", readable by any language. Parsing is strict (unknown fields included): a body
that is off goes to the DLQ with its reason instead of half-running; an additive change means v2.

Job ids become part of EventBridge Scheduler schedule names (delayed jobs, `[0-9A-Za-z_.-]{1,64}`), so a plain id is
at most MAX_JOB_ID_LEN characters of that set and fits beside a prefix of up to SCHEDULE_PREFIX_MAX_LEN. Cron
ticks have ids of their own shape, `NAME@2026-03-29T07:00:00Z`, whose `@` and `:` a schedule name cannot hold:
`schedule_name` hashes those.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqsloops.errors import ConfigError
from sqsloops.jobs.durations import DurationLike, parse_duration_s
from sqsloops.jobs.errors import EnqueueTimeError, JobArgsError, JobTooLargeError, MalformedEnvelopeError

ENVELOPE_VERSION = 1
MAX_MESSAGE_BYTES = 1_048_576  # SQS message size limit (body and attributes), 1 MiB since 2025
MAX_SNS_MESSAGE_BYTES = 262_144  # SNS publish limit: what the entry topic can carry
MAX_JSON_DEPTH = 64  # nesting beyond this is refused rather than risking a RecursionError

# Job names name queues (SQS: letters, digits, '-', '_'), schedules and tick ids ("NAME@..."), so no '.' or '@'.
MAX_JOB_NAME_LEN = 40
JOB_NAME_PATTERN = rf"[A-Za-z_][A-Za-z0-9_-]{{0,{MAX_JOB_NAME_LEN - 1}}}"
JOB_NAME_RE = re.compile(JOB_NAME_PATTERN)

SCHEDULE_NAME_MAX_LEN = 64  # EventBridge Scheduler: [0-9a-zA-Z-_.]{1,64}
SCHEDULE_PREFIX_MAX_LEN = 16
MAX_JOB_ID_LEN = SCHEDULE_NAME_MAX_LEN - SCHEDULE_PREFIX_MAX_LEN
JOB_ID_RE = re.compile(rf"[0-9A-Za-z_.-]{{1,{MAX_JOB_ID_LEN}}}")
SCHEDULE_PREFIX_RE = re.compile(rf"[0-9A-Za-z_.-]{{1,{SCHEDULE_PREFIX_MAX_LEN}}}")
SCHEDULE_NAME_HASH_CHARS = 40  # 160 bits of sha256: prefix + "h-" + hash stays within 64
TICK_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as Scheduler's <aws.scheduler.scheduled-time> writes it
TICK_ID_RE = re.compile(rf"(?P<name>{JOB_NAME_PATTERN})@(?P<at>\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")

MAX_KEY_BYTES = 512  # a unique key is part of a DynamoDB key item (limit 1024 bytes with the job name beside it)
RUN_AT_PAST_TOLERANCE_S = 1.0  # run_at=now() reaches us a little late: within this it means "now", not an error

_FIELDS_REQUIRED = ("v", "id", "job", "args", "kwargs", "enqueued_at", "attempt")
_FIELDS_OPTIONAL = ("run_at", "key", "scheduled")
_NOT_JSON_HINTS = {
    "datetime": "pass datetime.isoformat()",
    "date": "pass date.isoformat()",
    "Decimal": "pass str() or float()",
    "UUID": "pass str()",
    "bytes": "pass base64 text",
    "set": "pass a sorted list",
    "frozenset": "pass a sorted list",
}


def check_job_name(name: object) -> str:
    """`name` if it can name a job's queue, schedule and tick ids, else ConfigError."""
    if not isinstance(name, str) or not JOB_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid job name: 1-{MAX_JOB_NAME_LEN} letters, digits, '_' or '-', starting with a"
            " letter or '_' (it names the job's queue, schedules and tick ids)"
        )
    return name


def split_tick_id(job_id: object) -> tuple[str, datetime] | None:
    """(job name, aware UTC scheduled time) of a cron tick id, or None when `job_id` is not one."""
    match = TICK_ID_RE.fullmatch(job_id) if isinstance(job_id, str) else None
    if match is None:
        return None
    try:
        scheduled = datetime.strptime(match.group("at"), TICK_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # the shape of a time, not a time (month 13)
        return None
    return match.group("name"), scheduled


def check_job_id(job_id: object) -> str:
    """`job_id` if it is a plain id (1-MAX_JOB_ID_LEN of [0-9A-Za-z_.-]) or a cron tick id, else ConfigError."""
    if isinstance(job_id, str) and (JOB_ID_RE.fullmatch(job_id) or split_tick_id(job_id) is not None):
        return job_id
    raise ConfigError(
        f"{job_id!r} is not a valid job id: 1-{MAX_JOB_ID_LEN} letters, digits, '_', '.' or '-'"
        " (it becomes part of a Scheduler schedule name)"
    )


def new_job_id() -> str:
    """A fresh id: uuid4 hex. Ids are DynamoDB partition keys, where randomness spreads load; order comes from
    enqueued_at, so an id needs no clock (and cannot go backwards when clocks do)."""
    return uuid.uuid4().hex


def schedule_name(prefix: str, job_id: str) -> str:
    """The Scheduler schedule name of a delayed job: prefix + id as is when the id is plain, else a stable hash, so
    `cancel()` can derive it again from the id alone."""
    if not SCHEDULE_PREFIX_RE.fullmatch(prefix):
        raise ConfigError(f"schedule name prefix {prefix!r}: 1-{SCHEDULE_PREFIX_MAX_LEN} of [0-9A-Za-z_.-]")
    if JOB_ID_RE.fullmatch(job_id):
        return prefix + job_id
    digest = hashlib.sha256(check_job_id(job_id).encode()).hexdigest()[:SCHEDULE_NAME_HASH_CHARS]
    return f"{prefix}h-{digest}"


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a "Z" (microseconds only when there are some, so parsing gives the same instant)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give it a time zone")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """The aware UTC datetime an ISO 8601 string with a zone names (ValueError for anything else)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def json_safe(value: Any, *, path: str = "args", depth: int = 0) -> Any:
    """`value` as JSON will carry it (tuples become lists), or ValueError naming where it is not JSON: refused rather
    than coerced, because json.dumps silently turns {1: x} into {"1": x} and datetimes into errors at send time."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value!r} is not a JSON number")
        return value
    if isinstance(value, list | tuple):
        return [json_safe(item, path=f"{path}[{index}]", depth=depth + 1) for index, item in enumerate(value)]
    if isinstance(value, dict):
        safe: dict[str, Any] = {}
        for item_key, item in value.items():
            if not isinstance(item_key, str):
                raise ValueError(f"{path}: key {item_key!r} is not a string (JSON object keys are strings)")
            safe[item_key] = json_safe(item, path=f"{path}[{item_key!r}]", depth=depth + 1)
        return safe
    kind = type(value).__name__
    hint = _NOT_JSON_HINTS.get(kind)
    raise ValueError(f"{path}: {kind} is not JSON" + (f" ({hint})" if hint else ""))


def resolve_run_at(*, delay: DurationLike | None, run_at: datetime | None, now: datetime) -> datetime | None:
    """When an enqueued job is due (UTC), or None for now: from a delay or a run_at, never both, never in the past."""
    if delay is not None and run_at is not None:
        raise EnqueueTimeError("give delay or run_at, not both")
    if delay is not None:
        try:
            delay_s = parse_duration_s(delay, what="delay", allow_zero=True)
        except ConfigError as exc:
            raise EnqueueTimeError(str(exc)) from exc
        return now.astimezone(UTC) + timedelta(seconds=delay_s) if delay_s > 0 else None
    if run_at is None:
        return None
    if not isinstance(run_at, datetime) or run_at.tzinfo is None:
        raise EnqueueTimeError(f"run_at: {run_at!r} must be a datetime with a time zone")
    if run_at < now - timedelta(seconds=RUN_AT_PAST_TOLERANCE_S):
        raise EnqueueTimeError(f"run_at: {format_utc(run_at)} is in the past (now is {format_utc(now)})")
    return run_at.astimezone(UTC) if run_at > now else None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True)
class Envelope:
    """One job message. Build with `create` (validates arguments and size), read with `parse` (strict)."""

    VERSION: ClassVar[int] = ENVELOPE_VERSION

    id: str
    job: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    enqueued_at: datetime
    attempt: int = 0
    run_at: datetime | None = None
    key: str | None = None
    # Delivered by its one-time schedule: the schedule kept the time, so the job is due on arrival. (The embedded
    # AWS compresses at() schedules, and a runner that compared run_at with its own clock would hand back a job the
    # scheduler had rightly delivered; on AWS, at() fires at or after run_at, so nothing changes there.)
    scheduled: bool = False

    def __post_init__(self) -> None:
        check_job_id(self.id)
        check_job_name(self.job)
        if not isinstance(self.args, tuple):
            raise ValueError(f"args must be a tuple, got {type(self.args).__name__}")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(name, str) for name in self.kwargs):
            raise ValueError("kwargs must be a mapping with string keys")
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) or self.attempt < 0:
            raise ValueError(f"attempt must be a whole number >= 0, got {self.attempt!r}")
        for name in ("enqueued_at", "run_at"):
            moment = getattr(self, name)
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise ValueError(f"{name} must be a datetime with a time zone, got {moment!r}")
        if self.key is not None:
            _check_key(self.key)
        if not isinstance(self.scheduled, bool):
            raise ValueError(f"scheduled must be true or false, got {self.scheduled!r}")

    @classmethod
    def create(
        cls,
        job: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        now: datetime,
        id: str | None = None,
        key: str | None = None,
        run_at: datetime | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> Envelope:
        """A new envelope (attempt 0) whose arguments are JSON and whose body fits `max_bytes`, else JobArgsError."""
        try:
            check_job_name(job)
            if isinstance(args, str | bytes) or not isinstance(args, Sequence):
                raise ValueError(f"args must be a list of positional arguments, got {type(args).__name__}")
            if not isinstance(kwargs, Mapping):
                raise ValueError(f"kwargs must be a mapping of keyword arguments, got {type(kwargs).__name__}")
            safe_args = json_safe(list(args), path="args")
            safe_kwargs = json_safe(dict(kwargs), path="kwargs")
            envelope = cls(
                id=new_job_id() if id is None else check_job_id(id),
                job=job,
                args=tuple(safe_args),
                kwargs=safe_kwargs,
                enqueued_at=now.astimezone(UTC),
                run_at=None if run_at is None else run_at.astimezone(UTC),
                key=key,
            )
        except (ValueError, ConfigError) as exc:
            raise JobArgsError(job, str(exc)) from exc
        envelope.check_size(max_bytes)
        return envelope

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": self.VERSION,
            "id": self.id,
            "job": self.job,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "enqueued_at": format_utc(self.enqueued_at),
        }
        if self.run_at is not None:
            body["run_at"] = format_utc(self.run_at)
        body["attempt"] = self.attempt
        if self.key is not None:
            body["key"] = self.key
        if self.scheduled:
            body["scheduled"] = True
        return body

    def to_json(self) -> str:
        """The message body: compact JSON, UTF-8 as is (SQS counts bytes, and escapes would triple them)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def size_bytes(self) -> int:
        return len(self.to_json().encode())

    def check_size(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        """JobTooLargeError when the body is over `max_bytes` (SQS's limit by default; the entry topic's is smaller)."""
        size = self.size_bytes()
        if size > max_bytes:
            raise JobTooLargeError(
                self.job,
                f"the message is {size} bytes, over the {max_bytes}-byte limit; pass a reference (an S3 key, a row"
                " id) instead of the data",
                size_bytes=size,
                limit_bytes=max_bytes,
            )

    def with_attempt(self, attempt: int) -> Envelope:
        """The same job, with `attempt` attempts spent (a copy sent again is no longer its schedule's delivery)."""
        return replace(self, attempt=attempt, scheduled=False)

    def for_redrive(self) -> Envelope:
        """The same job with its attempts reset: a redriven job gets its whole retry budget again."""
        return replace(self, attempt=0, scheduled=False)

    def for_schedule(self) -> Envelope:
        """The target input of the job's one-time schedule: marked as delivered by it (see `scheduled`)."""
        return replace(self, scheduled=True)

    @classmethod
    def parse(cls, body: str) -> Envelope:
        """The envelope in a message body, or MalformedEnvelopeError saying what is off."""
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except (TypeError, ValueError) as exc:
            raise MalformedEnvelopeError(f"not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise MalformedEnvelopeError(f"not a JSON object but {type(data).__name__}")
        missing = [name for name in _FIELDS_REQUIRED if name not in data]
        if missing:
            raise MalformedEnvelopeError(f"missing field(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(data) - set(_FIELDS_REQUIRED) - set(_FIELDS_OPTIONAL))
        if unknown:
            raise MalformedEnvelopeError(f"unknown field(s) {', '.join(map(repr, unknown))}")
        version = data["v"]
        if isinstance(version, bool) or version != cls.VERSION:
            raise MalformedEnvelopeError(f"version {version!r} is not {cls.VERSION}, the one this runner reads")
        try:
            return cls(
                id=_typed(data, "id", str),
                job=_typed(data, "job", str),
                args=tuple(_typed(data, "args", list)),
                kwargs=_typed(data, "kwargs", dict),
                enqueued_at=_moment(data, "enqueued_at"),
                attempt=_typed(data, "attempt", int),
                run_at=None if data.get("run_at") is None else _moment(data, "run_at"),
                key=None if data.get("key") is None else _typed(data, "key", str),
                scheduled=_typed(data, "scheduled", bool) if "scheduled" in data else False,
            )
        except (ValueError, ConfigError) as exc:
            raise MalformedEnvelopeError(str(exc)) from exc


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty string, got {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"key is {len(key.encode())} bytes, over {MAX_KEY_BYTES}")


def _typed(data: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _moment(data: Mapping[str, Any], name: str) -> datetime:
    text = _typed(data, name, str)
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise ValueError(f"field {name!r}: {text!r} is not an ISO 8601 time with a zone") from exc
