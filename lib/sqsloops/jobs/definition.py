"""`@job(...)`: a plain function declared as a job, with every option validated at import.

A mistake in a declaration surfaces when the module is imported (by the runner, by `jobs apply`, by a test), as a
`JobDefinitionError` naming the job and the option, never as a message that fails at 3 a.m. The decorated object
is still the function (calling it runs it in place), carrying frozen `JobOptions`, and knows how to bind a call to
its signature, render its unique key and pick its message group.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, Generic, Literal, NoReturn, ParamSpec, Protocol, TypeVar, cast, get_args, overload

from sqsloops import defaults
from sqsloops.errors import ConfigError
from sqsloops.handlers import parse_http_target
from sqsloops.jobs.context import current_enqueuer
from sqsloops.jobs.cron import DEFAULT_TZ, CronExpression, MissedPolicy, check_missed_policy, check_timezone
from sqsloops.jobs.durations import S_PER_DAY, S_PER_MINUTE, DurationLike, RateLike, parse_duration_s, parse_rate_per_s
from sqsloops.jobs.envelope import MAX_KEY_BYTES, check_job_id, check_job_name, json_safe
from sqsloops.jobs.errors import EnqueueTimeError, JobArgsError, JobDefinitionError
from sqsloops.jobs.retry_policy import (
    DEFAULT_RETRIES,
    BackoffLike,
    RetryPolicy,
    check_non_retryable,
    check_retries,
    parse_backoff,
)

P = ParamSpec("P")
R = TypeVar("R")

Ordering = Literal["serial", "fair"]
UniqueScope = Literal["until_started", "until_done", "window"]
RunsIn = Literal["loop", "function"]
ORDERINGS: tuple[str, ...] = get_args(Ordering)
RUNS_IN: tuple[str, ...] = get_args(RunsIn)
UNIQUE_SCOPES = ("until_started", "until_done")  # or a window: a duration

DEFAULT_TIMEOUT_S = 60.0
MIN_TIMEOUT_S = 1.0  # SQS visibility has whole seconds
LAMBDA_MAX_TIMEOUT_S = 900.0  # Lambda's ceiling for one invocation: 15 min
PROCESS_FUNCTION_TIMEOUT_S = LAMBDA_MAX_TIMEOUT_S  # the process function's timeout at its ceiling (template max)
VISIBILITY_PER_TIMEOUT = 6  # AWS's advice for Lambda consumers: visibility >= 6x the timeout, so a retry never overlaps
MAX_TIMEOUT_BY_VISIBILITY_S = defaults.MAX_VISIBILITY_TIMEOUT_S / VISIBILITY_PER_TIMEOUT
# In the loop a job shares the invocation with the loop, which keeps its reserve to invoke itself again.
LOOP_MAX_TIMEOUT_S = min(PROCESS_FUNCTION_TIMEOUT_S - defaults.RESERVE_S, MAX_TIMEOUT_BY_VISIBILITY_S)
FUNCTION_MAX_TIMEOUT_S = min(LAMBDA_MAX_TIMEOUT_S, MAX_TIMEOUT_BY_VISIBILITY_S)
DEFAULT_RESULT_TTL_S = 7 * S_PER_DAY
# Tick records must outlive the window, or an expired record would look like a missed firing and run again: keep
# this at or under the Jobs table's tick TTL (jobs/store.py DEFAULT_TICK_TTL_S, 30 days).
MAX_CATCH_UP_WINDOW_S = 30 * S_PER_DAY
DEFAULT_CATCH_UP_WINDOW_S = S_PER_DAY  # catch up on a day of downtime at most, unless told otherwise
# The failure-rate alarm `jobs apply` puts per job (ops/job_alarms.py): in ALARM while more than this share of the
# job's attempts fail; None: no alarm.
DEFAULT_FAILURE_ALARM = 0.2

SQS_MAX_QUEUE_NAME_LEN = 80
FIFO_SUFFIX = ".fifo"
DLQ_SUFFIX = "-dlq"
MAX_QUEUE_NAME_LEN = SQS_MAX_QUEUE_NAME_LEN - len(FIFO_SUFFIX) - len(DLQ_SUFFIX)  # room for both suffixes
_QUEUE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
MAX_GROUP_ID_LEN = 128  # SQS MessageGroupId
DERIVED_KEY_HASH_CHARS = 32  # 128 bits of sha256 for keys derived from the arguments
RESERVED_PARAMETERS = ("delay", "run_at", "key", "id")  # enqueue()'s own keywords
_NAMED_KINDS = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


@dataclass(frozen=True)
class JobOptions:
    """A job's validated options (built by `@job`, which checks them against each other and the signature)."""

    name: str
    queue: str  # logical name; `queue_name` adds ".fifo" for serial jobs
    retry_policy: RetryPolicy
    timeout_s: float
    concurrency: int | None  # the queue's max loops; None: the registration default
    min_loops: int
    rate_per_s: float | None
    group_by: str | None
    ordering: Ordering | None  # None: a standard queue without message groups
    unique: UniqueScope | None
    unique_window_s: float | None  # when unique == "window"
    key: str | None  # template over the call's arguments
    cron: CronExpression | None
    tz: str
    missed: MissedPolicy
    catch_up_window_s: float
    track: bool
    result_ttl_s: float
    runs_in: RunsIn
    failure_alarm: float | None = DEFAULT_FAILURE_ALARM  # alarm above this failure rate of attempts; None: no alarm
    # Runs in a web app: the queue's registration is this `http:` target (URL, then its options in the fragment),
    # whose loops POST each job to the app (jobs/http.py); None: the function runs in the loop.
    http_target: str | None = None

    @property
    def retries(self) -> int:
        return self.retry_policy.retries

    @property
    def fifo(self) -> bool:
        """Serial ordering needs a FIFO queue (message groups run one message at a time)."""
        return self.ordering == "serial"

    @property
    def queue_name(self) -> str:
        return self.queue + FIFO_SUFFIX if self.fifo else self.queue

    @property
    def visibility_timeout_s(self) -> int:
        return math.ceil(self.timeout_s * VISIBILITY_PER_TIMEOUT)

    @property
    def schedule_expression(self) -> str | None:
        return None if self.cron is None else self.cron.schedule_expression


