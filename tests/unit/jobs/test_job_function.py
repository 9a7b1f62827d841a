"""A declared job at call time: binding arguments, rendering keys and groups, enqueueing, collecting a module."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sqsloops.jobs import JobArgsError, JobDefinitionError, JobFunction, NoEnqueuerError, job, jobs_in
from sqsloops.jobs.context import current_enqueuer, set_enqueuer
from sqsloops.jobs.errors import EnqueueTimeError


@job(unique="until_done", key="order-{order_id}", group_by="customer_id")
def charge(order_id: int, customer_id: int, amount: float = 10.0, *, currency: str = "EUR") -> None:
    """Charge an order."""


@job
def send_welcome_email(user_id: int) -> None:
    """Welcome a user."""


class RecordingEnqueuer:
    """An enqueuer that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def enqueue(
        self,
        job: JobFunction[..., Any] | str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        delay: Any = None,
        run_at: datetime | None = None,
        key: str | None = None,
        id: str | None = None,
    ) -> Any:
        self.sent.append(
            {"job": job, "args": args, "kwargs": kwargs, "delay": delay, "run_at": run_at, "key": key, "id": id}
        )
        return f"handle-{len(self.sent)}"


@pytest.fixture
def enqueuer() -> Iterator[RecordingEnqueuer]:
    recording = RecordingEnqueuer()
    previous = set_enqueuer(recording)
    yield recording
    set_enqueuer(previous)


# --- bind ---------------------------------------------------------------------------------------------------------


def test_bind_checks_the_call_against_the_signature() -> None:
    assert charge.bind(1, 2) == ([1, 2], {})
    assert charge.bind(1, customer_id=2, currency="USD") == ([1, 2], {"currency": "USD"})


