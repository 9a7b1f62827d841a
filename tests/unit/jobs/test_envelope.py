"""The message body: built with checks, read back exactly, and refused with a reason when anything is off."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sqsloops.errors import ConfigError
from sqsloops.jobs.envelope import (
    MAX_JOB_ID_LEN,
    MAX_MESSAGE_BYTES,
    MAX_SNS_MESSAGE_BYTES,
    SCHEDULE_NAME_MAX_LEN,
    Envelope,
    check_job_id,
    new_job_id,
    resolve_run_at,
    schedule_name,
)
from sqsloops.jobs.errors import EnqueueTimeError, JobArgsError, JobTooLargeError, MalformedEnvelopeError

NOW = datetime(2026, 3, 29, 7, 0, 0, 123456, tzinfo=UTC)


def envelope(**overrides: Any) -> Envelope:
    fields: dict[str, Any] = {"job": "charge", "args": [42], "kwargs": {"customer_id": 7}, "now": NOW}
    fields.update(overrides)
    return Envelope.create(**fields)


def body(**overrides: Any) -> str:
    data: dict[str, Any] = {
        "v": 1,
        "id": "0123abcd",
        "job": "charge",
        "args": [42],
        "kwargs": {},
        "enqueued_at": "2026-03-29T07:00:00Z",
        "attempt": 0,
    }
    data.update(overrides)
    return json.dumps({name: value for name, value in data.items() if value is not ...})


def test_a_new_envelope_has_attempt_zero_and_a_generated_id() -> None:
    built = envelope()
    assert built.attempt == 0
    assert len(built.id) == 32
    assert built.id != envelope().id
    assert check_job_id(built.id) == built.id


def test_the_body_has_the_documented_fields_in_order() -> None:
    built = envelope(id="order-42", key="order-42", run_at=NOW + timedelta(hours=1))
    assert json.loads(built.to_json()) == {
        "v": 1,
        "id": "order-42",
        "job": "charge",
        "args": [42],
        "kwargs": {"customer_id": 7},
        "enqueued_at": "2026-03-29T07:00:00.123456Z",
        "run_at": "2026-03-29T08:00:00.123456Z",
        "attempt": 0,
        "key": "order-42",
    }
    assert list(json.loads(built.to_json())) == [
        "v",
        "id",
        "job",
        "args",
        "kwargs",
        "enqueued_at",
        "run_at",
        "attempt",
        "key",
    ]


def test_optional_fields_are_left_out_when_unset() -> None:
    assert set(json.loads(envelope().to_json())) == {"v", "id", "job", "args", "kwargs", "enqueued_at", "attempt"}


def test_an_envelope_round_trips_exactly() -> None:
    built = envelope(
        args=[1, "two", 3.5, None, True, {"nested": [1, 2]}],
        kwargs={"name": "Zoë 🚀"},
        key="k",
        run_at=NOW + timedelta(days=2),
    ).with_attempt(3)
    assert Envelope.parse(built.to_json()) == built


def test_times_are_stored_in_utc() -> None:
    paris = datetime(2026, 7, 1, 9, tzinfo=ZoneInfo("Europe/Paris"))
    built = envelope(now=paris)
    assert json.loads(built.to_json())["enqueued_at"] == "2026-07-01T07:00:00Z"
    assert Envelope.parse(built.to_json()).enqueued_at == paris


def test_tuples_become_lists() -> None:
    assert envelope(args=[(1, 2)]).args == ([1, 2],)


def test_non_ascii_is_kept_as_utf8_and_counted_in_bytes() -> None:
    built = envelope(kwargs={"text": "é" * 10})
    assert "é" in built.to_json()
    assert built.size_bytes() == len(built.to_json().encode())
    assert built.size_bytes() > len(built.to_json())


def test_with_attempt_and_for_redrive() -> None:
    built = envelope()
    third = built.with_attempt(3)
    assert (third.attempt, third.id, third.args) == (3, built.id, built.args)
    assert third.for_redrive().attempt == 0
    assert third.for_redrive().id == built.id
    assert built.attempt == 0  # the original is unchanged


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ([datetime(2026, 1, 1, tzinfo=UTC)], {}, r"args\[0\]: datetime is not JSON \(pass datetime.isoformat\(\)\)"),
        ([{1, 2}], {}, r"args\[0\]: set is not JSON"),
        ([], {"blob": b"x"}, r"kwargs\['blob'\]: bytes is not JSON"),
        ([{1: "a"}], {}, r"args\[0\]: key 1 is not a string"),
        ([float("nan")], {}, r"args\[0\]: nan is not a JSON number"),
        ([[object()]], {}, r"args\[0\]\[0\]: object is not JSON"),
    ],
)
def test_arguments_that_are_not_json_are_refused_saying_where(
    args: list[Any], kwargs: dict[str, Any], where: str
) -> None:
    with pytest.raises(JobArgsError, match=rf"^job 'charge': {where}"):
        envelope(args=args, kwargs=kwargs)


@pytest.mark.parametrize(("args", "kwargs"), [("42", {}), (42, {}), ([], [("a", 1)])])
def test_args_must_be_a_list_and_kwargs_a_mapping(args: Any, kwargs: Any) -> None:
    # A string is a sequence, but never a list of arguments: "42" must not become ["4", "2"]
    with pytest.raises(JobArgsError, match="must be a"):
        envelope(args=args, kwargs=kwargs)


def test_arguments_nested_too_deep_are_refused() -> None:
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(JobArgsError, match="nested deeper than"):
        envelope(args=deep)


def test_a_message_over_the_sqs_limit_is_refused() -> None:
    # Given arguments that make the body larger than 1 MiB
    with pytest.raises(JobArgsError, match=rf"over the {MAX_MESSAGE_BYTES}-byte limit; pass a reference"):
        envelope(args=["x" * MAX_MESSAGE_BYTES])


def test_a_message_for_the_entry_topic_has_the_smaller_sns_limit() -> None:
    args = ["x" * (MAX_SNS_MESSAGE_BYTES - 100)]
    envelope(args=args)  # fits SQS
    with pytest.raises(JobArgsError, match=f"over the {MAX_SNS_MESSAGE_BYTES}-byte limit"):
        envelope(args=args, max_bytes=MAX_SNS_MESSAGE_BYTES)


def test_a_message_just_at_the_limit_is_accepted() -> None:
    empty = envelope(args=[""], id="fixed").size_bytes()
    exact = envelope(args=["x" * (MAX_MESSAGE_BYTES - empty)], id="fixed")
    assert exact.size_bytes() == MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": "has space"}, "not a valid job id"),
        ({"id": "x" * (MAX_JOB_ID_LEN + 1)}, "not a valid job id"),
        ({"id": ""}, "not a valid job id"),
        ({"job": "bad.name"}, "not a valid job name"),
        ({"key": ""}, "key must be a non-empty string"),
        ({"key": "k" * 513}, "over 512"),
    ],
)
def test_bad_ids_names_and_keys_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(JobArgsError, match=message):
        envelope(**overrides)


@pytest.mark.parametrize(
    ("job_id", "valid"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("order-42_v2.retry", True),
        ("x" * MAX_JOB_ID_LEN, True),
        ("digest@2026-03-29T07:00:00Z", True),
        ("x" * (MAX_JOB_ID_LEN + 1), False),
        ("a/b", False),
        ("a:b", False),
        ("a@b", False),
        ("ünïcode", False),
    ],
)
def test_job_ids_are_plain_or_tick_ids(job_id: str, valid: bool) -> None:
    if valid:
        assert check_job_id(job_id) == job_id
    else:
        with pytest.raises(ConfigError):
            check_job_id(job_id)


def test_generated_ids_are_plain_ids() -> None:
    assert all(len(check_job_id(new_job_id())) == 32 for _ in range(10))


def test_a_plain_id_makes_a_readable_schedule_name() -> None:
    assert schedule_name("sqsl-at-", "order-42") == "sqsl-at-order-42"
    longest = schedule_name("p" * 16, "x" * MAX_JOB_ID_LEN)
    assert len(longest) == SCHEDULE_NAME_MAX_LEN


def test_a_tick_id_makes_a_hashed_schedule_name_that_scheduler_accepts() -> None:
    name = schedule_name("sqsl-at-", "a" * 40 + "@2026-03-29T07:00:00Z")
    assert name.startswith("sqsl-at-h-")
    assert len(name) <= SCHEDULE_NAME_MAX_LEN
    assert set(name) <= set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")
    # stable, so cancel() can derive it again; distinct per firing
    assert name == schedule_name("sqsl-at-", "a" * 40 + "@2026-03-29T07:00:00Z")
    assert name != schedule_name("sqsl-at-", "a" * 40 + "@2026-03-29T07:01:00Z")


@pytest.mark.parametrize("prefix", ["", "p" * 17, "bad prefix"])
def test_a_bad_schedule_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="schedule name prefix"):
        schedule_name(prefix, "order-42")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('"text"', "not a JSON object but str"),
        (body(v=...), "missing field(s) 'v'"),
        (body(id=..., job=...), "missing field(s) 'id', 'job'"),
        (body(args=...), "missing field(s) 'args'"),
        (body(kwargs=...), "missing field(s) 'kwargs'"),
        (body(enqueued_at=...), "missing field(s) 'enqueued_at'"),
        (body(attempt=...), "missing field(s) 'attempt'"),
        (body(extra=1), "unknown field(s) 'extra'"),
        (body(v=2), "version 2 is not 1"),
        (body(v="1"), "version '1' is not 1"),
        (body(v=True), "version True is not 1"),
        (body(id=42), "field 'id' must be str, got int"),
        (body(id="has space"), "not a valid job id"),
        (body(job="bad.name"), "not a valid job name"),
        (body(job=None), "field 'job' must be str, got NoneType"),
        (body(args={"a": 1}), "field 'args' must be list, got dict"),
        (body(kwargs=[1]), "field 'kwargs' must be dict, got list"),
        (body(enqueued_at=1711695600), "field 'enqueued_at' must be str, got int"),
        (body(enqueued_at="yesterday"), "'yesterday' is not an ISO 8601 time"),
        (body(enqueued_at="2026-03-29T07:00:00"), "is not an ISO 8601 time with a zone"),
        (body(run_at="soon"), "field 'run_at'"),
        (body(attempt=-1), "attempt must be a whole number >= 0"),
        (body(attempt=1.5), "field 'attempt' must be int, got float"),
        (body(attempt=True), "field 'attempt' must be int, got bool"),
        (body(key=7), "field 'key' must be str, got int"),
        (body(key=""), "key must be a non-empty string"),
        ('{"v": 1, "args": [NaN]}', "not JSON"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as caught:
        Envelope.parse(raw)
    assert reason in caught.value.reason
    assert str(caught.value).startswith("malformed job envelope: ")


def test_a_minimal_body_parses() -> None:
    parsed = Envelope.parse(body())
    assert (parsed.id, parsed.job, parsed.args, parsed.kwargs, parsed.attempt) == ("0123abcd", "charge", (42,), {}, 0)
    assert parsed.enqueued_at == datetime(2026, 3, 29, 7, tzinfo=UTC)
    assert parsed.run_at is None
    assert parsed.key is None


def test_explicit_nulls_for_optional_fields_parse_as_unset() -> None:
    parsed = Envelope.parse(body(run_at=None, key=None))
    assert (parsed.run_at, parsed.key) == (None, None)


def test_an_envelope_is_frozen() -> None:
    with pytest.raises(AttributeError):
        envelope().attempt = 2  # type: ignore[misc]


def test_a_delay_resolves_to_a_run_at() -> None:
    assert resolve_run_at(delay="10m", run_at=None, now=NOW) == NOW + timedelta(minutes=10)
    assert resolve_run_at(delay=0, run_at=None, now=NOW) is None
    assert resolve_run_at(delay=None, run_at=None, now=NOW) is None


def test_a_run_at_is_kept_in_utc_or_means_now_when_just_past() -> None:
    later = datetime(2026, 3, 29, 12, tzinfo=ZoneInfo("Europe/Paris"))
    assert resolve_run_at(delay=None, run_at=later, now=NOW) == datetime(2026, 3, 29, 10, tzinfo=UTC)
    assert resolve_run_at(delay=None, run_at=NOW - timedelta(milliseconds=500), now=NOW) is None


@pytest.mark.parametrize(
    ("delay", "run_at", "message"),
    [
        ("10m", NOW, "not both"),
        ("soon", None, "delay: 'soon' is not a duration"),
        (-5, None, "delay: must not be negative"),
        (None, NOW - timedelta(minutes=1), "is in the past"),
        (None, datetime(2026, 3, 29, 9), "must be a datetime with a time zone"),
        (None, "2026-03-29T09:00:00Z", "must be a datetime with a time zone"),
    ],
)
def test_bad_times_are_refused(delay: Any, run_at: Any, message: str) -> None:
    with pytest.raises(EnqueueTimeError, match=message):
        resolve_run_at(delay=delay, run_at=run_at, now=NOW)


def test_a_message_over_its_limit_is_a_too_large_error_with_its_sizes() -> None:
    with pytest.raises(JobTooLargeError) as refused:
        Envelope.create("send", ["x" * 600], {}, now=datetime(2026, 1, 1, tzinfo=UTC), max_bytes=512)
    assert isinstance(refused.value, JobArgsError)  # still an argument problem to who catches that
    assert refused.value.limit_bytes == 512
    assert refused.value.size_bytes > 600
