"""The `jobs:` runner through the real loop on moto: results and states, retries and their delays, dead jobs in the
DLQ, bad messages, cancelled and unique jobs, timeouts, untracked jobs.

The jobs are declared in this module, registered as `jobs:tests.functional.jobs.test_runner_loop`; messages are
written with Envelope directly (as the enqueue client will), rows with the store, as it will. The loop runs on a
FakeClock; moto's SQS reads the wall clock, so how long a retry stays hidden is read by moving freezegun's clock.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from sqsloops.jobs import Envelope, Retry, current_job, job
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.states import CANCELLED, DEAD, RETRYING, RUNNING, SUCCEEDED
from sqsloops.jobs.store import JobRecord, JobStore, KeyScope
from sqsloops.loop import TIME_LEFT, LoopResult
from sqsloops.registry import QueueConfig
from sqsloops.settings import Settings
from tests.conftest import Clients
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock
from tests.fixtures.loop_kit import LogRecords, LoopHarness, capture_logs, throttle
from tests.functional.jobs.conftest import JOBS_TABLE

HANDLER = f"jobs:{__name__}"
CALLS: dict[str, list[int]] = defaultdict(list)  # job name -> the attempt number of each call
SEEN: dict[str, Any] = {}  # what a job observed while it ran
STORES: list[JobStore] = []  # the test's store, for jobs that look at their own key
CLOCKS: list[FakeClock] = []  # the loop's clock, for jobs that take time


def _called() -> int:
    context = current_job()
    CALLS[context.job].append(context.attempt)
    return context.attempt


@job
def add(a: int, b: int) -> dict[str, int]:
    _called()
    return {"sum": a + b}


@job(retries=3, backoff=("10s", "1m", "10m"))
def always_fails(n: int) -> None:
    _called()
    raise RuntimeError(f"boom {n}")


@job(retries=5)
def asks_for_later() -> str:
    if _called() == 1:
        raise Retry(in_s=30, reason="the API said come back")
    return "done"


@job(retries=5, non_retryable=ValueError)
def refuses() -> None:
    _called()
    raise ValueError("this input will never work")


@job(retries=1, backoff=("0s",))
def fails_twice() -> None:
    _called()
    raise RuntimeError("still broken")


@job(timeout="1s", retries=0)
def stuck() -> None:
    _called()
    time.sleep(30)


@job(timeout="4s")
def takes_three_seconds() -> str:
    _called()
    CLOCKS[0].advance(3)  # the loop's clock: three of the invocation's seconds go by
    return "done"


@job
def looks_at_its_row() -> None:
    time.sleep(0.3)  # past RUNNING_MARK_AFTER_S, which the test lowers to 0.05 s
    record = STORES[0].get(current_job().id)
    SEEN["state while running"] = record.state if record is not None else None


@job(unique="until_started", key="order-{n}")
def unique_until_started(n: int) -> None:
    _called()
    SEEN["claimed_by_other"] = (
        STORES[0].claim_key("unique_until_started", f"order-{n}", job_id="other", scope=KeyScope.UNTIL_STARTED).claimed
    )


@job(unique="until_done", key="order-{n}")
def unique_until_done(n: int) -> None:
    _called()
    SEEN["claimed_by_other"] = (
        STORES[0].claim_key("unique_until_done", f"order-{n}", job_id="other", scope=KeyScope.UNTIL_DONE).claimed
    )


@job(track=False, retries=2, backoff=("5s",))
def untracked_flaky() -> int:
    if _called() < 2:
        raise RuntimeError("first try fails")
    return 1


@job(track=False, retries=1, backoff=("0s",))
def untracked_broken() -> None:
    _called()
    raise RuntimeError("never works")


@dataclasses.dataclass
class World:
    """A loop on a queue registered with this module's jobs, its Jobs table, and moto's wall clock under freezegun."""

    aws: Clients
    loops: LoopHarness
    store: JobStore
    queue: MadeQueue
    frozen: FrozenDateTimeFactory
    _next: dict[str, Any] | None = None

    def send(
        self, name: str, *args: Any, key: str | None = None, id: str | None = None, track: bool = True, **kwargs: Any
    ) -> Envelope:
        """What the enqueue client does: the queued row (tracked jobs), then the message."""
        now = self.loops.clock.now()
        envelope = Envelope.create(name, args, kwargs, now=datetime.fromtimestamp(now, tz=UTC), key=key, id=id)
        if track:
            assert self.store.create(envelope.id, name, enqueued_at=now, key=key)
        self.aws.sqs.send_message(QueueUrl=self.queue.url, MessageBody=envelope.to_json())
        return envelope

    def run(self, budget_s: float = 5.0) -> LoopResult:
        """One invocation of the loop (the next hop of the same loop each time)."""
        token = self.loops.tokens.list(self.queue.url)[0]
        result = self.loops.run(token, budget_s=budget_s, payload=self._next)
        assert result.reason == TIME_LEFT, result
        self._next = self.loops.launcher.started[-1].payload()
        return result

    def row(self, envelope: Envelope) -> JobRecord:
        record = self.store.get(envelope.id)
        assert record is not None
        return record

    def hidden_for_s(self, seconds: float) -> bool:
        """The queue's messages, hidden when the loop settled them, are still hidden half of `seconds` later and
        visible again just after `seconds`. Wall time ticks on under freeze_time (moto needs it) and the loop ran
        for a while since it settled them, so "just before `seconds`" would depend on how fast this machine is; the
        exact delay is asserted on the job's row (run_at - updated_at)."""
        self.frozen.tick(seconds / 2)
        before = self.loops.visible(self.queue.url)
        self.frozen.tick(seconds / 2 + 1.0)
        return before == 0 and self.loops.visible(self.queue.url) > 0

    def dead_letters(self) -> list[dict[str, Any]]:
        return [
            json.loads(body) if body.startswith("{") else {"raw": body}
            for body in self.loops.bodies(self.queue.dlq_url)
        ]


