"""`sqsloops jobs ...` through main([...]) on moto: apply the example app, enqueue, read status, operate dead jobs.

Every command's happy path, and bad input: one line on stderr, exit 1, nothing written.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sqsloops.clock import ManualClock
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.store import JobStore
from sqsloops.settings import Settings
from tests.conftest import Clients, settings_env
from tests.functional.jobs.apply_kit import GROUP, STACK, JobStack, WriteCounter, count_writes, job_stack
from tests.functional.jobs.cli_kit import ROOT, one_error, run

HELLO = f"{STACK}-hello"


@pytest.fixture
def write_counter(monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    return count_writes(monkeypatch)


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> JobStack:
    made = job_stack(aws, settings, clock)
    monkeypatch.delenv("SQSLOOPS_STACK", raising=False)
    for name, value in {**settings_env(made.settings), **made.settings.environment()}.items():
        monkeypatch.setenv(name, value)
    return made


@pytest.fixture
def applied(stack: JobStack, capsys: pytest.CaptureFixture[str]) -> JobStack:
    code, _, err = run(capsys, "jobs", "apply", "app.jobs", "--app-dir", ROOT)
    assert code == 0, err
    return stack


def store_of(stack: JobStack) -> JobStore:
    store = stack.root.job_store
    assert store is not None
    return store


def visible(stack: JobStack, name: str) -> list[dict[str, object]]:
    messages = stack.aws.sqs.receive_message(QueueUrl=stack.url(name), MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


# --- apply --------------------------------------------------------------------------------------------------------


def test_apply_dry_run_prints_the_plan_and_changes_nothing(
    stack: JobStack, capsys: pytest.CaptureFixture[str], write_counter: WriteCounter
) -> None:
    with write_counter.on() as writes:
        code, out, _ = run(capsys, "jobs", "apply", "app.jobs", "--app-dir", ROOT, "--dry-run")
    assert code == 0
    assert writes == []
    assert "dry run" in out
    assert "cron-minutely" in out
    assert f"{STACK}-one_at_a_time" in out
    assert stack.queue_names() == [f"{STACK}-schedules-dlq"]


def test_apply_twice_the_second_is_all_unchanged(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{STACK}-hello" in applied.queue_names()
    assert applied.schedule("cron-minutely")["ScheduleExpressionTimezone"] == "Europe/Paris"
    code, out, _ = run(capsys, "jobs", "apply", "app.jobs", "--app-dir", ROOT)
    assert code == 0
    assert "create" not in out
    assert "update" not in out
    assert "unchanged" in out


def test_apply_of_a_module_that_does_not_import_is_one_error(
    stack: JobStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "jobs", "apply", "no_such_app.jobs", "--app-dir", ROOT)
    assert code == 1
    one_error(err, "cannot import 'no_such_app.jobs'")
    assert stack.queue_names() == [f"{STACK}-schedules-dlq"]


# --- enqueue and status -------------------------------------------------------------------------------------------


def test_enqueue_then_status_and_list(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "jobs", "enqueue", "hello", "--args", '["ann"]', "--id", "job-1")
    assert (code, out.strip()) == (0, "enqueued hello job-1"), err
    [body] = visible(applied, HELLO)
    assert (body["id"], body["job"], body["args"]) == ("job-1", "hello", ["ann"])

    code, out, _ = run(capsys, "jobs", "status", "job-1", "--json")
    assert code == 0
    assert json.loads(out)["state"] == "queued"

    code, out, _ = run(capsys, "jobs", "list", "hello", "--state", "queued")
    assert code == 0
    assert "job-1" in out
    code, out, _ = run(capsys, "jobs", "list", "hello", "--state", "dead")
    assert "job-1" not in out


def test_enqueue_by_keywords_and_as_a_duplicate(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "jobs", "enqueue", "charge_once", "--args", '{"order_id": 7}')
    second = run(capsys, "jobs", "enqueue", "charge_once", "--args", '{"order_id": 7}')
    assert first[0] == second[0] == 0
    assert first[1].startswith("enqueued charge_once ")
    assert second[1].strip() == "duplicate of charge_once " + first[1].split()[-1]
    assert len(visible(applied, f"{STACK}-charge_once")) == 1


def test_enqueue_with_a_long_delay_is_a_one_time_schedule(
    applied: JobStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "jobs", "enqueue", "later", "--args", '["hi"]', "--delay", "2h", "--id", "late-1")
    assert code == 0, err
    names = [s["Name"] for s in applied.aws.scheduler.list_schedules(GroupName=GROUP)["Schedules"]]
    assert "job-late-1" in names
    assert json.loads(run(capsys, "jobs", "status", "late-1", "--json")[1])["state"] == "scheduled"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["enqueue", "no_such_job"], "no_such_job"),
        (["enqueue", "hello", "--args", "not json"], "--args is not JSON"),
        (["enqueue", "hello", "--args", '"ann"'], "must be a JSON list"),
        (["enqueue", "hello", "--args", '["a", "b"]'], "hello"),
        (["enqueue", "hello", "--args", '["ann"]', "--at", "2030-01-01T09:00:00"], "no time zone"),
        (["enqueue", "hello", "--args", '["ann"]', "--at", "someday"], "not an ISO 8601 time"),
        (["enqueue", "hello", "--args", '["ann"]', "--delay", "soon"], "delay"),
        (["enqueue", "hello", "--args", '["ann"]', "--at", "2001-01-01T00:00:00Z"], "past"),
        (["enqueue", "hello", "--args", '["ann"]', "--id", "has space"], "not a valid job id"),
        (["status", "no-such-id"], "no-such-id"),
        (["list", "no_such_job"], "no_such_job"),
        (["list", "hello", "--limit", "0"], "--limit"),
        (["dead", "no_such_job"], "no_such_job"),
        (["pause", "no_such_job"], "no_such_job"),
        (["drain", "hello", "--timeout-s", "0"], "--timeout-s"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_writes_nothing(
    applied: JobStack,
    capsys: pytest.CaptureFixture[str],
    write_counter: WriteCounter,
    argv: list[str],
    fragment: str,
) -> None:
    with write_counter.on() as writes:
        code, _, err = run(capsys, "jobs", *argv)
    assert code == 1
    one_error(err, fragment)
    assert writes == []


# --- dead jobs ----------------------------------------------------------------------------------------------------


def kill(stack: JobStack, job_id: str, name: str = "hello") -> None:
    """A job as the runner leaves a dead one: its row dead after 3 attempts, its envelope in the DLQ."""
    store = store_of(stack)
    now = datetime.fromtimestamp(stack.clock.now(), UTC)
    envelope = replace(Envelope.create(name, ["x"], {}, now=now, id=job_id), attempt=3)
    assert store.create(job_id, name, enqueued_at=stack.clock.now())
    store.mark_running(job_id, job=name, attempt=3)
    store.mark_dead(job_id, attempts=3, error="boom")
    stack.send(f"{STACK}-{name}-dlq", envelope.to_json())


def test_dead_redrive_by_id_and_discard_all(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    kill(applied, "d-1")
    kill(applied, "d-2")

    code, out, _ = run(capsys, "jobs", "dead", "hello")
    assert code == 0
    assert "d-1" in out
    assert "d-2" in out
    assert "boom" in out

    code, out, err = run(capsys, "jobs", "redrive", "hello", "--id", "d-1")
    assert code == 0, err
    assert "redrove 1 job(s): d-1" in out
    [body] = visible(applied, HELLO)
    assert (body["id"], body["attempt"]) == ("d-1", 0)
    row = store_of(applied).get("d-1")
    assert row is not None
    assert (row.state.value, row.attempts) == ("queued", 0)
    assert [b["id"] for b in visible(applied, f"{STACK}-hello-dlq")] == ["d-2"]  # the other one stays, visible

    code, out, _ = run(capsys, "jobs", "discard", "hello", "--all")
    assert code == 0
    assert "discarded 1 job(s): d-2" in out
    assert visible(applied, f"{STACK}-hello-dlq") == []


def test_redrive_all_moves_every_dead_job_once(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(13):  # more than one batch
        kill(applied, f"d-{index}")
    code, out, err = run(capsys, "jobs", "redrive", "hello", "--all")
    assert code == 0, err
    assert "redrove 13 job(s)" in out
    bodies: list[dict[str, object]] = []
    while batch := applied.aws.sqs.receive_message(QueueUrl=applied.url(HELLO), MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        bodies += [json.loads(m["Body"]) for m in batch]  # received and hidden: each message once
    assert sorted(str(b["id"]) for b in bodies) == sorted(f"d-{i}" for i in range(13))  # none lost, none doubled
    assert visible(applied, f"{STACK}-hello-dlq") == []


def test_redrive_of_an_id_not_in_the_dlq_says_so(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    kill(applied, "d-1")
    code, _, err = run(capsys, "jobs", "redrive", "hello", "--id", "nope")
    assert code == 1
    assert "nope: not in the dead-letter queue" in err
    assert [b["id"] for b in visible(applied, f"{STACK}-hello-dlq")] == ["d-1"]


# --- pause, resume, drain -----------------------------------------------------------------------------------------


def test_pause_keeps_accepting_and_runs_none_resume_runs_again(
    applied: JobStack, capsys: pytest.CaptureFixture[str]
) -> None:
    url = applied.url(HELLO)
    assert run(capsys, "jobs", "pause", "hello")[0] == 0
    assert applied.root.registry.get(url).enabled is False
    assert applied.root.alarms.names(url) == []  # nothing scales it up
    assert run(capsys, "jobs", "enqueue", "hello", "--args", '["ann"]')[0] == 0  # still accepted
    assert len(visible(applied, HELLO)) == 1
    assert run(capsys, "jobs", "resume", "hello")[0] == 0
    assert applied.root.registry.get(url).enabled is True
    assert applied.root.alarms.names(url) != []


def test_drain_waits_for_an_empty_queue(applied: JobStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "drain", "hello", "--timeout-s", "1")
    assert (code, out.strip()) == (0, "hello is drained")
    applied.send(HELLO)
    code, _, err = run(capsys, "jobs", "drain", "hello", "--timeout-s", "0.05")
    assert code == 1
    one_error(err, "did not drain", "1 visible")