def test_bind_does_not_freeze_defaults_into_the_message() -> None:
    # A default changed in code applies to jobs already queued
    args, kwargs = charge.bind(1, 2)
    assert "amount" not in kwargs
    assert len(args) == 2


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {}, "missing a required argument: 'customer_id'"),
        ((1, 2, 3, 4), {}, "too many positional arguments"),
        ((1, 2), {"colour": "red"}, "unexpected keyword argument 'colour'"),
        ((1,), {"order_id": 1}, "multiple values for argument 'order_id'"),
    ],
)
def test_a_call_that_does_not_fit_is_an_args_error(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(JobArgsError) as caught:
        charge.bind(*args, **kwargs)
    shape = "charge(order_id, customer_id, amount=10.0, *, currency='EUR')"
    assert str(caught.value).startswith(f"job 'charge': arguments do not fit {shape}: ")
    assert message in str(caught.value)


def test_bind_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(JobArgsError, match=r"args\[1\]: datetime is not JSON"):
        charge.bind(1, datetime(2026, 1, 1, tzinfo=UTC))


def test_bind_turns_tuples_into_lists() -> None:
    assert charge.bind((1, 2), [3]) == ([[1, 2], [3]], {})


# --- keys and groups ----------------------------------------------------------------------------------------------


def test_the_key_is_rendered_over_the_bound_arguments() -> None:
    # However the order id is passed, the key is the same
    assert charge.render_key([42, 7], {}) == "order-42"
    assert charge.render_key([], {"order_id": 42, "customer_id": 7}) == "order-42"


def test_a_key_can_use_defaults_and_format_specs() -> None:
    keyed = job(unique="until_done", key="{currency}-{order_id:05d}", name="keyed")(charge.fn)
    assert keyed.render_key([42, 7], {}) == "EUR-00042"


def test_a_key_that_cannot_render_is_an_args_error() -> None:
    keyed = job(unique="until_done", key="{order_id:05d}", name="keyed")(charge.fn)
    with pytest.raises(JobArgsError, match=re.escape("key '{order_id:05d}' cannot be rendered")):
        keyed.render_key(["not a number", 7], {})


def test_a_rendered_key_too_long_is_an_args_error() -> None:
    with pytest.raises(JobArgsError, match="over the 512-byte limit"):
        charge.render_key(["x" * 600, 7], {})


def test_a_unique_job_without_a_template_is_keyed_by_all_its_arguments() -> None:
    unique = job(unique="10m", name="unique_charge")(charge.fn)
    same = unique.render_key([1, 2], {})
    assert same == unique.render_key([], {"customer_id": 2, "order_id": 1})
    assert same == unique.render_key([1, 2, 10.0], {})  # the default, spelled out
    assert same != unique.render_key([1, 3], {})
    assert same is not None
    assert same.startswith("args-")


def test_a_job_that_is_not_unique_has_no_key() -> None:
    assert send_welcome_email.render_key([1], {}) is None


def test_the_group_is_the_group_by_argument() -> None:
    assert charge.group_of([1, 7], {}) == "7"
    assert charge.group_of([1], {"customer_id": "acme"}) == "acme"
    assert send_welcome_email.group_of([1], {}) is None


def test_a_group_too_long_for_sqs_is_hashed() -> None:
    group = charge.group_of([1, "c" * 200], {})
    assert group is not None
    assert group.startswith("h-")
    assert len(group) <= 128
    assert group == charge.group_of([1, "c" * 200], {})


# --- enqueue ------------------------------------------------------------------------------------------------------


def test_enqueue_without_an_enqueuer_says_how_to_configure_one() -> None:
    previous = set_enqueuer(None)
    try:
        with pytest.raises(NoEnqueuerError, match="no enqueuer is configured"):
            send_welcome_email.enqueue(42)
        with pytest.raises(NoEnqueuerError):
            current_enqueuer()
    finally:
        set_enqueuer(previous)


def test_enqueue_hands_the_bound_call_to_the_enqueuer(enqueuer: RecordingEnqueuer) -> None:
    # When a job is enqueued with its arguments and a delay
    handle = charge.enqueue(42, customer_id=7, delay="10m")
    # Then the enqueuer gets the bound arguments, the rendered key and the delay in seconds
    assert handle == "handle-1"
    assert enqueuer.sent == [
        {"job": charge, "args": [42, 7], "kwargs": {}, "delay": 600.0, "run_at": None, "key": "order-42", "id": None}
    ]


def test_enqueue_passes_an_explicit_key_run_at_and_id(enqueuer: RecordingEnqueuer) -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    charge.enqueue(42, 7, run_at=later, key="mine", id="order-42-retry")
    assert enqueuer.sent[0]["run_at"] == later
    assert (enqueuer.sent[0]["key"], enqueuer.sent[0]["id"]) == ("mine", "order-42-retry")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"delay": "10m", "run_at": datetime(2030, 1, 1, tzinfo=UTC)}, EnqueueTimeError, "not both"),
        ({"delay": "soon"}, EnqueueTimeError, "delay: 'soon' is not a duration"),
        ({"run_at": datetime(2030, 1, 1)}, EnqueueTimeError, "with a time zone"),
        ({"id": "not an id"}, JobArgsError, "not a valid job id"),
        ({"key": ""}, JobArgsError, "key must be a non-empty string"),
    ],
)
def test_enqueue_sends_nothing_when_something_is_wrong(
    enqueuer: RecordingEnqueuer, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        charge.enqueue(42, 7, **options)
    assert enqueuer.sent == []


def test_enqueue_with_bad_arguments_sends_nothing(enqueuer: RecordingEnqueuer) -> None:
    with pytest.raises(JobArgsError):
        send_welcome_email.enqueue()
    assert enqueuer.sent == []


# --- collecting a module ------------------------------------------------------------------------------------------


def module_with(**members: Any) -> types.ModuleType:
    module = types.ModuleType("app.jobs")
    for name, value in members.items():
        setattr(module, name, value)
    return module


def test_jobs_in_collects_a_modules_jobs_by_name() -> None:
    module = module_with(charge=charge, send_welcome_email=send_welcome_email, helper=len, CONSTANT=3)
    assert jobs_in(module) == {"charge": charge, "send_welcome_email": send_welcome_email}


def test_one_job_under_two_attributes_is_collected_once() -> None:
    assert jobs_in(module_with(charge=charge, alias=charge)) == {"charge": charge}


def test_two_jobs_with_one_name_are_refused() -> None:
    other = job(name="charge")(send_welcome_email.fn)
    with pytest.raises(JobDefinitionError, match=r"two jobs in app\.jobs have this name") as caught:
        jobs_in(module_with(charge=charge, other=other))
    assert (caught.value.job, caught.value.option) == ("charge", "name")


def test_jobs_sharing_a_queue_must_agree_on_it() -> None:
    def first(user_id: int) -> None: ...

    def second(user_id: int) -> None: ...

    agree = jobs_in(
        module_with(a=job(queue="shared", concurrency=4)(first), b=job(queue="shared", concurrency=4)(second))
    )
    assert set(agree) == {"first", "second"}
    # One with no opinion on concurrency agrees with any
    assert jobs_in(module_with(a=job(queue="shared", concurrency=4)(first), b=job(queue="shared")(second)))
    for clash in (
        {"concurrency": 8},
        {"ordering": "serial"},
        {"runs_in": "function"},
        {"rate": "5/s"},
    ):
        module = module_with(
            a=job(queue="shared", concurrency=4, rate="10/s")(first), b=job(queue="shared", **clash)(second)
        )
        with pytest.raises(JobDefinitionError, match="shares queue 'shared' with job 'first' but differs"):
            jobs_in(module)