@pytest.fixture
def frozen() -> Iterator[FrozenDateTimeFactory]:
    # tick: wall time also moves on its own, as moto's "visible after 0 s" needs (it compares strictly)
    with freeze_time(tick=True) as factory:
        yield factory


@pytest.fixture
def logs() -> Iterator[LogRecords]:
    with capture_logs() as records:
        yield records


@pytest.fixture
def world(
    aws: Clients,
    settings: Settings,
    jobs_table: str,
    make_queue: Callable[..., MadeQueue],
    monkeypatch: pytest.MonkeyPatch,
    frozen: FrozenDateTimeFactory,
) -> Iterator[World]:
    CALLS.clear()
    SEEN.clear()
    loops = LoopHarness.create(aws, settings, monkeypatch)
    root = JobsRoot(dataclasses.replace(settings, jobs_table=jobs_table), clients=aws, clock=loops.clock)
    loops.dispatchers = root.dispatchers  # the composition root's wiring: core kinds and jobs:
    store = root.job_store
    assert store is not None
    STORES[:] = [store]
    CLOCKS[:] = [loops.clock]
    queue = make_queue("jobs", max_receive_count=100)  # a safety net, never the retry policy
    loops.register(queue.url, HANDLER)
    loops.tokens.create(queue.url)
    yield World(aws=aws, loops=loops, store=store, queue=queue, frozen=frozen)
    STORES.clear()
    CLOCKS.clear()


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_a_job_runs_once_its_result_and_state_are_stored_and_its_metrics_written(
    world: World, logs: LogRecords, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a queued job
    envelope = world.send("add", 2, 3)

    # When the loop runs
    result = world.run()

    # Then it ran once, succeeded with its result, and its message is gone
    assert CALLS["add"] == [1]
    row = world.row(envelope)
    assert (row.state, row.attempts, json.loads(row.result or "null")) == (SUCCEEDED, 1, {"sum": 5})
    assert result.processed == 1
    assert world.loops.depth(world.queue.url) == 0
    # And one EMF line for the job carries its count, duration and start latency
    (emf,) = [line for line in emf_lines(capsys.readouterr().out) if line.get("job") == "add"]
    assert emf["JobSucceeded"] == [1.0]
    assert emf["JobFailed"] == [0.0]  # the failure rate's other series, so the alarm's ratio never lacks one
    assert "JobDurationMs" in emf
    assert "JobStartLatencyMs" in emf
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "sqsloops/jobs"


def test_a_job_due_later_is_held_but_its_schedules_delivery_runs_whatever_the_clock_says(world: World) -> None:
    # Given a job due in an hour sent straight to the queue, and the same job as its one-time schedule delivers it
    # (the embedded AWS compresses at(): the delivery comes while the runner's clock still says "an hour to go")
    now = world.loops.clock.now()
    due = datetime.fromtimestamp(now + 3600, tz=UTC)
    early = Envelope.create("add", (1, 1), {}, now=datetime.fromtimestamp(now, tz=UTC), run_at=due)
    delivered = Envelope.create("add", (2, 2), {}, now=datetime.fromtimestamp(now, tz=UTC), run_at=due).for_schedule()
    for envelope in (early, delivered):
        assert world.store.create(envelope.id, "add", state="scheduled", enqueued_at=now, run_at=due.timestamp())
        world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody=envelope.to_json())

    # When the loop runs
    world.run()

    # Then the scheduled delivery ran, and the early one is held (not run, no attempt spent)
    assert world.row(delivered).state is SUCCEEDED
    assert json.loads(world.row(delivered).result or "null") == {"sum": 4}
    assert CALLS["add"] == [1]
    assert world.row(early).attempts == 0
    assert world.loops.depth(world.queue.url) == 1