class JobFunction(Generic[P, R]):
    """A job: callable as the plain function, with `options`, and `bind` / `enqueue` for sending it."""

    # Copied from the function by functools.update_wrapper, so the job reads as the function it wraps.
    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, R]

    def __init__(self, fn: Callable[P, R], options: JobOptions) -> None:
        self.fn = fn
        self.options = options
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        return self.options.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<job {self.name} {self.fn.__module__}.{self.fn.__qualname__}{_shape(self.signature)}>"

    def _bound(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise JobArgsError(self.name, f"arguments do not fit {self.name}{_shape(self.signature)}: {exc}") from None

    def bind(self, *args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
        """The call's (args, kwargs) as the envelope carries them: checked against the signature (defaults are not
        filled in, so a default changed in code applies to jobs already queued) and JSON-checked."""
        bound = self._bound(args, kwargs)
        try:
            return json_safe(list(bound.args), path="args"), json_safe(dict(bound.kwargs), path="kwargs")
        except ValueError as exc:
            raise JobArgsError(self.name, str(exc)) from None

    def _arguments(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        bound = self._bound(args, kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def render_key(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The unique key of a call: the `key` template over its arguments (defaults filled in), or, for a unique
        job without a template, a hash of all its arguments; None for a job that is not unique."""
        if self.options.key is not None:
            try:
                rendered = render_key_template(self.options.key, self._arguments(args, kwargs))
            except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
                raise JobArgsError(self.name, f"key {self.options.key!r} cannot be rendered: {exc}") from None
        elif self.options.unique is not None:
            rendered = "args-" + _digest(self._arguments(args, kwargs), self.name)
        else:
            return None
        return _checked_key(self.name, rendered)

    def group_of(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The message group of a call: its `group_by` argument as text (hashed when too long for SQS)."""
        if self.options.group_by is None:
            return None
        value = self._arguments(args, kwargs)[self.options.group_by]
        text = value if isinstance(value, str) else _canonical_json(value, self.name)
        if not text or len(text) > MAX_GROUP_ID_LEN or not text.isascii() or not text.isprintable():
            return "h-" + hashlib.sha256(text.encode()).hexdigest()
        return text

    def enqueue(
        self,
        *args: Any,
        delay: DurationLike | None = None,
        run_at: datetime | None = None,
        key: str | None = None,
        id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send this job with these arguments through the configured enqueuer (`context.set_enqueuer`); nothing is
        sent when the arguments, the time, the key or the id are wrong. Returns what the enqueuer returns (a handle)."""
        call_args, call_kwargs = self.bind(*args, **kwargs)
        if delay is not None and run_at is not None:
            raise EnqueueTimeError("give delay or run_at, not both")
        if delay is not None:
            try:
                delay = parse_duration_s(delay, what="delay", allow_zero=True)
            except ConfigError as exc:
                raise EnqueueTimeError(str(exc)) from None
        if run_at is not None and (not isinstance(run_at, datetime) or run_at.tzinfo is None):
            raise EnqueueTimeError(f"run_at: {run_at!r} must be a datetime with a time zone")
        if id is not None:
            try:
                check_job_id(id)
            except ConfigError as exc:
                raise JobArgsError(self.name, str(exc)) from None
        resolved_key = self.render_key(args, kwargs) if key is None else _checked_key(self.name, key)
        return current_enqueuer().enqueue(
            self, call_args, call_kwargs, delay=delay, run_at=run_at, key=resolved_key, id=id
        )


def _shape(signature: inspect.Signature) -> inspect.Signature:
    """The signature without annotations: what a caller must pass, readable in an error message."""
    empty = inspect.Parameter.empty
    parameters = [parameter.replace(annotation=empty) for parameter in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=empty)


def render_key_template(template: str, arguments: Mapping[str, Any]) -> str:
    """`template` ("order-{order_id}") filled from a call's named arguments."""
    return template.format_map(dict(arguments))


def _canonical_json(value: Any, job: str) -> str:
    try:
        return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError as exc:
        raise JobArgsError(job, str(exc)) from None


def _digest(arguments: Mapping[str, Any], job: str) -> str:
    text = _canonical_json(dict(arguments), job)
    return hashlib.sha256(text.encode()).hexdigest()[:DERIVED_KEY_HASH_CHARS]


def _checked_key(job: str, key: object) -> str:
    if not isinstance(key, str) or not key:
        raise JobArgsError(job, f"key must be a non-empty string, got {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise JobArgsError(job, f"key is {len(key.encode())} bytes, over the {MAX_KEY_BYTES}-byte limit")
    return key


# --- declaration -----------------------------------------------------------------------------------------------


class _Refusal(Exception):
    """Internal: one option's problem, turned into a JobDefinitionError by `_option`."""


@contextmanager
def _option(job: str, option: str) -> Iterator[None]:
    """Turn the ConfigError of one option's check into a JobDefinitionError naming the job and the option."""
    try:
        yield
    except JobDefinitionError:
        raise
    except (ConfigError, _Refusal) as exc:
        raise JobDefinitionError(job, option, str(exc)) from None


def _refuse(problem: str) -> NoReturn:
    raise _Refusal(problem)


def _check_choice(value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        _refuse(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _named_parameters(signature: inspect.Signature) -> dict[str, inspect.Parameter]:
    return {name: parameter for name, parameter in signature.parameters.items() if parameter.kind in _NAMED_KINDS}


def _check_function(fn: object, signature: inspect.Signature) -> None:
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        _refuse("async functions are not supported: the runner calls jobs synchronously; declare a plain def")
    for name, parameter in signature.parameters.items():
        if name in RESERVED_PARAMETERS and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY:
            _refuse(f"parameter {name!r} would be taken by enqueue({name}=...); rename it or make it positional-only")


def _check_queue(queue: str) -> str:
    if not isinstance(queue, str) or not queue:
        _refuse(f"must be a queue name, got {queue!r}")
    if queue.endswith(FIFO_SUFFIX):
        _refuse(f"{queue!r}: leave out {FIFO_SUFFIX!r}; it is added for ordering='serial'")
    if len(queue) > MAX_QUEUE_NAME_LEN or not set(queue) <= _QUEUE_NAME_CHARS:
        _refuse(
            f"{queue!r} is not a queue name: 1-{MAX_QUEUE_NAME_LEN} letters, digits, '-' or '_' (SQS allows"
            f" {SQS_MAX_QUEUE_NAME_LEN} with the {FIFO_SUFFIX!r} and {DLQ_SUFFIX!r} suffixes)"
        )
    return queue


def _check_count(value: object, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _refuse(f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _check_failure_alarm(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        _refuse(
            f"must be a failure rate between 0 and 1 (0.2: a fifth of the attempts), or None for no alarm,"
            f" got {value!r}"
        )
    return float(value)


def _check_timeout(value: DurationLike, runs_in: str) -> float:
    timeout_s = parse_duration_s(value)
    if timeout_s < MIN_TIMEOUT_S:
        _refuse(f"{value!r} is under the {MIN_TIMEOUT_S:g} s minimum")
    if timeout_s > FUNCTION_MAX_TIMEOUT_S:
        _refuse(
            f"{value!r} ({timeout_s:g} s) is longer than a Lambda function can run ({FUNCTION_MAX_TIMEOUT_S:g} s);"
            f" work longer than {FUNCTION_MAX_TIMEOUT_S / S_PER_MINUTE:g} minutes is out of scope for sqsloops:"
            " split it into smaller jobs"
        )
    if runs_in == "loop" and timeout_s > LOOP_MAX_TIMEOUT_S:
        _refuse(
            f"{value!r} ({timeout_s:g} s) does not fit in a loop, which can give a job at most"
            f" {LOOP_MAX_TIMEOUT_S:g} s (the process function's {PROCESS_FUNCTION_TIMEOUT_S:g} s less its"
            f" {defaults.RESERVE_S:g} s reserve); give the job a function of its own with runs_in='function'"
            f" (up to {FUNCTION_MAX_TIMEOUT_S:g} s)"
        )
    return timeout_s


def _check_parameter(name: object, signature: inspect.Signature, what: str) -> str:
    named = _named_parameters(signature)
    if not isinstance(name, str) or name not in named:
        _refuse(f"{name!r} is not a parameter of the function ({what} needs one of: {', '.join(named) or 'none'})")
    return name


def _check_unique(value: object) -> tuple[UniqueScope | None, float | None]:
    if value is None:
        return None, None
    if value in UNIQUE_SCOPES:
        return cast(UniqueScope, value), None
    try:
        return "window", parse_duration_s(cast(DurationLike, value))
    except ConfigError:
        _refuse(f"must be 'until_started', 'until_done' or a window such as '10m', got {value!r}")


def _check_key_template(template: object, signature: inspect.Signature) -> str:
    if not isinstance(template, str) or not template:
        _refuse(f"must be a template string such as 'order-{{order_id}}', got {template!r}")
    named = _named_parameters(signature)
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        _refuse(f"{template!r} is not a valid template: {exc}")
    for _, field_name, format_spec, _ in pieces:
        if field_name is None:
            continue
        if not field_name or field_name.isdigit():
            _refuse(f"{template!r}: name the parameter in each placeholder ('{{order_id}}'), not by position")
        if not field_name.isidentifier():
            _refuse(f"{template!r}: placeholder {{{field_name}}} must be a plain parameter name")
        if field_name not in named:
            _refuse(
                f"{template!r}: placeholder {{{field_name}}} is not a parameter of the function"
                f" (parameters: {', '.join(named) or 'none'})"
            )
        if format_spec and "{" in format_spec:
            _refuse(f"{template!r}: nested placeholders are not supported")
    return template


def _check_no_required_arguments(signature: inspect.Signature) -> None:
    required = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in _NAMED_KINDS and parameter.default is inspect.Parameter.empty
    ]
    if required:
        verb = "has" if len(required) == 1 else "have"
        _refuse(f"a cron job is called with no arguments, but {', '.join(map(repr, required))} {verb} no default")


@dataclass(frozen=True)
class _Declared:
    """What `@job(...)` was given, before validation."""

    name: str | None = None
    queue: str | None = None
    retries: int = DEFAULT_RETRIES
    backoff: BackoffLike = None
    non_retryable: type[BaseException] | Iterable[type[BaseException]] = ()
    timeout: DurationLike = DEFAULT_TIMEOUT_S
    concurrency: int | None = None
    min_loops: int = defaults.MIN_LOOPS
    rate: RateLike | None = None
    group_by: str | None = None
    ordering: Ordering | None = None
    unique: UniqueScope | DurationLike | None = None
    key: str | None = None
    cron: str | None = None
    tz: str | None = None
    missed: MissedPolicy | None = None
    catch_up_window: DurationLike | None = None
    track: bool = True
    result_ttl: DurationLike | None = None
    runs_in: RunsIn = "loop"
    failure_alarm: float | None = DEFAULT_FAILURE_ALARM
    http: str | None = None
    receipt_timeout: DurationLike | None = None


@dataclass(frozen=True)
class _Limits:
    concurrency: int | None
    min_loops: int
    rate_per_s: float | None
    group_by: str | None
    ordering: Ordering | None


@dataclass(frozen=True)
class _Uniqueness:
    unique: UniqueScope | None
    window_s: float | None
    key: str | None


@dataclass(frozen=True)
class _Schedule:
    cron: CronExpression | None
    tz: str
    missed: MissedPolicy
    catch_up_window_s: float
    result_ttl_s: float


def _limits(job: str, given: _Declared, signature: inspect.Signature, runs_in: RunsIn) -> _Limits:
    with _option(job, "concurrency"):
        top = (
            None if given.concurrency is None else _check_count(given.concurrency, low=1, high=defaults.MAX_LOOPS_LIMIT)
        )
    with _option(job, "min_loops"):
        least = _check_count(given.min_loops, low=0, high=top or defaults.MAX_LOOPS_LIMIT)
        if least and runs_in == "function":
            _refuse("a job in a function of its own has no loops to keep warm; leave min_loops at 0")
    with _option(job, "rate"):
        rate_per_s = None if given.rate is None else parse_rate_per_s(given.rate)
    with _option(job, "group_by"):
        group = None if given.group_by is None else _check_parameter(given.group_by, signature, "group_by")
    with _option(job, "ordering"):
        order = None if given.ordering is None else cast(Ordering, _check_choice(given.ordering, ORDERINGS))
        if order == "fair" and group is None:
            _refuse("'fair' shares the queue between groups; name them with group_by")
    return _Limits(top, least, rate_per_s, group, "serial" if order is None and group is not None else order)


def _uniqueness(job: str, given: _Declared, signature: inspect.Signature) -> _Uniqueness:
    with _option(job, "unique"):
        scope, window_s = _check_unique(given.unique)
        if scope is not None and not given.track:
            _refuse("needs the jobs table, where its dedupe key is held; drop track=False or unique")
    with _option(job, "key"):
        template = None if given.key is None else _check_key_template(given.key, signature)
        if template is not None and scope is None:
            _refuse("a key names what makes a job unique; set unique= too")
    return _Uniqueness(scope, window_s, template)


def _schedule(job: str, given: _Declared, signature: inspect.Signature) -> _Schedule:
    with _option(job, "cron"):
        expression = None if given.cron is None else CronExpression.parse(given.cron)
        if expression is not None:
            _check_no_required_arguments(signature)
            if not given.track:
                _refuse(
                    "a cron job records every tick in the jobs table, so a duplicate delivery runs once and a"
                    " missed run can be found; drop track=False"
                )
    for option in ("tz", "missed", "catch_up_window"):
        if getattr(given, option) is not None and expression is None:
            raise JobDefinitionError(job, option, "applies to cron jobs only; set cron= too")
    with _option(job, "tz"):
        zone = DEFAULT_TZ if given.tz is None else given.tz
        check_timezone(zone)
    with _option(job, "missed"):
        missed = check_missed_policy("skip" if given.missed is None else given.missed)
    with _option(job, "result_ttl"):
        if given.result_ttl is not None and not given.track:
            _refuse("results are kept in the jobs table, which track=False skips")
        result_ttl_s = DEFAULT_RESULT_TTL_S if given.result_ttl is None else parse_duration_s(given.result_ttl)
    with _option(job, "catch_up_window"):
        if given.catch_up_window is not None and missed != "catch_up":
            _refuse("applies to missed='catch_up' only")
        window_s = (
            DEFAULT_CATCH_UP_WINDOW_S if given.catch_up_window is None else parse_duration_s(given.catch_up_window)
        )
        if window_s > MAX_CATCH_UP_WINDOW_S:
            _refuse(
                f"{window_s:g} s is longer than tick records are kept ({MAX_CATCH_UP_WINDOW_S:g} s): a firing whose"
                " record expired inside the window would look missed and run again"
            )
    return _Schedule(expression, zone, missed, window_s, result_ttl_s)


def _options(function: Callable[..., Any], given: _Declared) -> JobOptions:
    """`given` validated against itself and the function's signature (rules in each check's message)."""
    job = given.name if given.name is not None else getattr(function, "__name__", repr(function))
    with _option(job, "name"):
        check_job_name(job)
    signature = inspect.signature(function)
    with _option(job, "signature"):
        _check_function(function, signature)
    with _option(job, "runs_in"):
        runs_in = cast(RunsIn, _check_choice(given.runs_in, RUNS_IN))
    with _option(job, "track"):
        if not isinstance(given.track, bool):
            _refuse(f"must be True or False, got {given.track!r}")
    with _option(job, "queue"):
        queue = _check_queue(job if given.queue is None else given.queue)
    with _option(job, "retries"):
        check_retries(given.retries)
    with _option(job, "backoff"):
        backoff = parse_backoff(given.backoff)
    with _option(job, "non_retryable"):
        non_retryable = check_non_retryable(given.non_retryable)
    with _option(job, "timeout"):
        timeout_s = _check_timeout(given.timeout, runs_in)
    limits = _limits(job, given, signature, runs_in)
    uniqueness = _uniqueness(job, given, signature)
    schedule = _schedule(job, given, signature)
    with _option(job, "failure_alarm"):
        failure_alarm = _check_failure_alarm(given.failure_alarm)
    http_target = _http_target(job, given, timeout_s, uniqueness.unique)
    return JobOptions(
        name=job,
        queue=queue,
        retry_policy=RetryPolicy(given.retries, backoff, non_retryable),
        timeout_s=timeout_s,
        concurrency=limits.concurrency,
        min_loops=limits.min_loops,
        rate_per_s=limits.rate_per_s,
        group_by=limits.group_by,
        ordering=limits.ordering,
        unique=uniqueness.unique,
        unique_window_s=uniqueness.window_s,
        key=uniqueness.key,
        cron=schedule.cron,
        tz=schedule.tz,
        missed=schedule.missed,
        catch_up_window_s=schedule.catch_up_window_s,
        track=given.track,
        result_ttl_s=schedule.result_ttl_s,
        runs_in=runs_in,
        failure_alarm=failure_alarm,
        http_target=http_target,
    )


def _http_target(job: str, given: _Declared, timeout_s: float, unique: UniqueScope | None) -> str | None:
    """The `http:` target of a job that runs in a web app (`http=URL`), checked as a registration would be."""
    if given.http is None:
        if given.receipt_timeout is not None:
            raise JobDefinitionError(job, "receipt_timeout", "applies to http jobs only; set http= too")
        return None
    with _option(job, "http"):
        if given.runs_in != "loop":
            _refuse("an http job runs in the web app and the loops POST it to the app; leave runs_in out")
        if not given.track:
            _refuse("an http job is tracked: its attempts and its receipt are held in the jobs table")
        if unique is not None:
            _refuse("unique http jobs are not supported: the http: runner does not free keys; drop unique")
        if given.backoff is not None or given.non_retryable:
            _refuse(
                "an http job retries with the default backoff, and the app decides what is not retryable (a 4xx"
                " answer is dead at once, Retry-After sets a delay); drop backoff and non_retryable"
            )
        if not isinstance(given.http, str):
            _refuse(f"must be the app's URL, e.g. 'https://app.example.com/jobs/{{job}}', got {given.http!r}")
        options = {"timeout": f"{timeout_s:g}s", "retries": str(given.retries)}
        if given.receipt_timeout is not None:
            options["receipt_timeout"] = f"{parse_duration_s(given.receipt_timeout):g}s"
        target = given.http + "#" + "&".join(f"{name}={value}" for name, value in options.items())
        try:
            parse_http_target(target)
        except ConfigError as exc:
            _refuse(str(exc).removeprefix("http handler: "))
        return target


class _Decorator(Protocol):
    def __call__(self, fn: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(fn: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    queue: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff: BackoffLike = None,
    non_retryable: type[BaseException] | Iterable[type[BaseException]] = (),
    timeout: DurationLike = DEFAULT_TIMEOUT_S,
    concurrency: int | None = None,
    min_loops: int = defaults.MIN_LOOPS,
    rate: RateLike | None = None,
    group_by: str | None = None,
    ordering: Ordering | None = None,
    unique: UniqueScope | DurationLike | None = None,
    key: str | None = None,
    cron: str | None = None,
    tz: str | None = None,
    missed: MissedPolicy | None = None,
    catch_up_window: DurationLike | None = None,
    track: bool = True,
    result_ttl: DurationLike | None = None,
    runs_in: RunsIn = "loop",
    failure_alarm: float | None = DEFAULT_FAILURE_ALARM,
    http: str | None = None,
    receipt_timeout: DurationLike | None = None,
) -> _Decorator: ...


def job(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a function as a job, bare (`@job`) or with keyword options (`@job(retries=8, timeout="30s")`).

    Defaults: name = the function's; queue = one per job, named after it; retries = DEFAULT_RETRIES with
    full-jitter exponential backoff; timeout = DEFAULT_TIMEOUT_S; concurrency = the registration default; scale to
    zero; tz = UTC; missed = "skip"; tracked, results kept DEFAULT_RESULT_TTL_S; runs in the loop. tz, missed and
    catch_up_window apply to cron jobs only; key needs unique; ordering defaults to "serial" with group_by;
    failure_alarm = DEFAULT_FAILURE_ALARM (the failure-rate alarm `jobs apply` puts; None: none). `http=URL` makes
    it a job of a web app: the function only declares its arguments, and the loops POST each job to the URL
    (`{job}` is the job's name; timeout, retries and receipt_timeout go with it; see jobs/http.py).
    """
    try:
        given = _Declared(**options)
    except TypeError:
        unknown = sorted(set(options) - set(_Declared.__dataclass_fields__))
        raise TypeError(f"@job() got unknown option(s): {', '.join(unknown)}") from None

    def declare(function: Callable[..., Any]) -> JobFunction[..., Any]:
        if isinstance(function, JobFunction):
            raise JobDefinitionError(function.name, "job", "is already a job; apply @job once")
        if not callable(function):
            raise JobDefinitionError(repr(function), "job", "@job decorates functions")
        return JobFunction(function, _options(function, given))

    return declare if fn is None else declare(fn)


# --- collecting --------------------------------------------------------------------------------------------------

# Settings of the queue itself: jobs sharing a queue must agree on them (None: no opinion).
_QUEUE_SETTINGS = ("concurrency", "min_loops", "rate_per_s")


def jobs_in(module: ModuleType) -> dict[str, JobFunction[..., Any]]:
    """The jobs an imported module holds (its own and those it imports), by name. JobDefinitionError for two jobs
    with one name, or jobs sharing a queue that disagree on what the queue is (FIFO or not, loop or function, its
    loops and rate)."""
    found: dict[str, JobFunction[..., Any]] = {}
    for attribute, value in sorted(vars(module).items()):
        if not isinstance(value, JobFunction):
            continue
        other = found.get(value.name)
        if other is not None and other is not value:
            raise JobDefinitionError(
                value.name,
                "name",
                f"two jobs in {module.__name__} have this name ({other.fn.__qualname__} and"
                f" {value.fn.__qualname__} as {attribute!r}); give one of them name=...",
            )
        found[value.name] = value
    _check_shared_queues(found.values())
    return found


def _check_shared_queues(jobs: Iterable[JobFunction[..., Any]]) -> None:
    by_queue: dict[str, JobFunction[..., Any]] = {}
    for current in sorted(jobs, key=lambda item: item.name):
        first = by_queue.setdefault(current.options.queue, current)
        if first is current:
            continue
        mine, theirs = current.options, first.options
        differences = [
            setting
            for setting in ("fifo", "runs_in", "http_target")
            if getattr(mine, setting) != getattr(theirs, setting)
        ]
        differences += [
            setting
            for setting in _QUEUE_SETTINGS
            if getattr(mine, setting) not in (None, 0)
            and getattr(theirs, setting) not in (None, 0)
            and getattr(mine, setting) != getattr(theirs, setting)
        ]
        if differences:
            raise JobDefinitionError(
                current.name,
                "queue",
                f"shares queue {mine.queue!r} with job {first.name!r} but differs in {', '.join(differences)};"
                " jobs on one queue must agree on the queue's settings",
            )
