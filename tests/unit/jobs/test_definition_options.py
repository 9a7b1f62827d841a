"""`@job(...)` options: their defaults, and each refusal with the job and option named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sqsloops.jobs import JobDefinitionError, JobFunction, Retry, RetryPolicy, job
from sqsloops.jobs.definition import (
    DEFAULT_CATCH_UP_WINDOW_S,
    DEFAULT_RESULT_TTL_S,
    DEFAULT_TIMEOUT_S,
    FUNCTION_MAX_TIMEOUT_S,
    LOOP_MAX_TIMEOUT_S,
    MAX_CATCH_UP_WINDOW_S,
    MAX_QUEUE_NAME_LEN,
)
from sqsloops.jobs.retry_policy import DEFAULT_RETRIES, Exponential, Schedule


def charge(order_id: int, customer_id: int, amount: float = 0.0) -> None:
    """Charge an order."""


def digest(day: str | None = None) -> None:
    """Send the morning digest."""


def declare(fn: Callable[..., Any] = charge, **options: Any) -> JobFunction[..., Any]:
    return job(**options)(fn)


def refusal(fn: Callable[..., Any] = charge, **options: Any) -> JobDefinitionError:
    with pytest.raises(JobDefinitionError) as caught:
        declare(fn, **options)
    return caught.value


def test_a_bare_decorator_gives_the_defaults_a_user_expects() -> None:
    # Given a function declared with a bare @job
    @job
    def send_welcome_email(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    options = send_welcome_email.options
    # Then it is named after the function, has a queue of its own, and the documented defaults
    assert (options.name, options.queue, options.queue_name) == ("send_welcome_email",) * 3
    assert options.retry_policy == RetryPolicy(retries=DEFAULT_RETRIES)
    assert options.retries == DEFAULT_RETRIES
    assert options.retry_policy.backoff == Exponential()
    assert options.timeout_s == DEFAULT_TIMEOUT_S == 60.0
    assert (options.concurrency, options.min_loops, options.rate_per_s) == (None, 0, None)
    assert (options.group_by, options.ordering, options.fifo) == (None, None, False)
    assert (options.unique, options.unique_window_s, options.key) == (None, None, None)
    assert (options.cron, options.schedule_expression, options.tz, options.missed) == (None, None, "UTC", "skip")
    assert options.catch_up_window_s == DEFAULT_CATCH_UP_WINDOW_S
    assert (options.track, options.result_ttl_s, options.runs_in) == (True, DEFAULT_RESULT_TTL_S, "loop")
    assert options.result_ttl_s == 7 * 86_400
    assert options.visibility_timeout_s == 360


def test_the_job_is_still_the_plain_function() -> None:
    @job(retries=2)
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add(2, 3) == 5
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__wrapped__(1, 1) == 2


def test_the_design_examples_declare_as_documented() -> None:
    email = job(retries=8, backoff=("10s", "1m", "10m", "1h"), timeout="30s", concurrency=4, rate="10/s")(digest)
    assert email.options.retry_policy == RetryPolicy(8, Schedule((10.0, 60.0, 600.0, 3600.0)))
    assert (email.options.timeout_s, email.options.concurrency, email.options.rate_per_s) == (30.0, 4, 10.0)

    morning = job(cron="0 9 * * MON-FRI", tz="Europe/Paris", missed="run_once")(digest)
    assert morning.options.schedule_expression == "cron(0 9 ? * MON-FRI *)"
    assert (morning.options.tz, morning.options.missed) == ("Europe/Paris", "run_once")

    charged = job(unique="until_done", key="order-{order_id}", group_by="customer_id")(charge)
    assert (charged.options.unique, charged.options.key) == ("until_done", "order-{order_id}")
    assert (charged.options.group_by, charged.options.ordering, charged.options.queue_name) == (
        "customer_id",
        "serial",
        "charge.fifo",
    )


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError):
        declare().options.timeout_s = 5  # type: ignore[misc]


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        job(retry=3)  # type: ignore[call-overload]


# --- name and queue ----------------------------------------------------------------------------------------------


def test_a_name_and_a_shared_queue_can_be_given() -> None:
    options = declare(name="charge-v2", queue="billing").options
    assert (options.name, options.queue) == ("charge-v2", "billing")


@pytest.mark.parametrize("name", ["bad name", "dotted.name", "at@sign", "9starts_with_digit", "x" * 41, ""])
def test_a_bad_name_is_refused(name: str) -> None:
    error = refusal(name=name)
    assert error.option == "name"
    assert "is not a valid job name" in str(error)


def test_a_lambda_needs_a_name() -> None:
    error = refusal(lambda: None)
    assert error.option == "name"
    assert "'<lambda>' is not a valid job name" in str(error)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ("bad queue", "is not a queue name"),
        ("billing.fifo", "leave out '.fifo'"),
        ("q" * (MAX_QUEUE_NAME_LEN + 1), "is not a queue name"),
        ("", "must be a queue name"),
    ],
)
def test_a_bad_queue_is_refused(queue: str, message: str) -> None:
    error = refusal(queue=queue)
    assert str(error).startswith("job 'charge': option 'queue': ")
    assert message in error.problem


# --- retries --------------------------------------------------------------------------------------------------------


class DeclinedError(Exception):
    pass


def test_retry_options_make_the_policy() -> None:
    options = declare(retries=0, backoff=("exponential", "1s", "5m"), non_retryable=DeclinedError).options
    assert options.retry_policy == RetryPolicy(0, Exponential(1.0, 300.0), (DeclinedError,))


@pytest.mark.parametrize(
    ("options", "option", "message"),
    [
        ({"retries": -1}, "retries", "between 0 (one attempt only) and 1000"),
        ({"retries": "3"}, "retries", "whole number"),
        ({"backoff": ("10s", "never")}, "backoff", "is not a duration"),
        ({"backoff": ("exponential", "1h", "1s")}, "backoff", "below base_s"),
        ({"non_retryable": (DeclinedError, "KeyError")}, "non_retryable", "exception classes"),
        ({"non_retryable": Retry}, "non_retryable", "cannot also be non-retryable"),
    ],
)
def test_bad_retry_options_are_refused(options: dict[str, Any], option: str, message: str) -> None:
    error = refusal(**options)
    assert (error.job, error.option) == ("charge", option)
    assert message in error.problem


# --- timeout ------------------------------------------------------------------------------------------------------


def test_the_loop_can_give_a_job_the_process_timeout_less_its_reserve() -> None:
    assert LOOP_MAX_TIMEOUT_S == 885.0
    assert declare(timeout=LOOP_MAX_TIMEOUT_S).options.timeout_s == 885.0
    assert declare(timeout="14m45s").options.visibility_timeout_s == 6 * 885


def test_a_timeout_too_long_for_the_loop_points_to_a_function_of_its_own() -> None:
    error = refusal(timeout="14m46s")
    assert str(error).startswith("job 'charge': option 'timeout': '14m46s' (886 s) does not fit in a loop")
    assert "runs_in='function'" in str(error)
    # And in a function of its own it fits
    assert declare(timeout="14m46s", runs_in="function").options.timeout_s == 886.0


def test_a_function_of_its_own_runs_up_to_15_minutes() -> None:
    assert FUNCTION_MAX_TIMEOUT_S == 900.0
    assert declare(timeout="15m", runs_in="function").options.timeout_s == 900.0


def test_longer_work_is_out_of_scope() -> None:
    error = refusal(timeout="16m", runs_in="function")
    assert "longer than a Lambda function can run (900 s)" in str(error)
    assert "out of scope" in str(error)
    assert "out of scope" in str(refusal(timeout="1h"))


@pytest.mark.parametrize(("timeout", "message"), [(0, "more than zero"), ("500ms", "under the 1 s minimum"), ("x", "")])
def test_a_bad_timeout_is_refused(timeout: Any, message: str) -> None:
    error = refusal(timeout=timeout)
    assert error.option == "timeout"
    assert message in error.problem


def test_runs_in_is_loop_or_function() -> None:
    error = refusal(runs_in="container")
    assert (error.option, error.problem) == ("runs_in", "must be one of 'loop', 'function', got 'container'")


# --- limits -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option", "message"),
    [
        ({"concurrency": 0}, "concurrency", "from 1 to 1000"),
        ({"concurrency": 1001}, "concurrency", "from 1 to 1000"),
        ({"concurrency": 2.0}, "concurrency", "whole number"),
        ({"min_loops": -1}, "min_loops", "from 0 to 1000"),
        ({"min_loops": 5, "concurrency": 4}, "min_loops", "from 0 to 4"),
        ({"min_loops": 1, "runs_in": "function", "timeout": "1m"}, "min_loops", "no loops to keep warm"),
        ({"rate": "0/s"}, "rate", "above zero"),
        ({"rate": "fast"}, "rate", "is not a rate"),
        ({"group_by": "tenant"}, "group_by", "'tenant' is not a parameter of the function"),
        ({"ordering": "fair"}, "ordering", "name them with group_by"),
        ({"ordering": "random", "group_by": "customer_id"}, "ordering", "must be one of 'serial', 'fair'"),
    ],
)
def test_bad_limits_are_refused(options: dict[str, Any], option: str, message: str) -> None:
    error = refusal(**options)
    assert error.option == option
    assert message in error.problem


def test_group_by_is_serial_by_default_and_fair_on_request() -> None:
    serial = declare(group_by="customer_id").options
    fair = declare(group_by="customer_id", ordering="fair").options
    assert (serial.ordering, serial.fifo, serial.queue_name) == ("serial", True, "charge.fifo")
    assert (fair.ordering, fair.fifo, fair.queue_name) == ("fair", False, "charge")


def test_serial_without_group_by_is_one_ordered_queue() -> None:
    assert declare(ordering="serial").options.queue_name == "charge.fifo"


def test_group_by_cannot_name_star_args() -> None:
    def spread(*items: int, **extra: int) -> None: ...

    assert "is not a parameter" in refusal(spread, group_by="items").problem


# --- unique and key -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unique", "scope", "window_s"),
    [("until_started", "until_started", None), ("until_done", "until_done", None), ("10m", "window", 600.0)],
)
def test_unique_takes_a_scope_or_a_window(unique: str, scope: str, window_s: float | None) -> None:
    options = declare(unique=unique).options
    assert (options.unique, options.unique_window_s) == (scope, window_s)


@pytest.mark.parametrize("unique", ["forever", "0s", -5])
def test_a_bad_unique_is_refused(unique: Any) -> None:
    error = refusal(unique=unique)
    assert error.option == "unique"
    assert "'until_started', 'until_done' or a window" in error.problem


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("order-{order}", "placeholder {order} is not a parameter of the function (parameters: order_id, customer_id"),
        ("order-{}", "name the parameter in each placeholder"),
        ("order-{0}", "name the parameter in each placeholder"),
        ("order-{order_id.real}", "must be a plain parameter name"),
        ("order-{order_id[0]}", "must be a plain parameter name"),
        ("order-{order_id", "is not a valid template"),
        ("order-{order_id:{width}}", "nested placeholders"),
        ("", "must be a template string"),
    ],
)
def test_a_bad_key_template_is_refused_at_import(key: str, message: str) -> None:
    error = refusal(unique="until_done", key=key)
    assert error.option == "key"
    assert message in error.problem


def test_a_key_needs_unique() -> None:
    error = refusal(key="order-{order_id}")
    assert (error.option, error.problem) == ("key", "a key names what makes a job unique; set unique= too")


def test_a_key_may_be_constant_or_formatted() -> None:
    assert declare(unique="until_done", key="singleton").options.key == "singleton"
    assert declare(unique="until_done", key="order-{order_id:08d}").options.key == "order-{order_id:08d}"


# --- cron ---------------------------------------------------------------------------------------------------------


def test_a_cron_job_keeps_both_forms_of_its_expression() -> None:
    options = declare(digest, cron="30 2 * * *", tz="Europe/Paris", missed="catch_up", catch_up_window="6h").options
    assert options.cron is not None
    assert options.cron.source == "30 2 * * *"
    assert options.schedule_expression == "cron(30 2 * * ? *)"
    assert (options.missed, options.catch_up_window_s) == ("catch_up", 21_600.0)


def test_a_cron_job_takes_no_required_arguments() -> None:
    error = refusal(cron="@daily")
    assert error.option == "cron"
    assert error.problem == "a cron job is called with no arguments, but 'order_id', 'customer_id' have no default"


def test_a_cron_expression_scheduler_cannot_run_is_refused_at_import() -> None:
    error = refusal(digest, cron="0 9 1 * MON")
    assert error.option == "cron"
    assert "Unix cron runs when either matches" in error.problem


@pytest.mark.parametrize("option", ["tz", "missed", "catch_up_window"])
def test_schedule_options_need_cron(option: str) -> None:
    value = {"tz": "Europe/Paris", "missed": "run_once", "catch_up_window": "1h"}[option]
    error = refusal(digest, **{option: value})
    assert (error.option, error.problem) == (option, "applies to cron jobs only; set cron= too")


def test_a_bad_time_zone_is_refused_by_name() -> None:
    error = refusal(digest, cron="@daily", tz="Europe/Atlantis")
    assert error.option == "tz"
    assert "'Europe/Atlantis' is not a known IANA zone" in error.problem


def test_a_bad_missed_policy_is_refused() -> None:
    error = refusal(digest, cron="@daily", missed="later")
    assert error.option == "missed"


def test_a_catch_up_window_needs_catch_up() -> None:
    error = refusal(digest, cron="@daily", missed="run_once", catch_up_window="1h")
    assert (error.option, error.problem) == ("catch_up_window", "applies to missed='catch_up' only")


def test_a_catch_up_window_must_not_outlive_the_tick_records() -> None:
    assert MAX_CATCH_UP_WINDOW_S == 30 * 86_400
    assert declare(digest, cron="@daily", missed="catch_up", catch_up_window="30d").options.catch_up_window_s == (
        MAX_CATCH_UP_WINDOW_S
    )
    error = refusal(digest, cron="@daily", missed="catch_up", catch_up_window="31d")
    assert error.option == "catch_up_window"
    assert "would look missed and run again" in error.problem


# --- tracking -----------------------------------------------------------------------------------------------------


def test_untracked_jobs_are_allowed_for_high_volume() -> None:
    assert declare(track=False).options.track is False


@pytest.mark.parametrize(
    ("fn", "options", "option", "why"),
    [
        (charge, {"unique": "until_done"}, "unique", "needs the jobs table, where its dedupe key is held"),
        (digest, {"cron": "@hourly"}, "cron", "records every tick in the jobs table"),
        (charge, {"result_ttl": "1d"}, "result_ttl", "results are kept in the jobs table"),
    ],
)
def test_track_false_is_refused_where_the_table_is_needed(
    fn: Callable[..., Any], options: dict[str, Any], option: str, why: str
) -> None:
    error = refusal(fn, track=False, **options)
    assert error.option == option
    assert why in error.problem
    assert "track=False" in error.problem


def test_track_must_be_a_bool() -> None:
    assert refusal(track="no").option == "track"


def test_result_ttl_takes_a_duration() -> None:
    assert declare(result_ttl="1d").options.result_ttl_s == 86_400.0
    assert refusal(result_ttl="0s").option == "result_ttl"


# --- the function itself ------------------------------------------------------------------------------------------


def test_async_functions_are_refused() -> None:
    async def fetch() -> None: ...

    error = refusal(fetch)
    assert error.option == "signature"
    assert "async functions are not supported" in error.problem


@pytest.mark.parametrize("parameter", ["delay", "run_at", "key", "id"])
def test_parameters_that_enqueue_would_take_are_refused(parameter: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def clash({parameter}): pass", namespace)
    error = refusal(namespace["clash"])
    assert error.option == "signature"
    assert f"parameter {parameter!r} would be taken by enqueue({parameter}=...)" in error.problem


def test_a_positional_only_parameter_named_like_an_enqueue_option_is_fine() -> None:
    def lookup(id: int, /) -> int:
        return id

    assert declare(lookup).options.name == "lookup"


def test_a_job_cannot_be_declared_twice() -> None:
    once = declare()
    with pytest.raises(JobDefinitionError, match="already a job"):
        job(once)