def test_a_job_whose_timeout_no_longer_fits_the_invocation_waits_for_the_next_one_without_spending_an_attempt(
    world: World,
) -> None:
    # Given two jobs with a 4 s timeout that take 3 s each, and an invocation with 5 s of work before its reserve
    first, second = world.send("takes_three_seconds"), world.send("takes_three_seconds")

    # When the loop runs them
    result = world.run(budget_s=5)

    # Then the first ran; the second was not started with 2 s left (it could overrun the hand-over): no attempt
    # spent, its message visible again, and the loop handed over at once rather than receive it again and again
    assert CALLS["takes_three_seconds"] == [1]
    rows = sorted((world.row(e).state.value, world.row(e).attempts) for e in (first, second))
    assert rows == [("queued", 0), ("succeeded", 1)]
    assert (result.batches, result.processed, result.recursed) == (1, 1, True)
    assert world.loops.visible(world.queue.url) == 1
    # And the next invocation, with its whole time, runs it on its first attempt
    world.run(budget_s=5)
    assert CALLS["takes_three_seconds"] == [1, 1]
    assert {world.row(e).state for e in (first, second)} == {SUCCEEDED}


def test_a_timeout_longer_than_any_invocation_runs_anyway(world: World) -> None:
    # Given a job whose 60 s timeout no invocation of this (time-compressed) function could fit
    envelope = world.send("add", 1, 2)

    # When a loop with 5 s of work runs it, it runs (holding it would hold it forever)
    world.run(budget_s=5)

    assert world.row(envelope).state is SUCCEEDED


def test_a_batch_of_tracked_jobs_reads_its_rows_at_once_and_writes_them_at_once(world: World) -> None:
    # Given ten queued jobs, and the Jobs table's requests counted
    envelopes = [world.send("add", n, n) for n in range(10)]
    calls: list[str] = []
    for operation in ("BatchGetItem", "GetItem", "UpdateItem", "PutItem", "BatchWriteItem"):
        world.aws.dynamodb.meta.events.register(
            f"before-call.dynamodb.{operation}",
            lambda params, op=operation, **_: (
                calls.append(op)
                if json.loads(params["body"]).get("TableName", JOBS_TABLE) == JOBS_TABLE or op.startswith("Batch")
                else None
            ),
        )

    # When one loop runs them (one receive of 10)
    world.run()
    made = sorted(calls)

    # Then their rows were read in one request, and written in one: each job's start and success as one row write
    assert made == ["BatchGetItem", "BatchWriteItem"]
    assert {world.row(e).state for e in envelopes} == {SUCCEEDED}
    assert {world.row(e).attempts for e in envelopes} == {1}
    assert all(world.row(e).started_at is not None for e in envelopes)


def test_rows_the_batch_write_cannot_take_are_written_one_by_one(world: World) -> None:
    # Given the Jobs table refusing the batch's write of its rows (throttled past every resend)
    envelopes = [world.send("add", n, n) for n in range(3)]
    refused = throttle(world.aws.dynamodb, "dynamodb.BatchWriteItem", times=100)

    world.run()

    # Then each row was written on its own, with its condition: nothing ran twice, nothing is left queued
    assert len(refused) >= 1
    assert CALLS["add"] == [1, 1, 1]
    assert {world.row(e).state for e in envelopes} == {SUCCEEDED}


def test_a_job_that_runs_long_is_seen_running_while_it_runs(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sqsloops.jobs.execution.RUNNING_MARK_AFTER_S", 0.05)
    envelope = world.send("looks_at_its_row")

    world.run()

    assert SEEN["state while running"] is RUNNING
    assert (world.row(envelope).state, world.row(envelope).attempts) == (SUCCEEDED, 1)


def test_retry_in_s_sets_the_delay_and_the_next_attempt_succeeds(world: World, logs: LogRecords) -> None:
    # Given a job that asks to be retried in 30 s on its first attempt
    envelope = world.send("asks_for_later")

    # When the loop runs
    world.run()

    # Then the job is retrying, due in 30 s, and its message stays hidden exactly that long
    row = world.row(envelope)
    assert (row.state, row.attempts) == (RETRYING, 1)
    assert row.run_at == pytest.approx(row.updated_at + 30)
    assert "Retry" in (row.last_error or "")
    assert world.hidden_for_s(30)
    # And every runner log line about it names the job and its id
    lines = [line for line in logs.lines if line.get("message") == "job failed; it will be retried"]
    assert lines
    assert all((line["job"], line["job_id"]) == ("asks_for_later", envelope.id) for line in lines)

    # When it comes back
    world.run()

    # Then attempt 2 succeeds
    assert CALLS["asks_for_later"] == [1, 2]
    assert (world.row(envelope).state, world.row(envelope).attempts) == (SUCCEEDED, 2)


def test_the_backoff_schedule_spaces_the_attempts_and_the_last_one_makes_the_job_dead(world: World) -> None:
    # Given a job that always fails, with retries=3 and a ("10s", "1m", "10m") schedule
    envelope = world.send("always_fails", 7)
    delays: list[float] = []

    # When the loop runs, and runs again each time the message reappears
    for expected_s in (10, 60, 600):
        world.run()
        row = world.row(envelope)
        assert row.state is RETRYING
        assert row.run_at is not None
        delays.append(round(row.run_at - row.updated_at))
        assert world.hidden_for_s(expected_s)
    world.run()

    # Then the attempts waited the schedule, and after the 4th the job is dead, kept with its error and traceback
    assert delays == [10, 60, 600]
    assert CALLS["always_fails"] == [1, 2, 3, 4]
    row = world.row(envelope)
    assert (row.state, row.attempts) == (DEAD, 4)
    assert row.last_error == "RuntimeError: boom 7"
    assert "raise RuntimeError" in (row.traceback or "")
    # And its message is in the DLQ (moved by the runner, not by maxReceiveCount), the queue empty
    assert [letter["id"] for letter in world.dead_letters()] == [envelope.id]
    assert world.loops.depth(world.queue.url) == 0


def test_the_last_retry_spent_makes_the_job_dead(world: World) -> None:
    # Given a job with one retry and no delay, that always fails
    envelope = world.send("fails_twice")

    # When the loop runs
    world.run()

    # Then it ran twice, is dead after attempt 2 of 2, and sits in the DLQ
    assert CALLS["fails_twice"] == [1, 2]
    assert (world.row(envelope).state, world.row(envelope).attempts) == (DEAD, 2)
    assert [letter["id"] for letter in world.dead_letters()] == [envelope.id]


def test_a_non_retryable_error_makes_the_job_dead_at_once(world: World) -> None:
    envelope = world.send("refuses")

    world.run()

    assert CALLS["refuses"] == [1]
    row = world.row(envelope)
    assert (row.state, row.attempts, row.last_error) == (DEAD, 1, "ValueError: this input will never work")
    assert [letter["id"] for letter in world.dead_letters()] == [envelope.id]


def test_malformed_and_unknown_messages_go_to_the_dlq_with_their_reason(world: World, logs: LogRecords) -> None:
    # Given a body that is not JSON, an envelope missing fields, and one for a job this module does not declare
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody="{not json")
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody='{"v": 1, "id": "x"}')
    now = datetime.fromtimestamp(world.loops.clock.now(), tz=UTC)
    unknown = Envelope.create("renamed_job", [], {}, now=now)
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody=unknown.to_json())

    # When the loop runs
    result = world.run()

    # Then all three are in the DLQ, at once (never retried), and the queue is empty
    assert result.failed == 3
    assert len(world.loops.bodies(world.queue.dlq_url)) == 3
    assert world.loops.depth(world.queue.url) == 0
    reasons = " | ".join(str(reason) for reason in logs.with_field("reason"))
    assert "malformed job envelope: not JSON" in reasons
    assert "missing field(s)" in reasons
    assert f"unknown job 'renamed_job': {HANDLER} declares" in reasons


def test_a_cancelled_job_is_skipped_and_its_message_deleted(world: World) -> None:
    # Given a job cancelled after it was enqueued
    envelope = world.send("add", 1, 1)
    world.store.cancel(envelope.id)

    # When the loop runs
    world.run()

    # Then it did not run, stays cancelled, and its message is gone (not in the DLQ)
    assert CALLS["add"] == []
    assert world.row(envelope).state is CANCELLED
    assert world.loops.depth(world.queue.url) == 0
    assert world.dead_letters() == []


def test_an_until_started_key_is_free_once_the_job_starts(world: World) -> None:
    # Given a unique job whose key was claimed at enqueue
    claim = world.store.claim_key("unique_until_started", "order-5", job_id="job-5", scope=KeyScope.UNTIL_STARTED)
    assert claim.claimed
    envelope = world.send("unique_until_started", 5, key="order-5", id="job-5")

    # When it runs
    world.run()

    # Then, while it ran, another job could claim its key already
    assert SEEN["claimed_by_other"] is True
    assert world.row(envelope).state is SUCCEEDED


def test_an_until_done_key_is_held_while_the_job_runs_and_free_after(world: World) -> None:
    assert world.store.claim_key("unique_until_done", "order-9", job_id="job-9", scope=KeyScope.UNTIL_DONE).claimed
    envelope = world.send("unique_until_done", 9, key="order-9", id="job-9")

    world.run()

    # While it ran its key was still its own; once it is done the key is free
    assert SEEN["claimed_by_other"] is False
    assert world.row(envelope).state is SUCCEEDED
    assert world.store.claim_key("unique_until_done", "order-9", job_id="next", scope=KeyScope.UNTIL_DONE).claimed


def test_a_stuck_job_is_stopped_at_its_timeout_and_the_loop_carries_on(world: World) -> None:
    # Given a job that would sleep 30 s with a 1 s timeout, queued before a quick one
    stuck_job = world.send("stuck")
    quick = world.send("add", 1, 2)

    # When the loop runs
    result = world.run()

    # Then the stuck job was stopped and counted as a failed attempt (dead: it has no retries), and the loop went on
    row = world.row(stuck_job)
    assert (row.state, row.attempts) == (DEAD, 1)
    assert "JobTimeoutError: the job ran past its 1 s timeout and was stopped" in (row.last_error or "")
    assert world.row(quick).state is SUCCEEDED
    assert result.reason == TIME_LEFT
    assert [letter["id"] for letter in world.dead_letters()] == [stuck_job.id]


def test_a_throttled_jobs_table_hands_the_message_back_without_spending_an_attempt(world: World) -> None:
    # Given a job whose start hits DynamoDB throttling twice: the batch's read of its rows, then the job's own
    # start that the runner falls back to
    envelope = world.send("add", 4, 4)
    table: dict[str, str] = {}

    def note_table(params: dict[str, Any], **_: Any) -> None:  # runs before the injection: which table is called
        table["name"] = json.loads(params["body"]).get("TableName", "")

    world.aws.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", note_table)
    reads = throttle(world.aws.dynamodb, "dynamodb.BatchGetItem", times=2)
    starts = throttle(world.aws.dynamodb, "dynamodb.UpdateItem", times=2, when=lambda: table.get("name") == JOBS_TABLE)

    # When the loop runs (the queue's backoff is 0 s: the message comes straight back)
    world.run()

    # Then it was handed back twice without running, then ran once: attempt 1 of its budget, not 3
    assert (len(reads), len(starts)) == (2, 2)
    assert CALLS["add"] == [1]
    assert (world.row(envelope).state, world.row(envelope).attempts) == (SUCCEEDED, 1)


def test_an_untracked_retry_is_a_new_message_carrying_its_attempt(world: World) -> None:
    # Given an untracked job that fails on its first attempt, with a 5 s backoff
    envelope = world.send("untracked_flaky", track=False)

    # When the loop runs
    world.run()

    # Then the Jobs table holds nothing of it, and the queue holds one copy, delayed 5 s, with attempt 1 spent
    assert world.store.get(envelope.id) is None
    assert CALLS["untracked_flaky"] == [1]
    assert world.hidden_for_s(5)
    (body,) = world.loops.bodies(world.queue.url)
    assert (json.loads(body)["id"], json.loads(body)["attempt"]) == (envelope.id, 1)
    world.frozen.tick(60)  # what bodies() received is visible again

    # When it comes back, it runs as attempt 2, succeeds, and nothing is left
    world.run()
    assert CALLS["untracked_flaky"] == [1, 2]
    assert world.loops.depth(world.queue.url) == 0
    assert world.dead_letters() == []


def test_an_untracked_job_out_of_retries_is_dead_in_the_dlq(world: World) -> None:
    envelope = world.send("untracked_broken", track=False)

    world.run()

    assert CALLS["untracked_broken"] == [1, 2]
    assert [(letter["id"], letter["attempt"]) for letter in world.dead_letters()] == [(envelope.id, 1)]
    assert world.loops.depth(world.queue.url) == 0


def test_a_stack_without_a_jobs_table_fails_tracked_jobs_with_why(
    aws: Clients, settings: Settings, make_queue: Callable[..., MadeQueue], logs: LogRecords
) -> None:
    # Given the composition root of a stack with no Jobs table
    root = JobsRoot(settings, clients=aws)
    assert root.job_store is None
    queue = make_queue("jobs", max_receive_count=100)
    config = root.registry.create(QueueConfig(queue_url=queue.url, handler=HANDLER))

    # When its dispatcher for a jobs: registration runs a batch
    outcome = root.dispatchers.for_config(config).dispatch([{"messageId": "m1", "body": "{}"}])

    # Then the message fails (to be retried, then the DLQ), saying which setting is missing
    (failure,) = outcome.failed
    assert "SQSLOOPS_JOBS_TABLE" in failure.reason
    assert not failure.dead


def test_the_jobs_table_setting_is_read_from_the_environment_and_the_outputs() -> None:
    env = {"SQSLOOPS_QUEUES_TABLE": "q", "SQSLOOPS_LOOPS_TABLE": "l", "SQSLOOPS_JOBS_TABLE": "j"}
    assert Settings.from_env(env).jobs_table == "j"
    outputs = {
        "QueuesTableName": "q",
        "LoopsTableName": "l",
        "ProcessFunctionName": "p",
        "ScaleUpTopicArn": "arn:up",
        "ScaleDownTopicArn": "arn:down",
    }
    assert Settings.from_outputs("s", {**outputs, "JobsTableName": "j"}).jobs_table == "j"
    assert Settings.from_outputs("s", outputs).jobs_table == ""  # optional: a stack without the job layer
