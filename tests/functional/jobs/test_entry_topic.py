"""The SNS entry topic on moto: apply's routes (filter per job queue, the Unroutable catch-all, the router past the
cap), re-routing with `redrive --unroutable`, and the runner's wrapping of bare messages (bad ones to the DLQ)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from sqsloops.clock import ManualClock
from sqsloops.dispatch import to_lambda_record
from sqsloops.jobs import job
from sqsloops.jobs.catalog import CatalogReader
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.entry import ROUTER_HANDLER, EntryRouter
from sqsloops.jobs.execution import DEAD_ACTION, SUCCEEDED_ACTION, JobExecutor
from sqsloops.jobs.states import SUCCEEDED
from sqsloops.jobs.store import JobStore
from sqsloops.ops.jobs_apply import JobsApply
from sqsloops.ops.jobs_entry import EntryRoutes, catch_all_filter, filter_combinations, job_filter
from sqsloops.settings import Settings
from tests.conftest import REGION, Clients
from tests.functional.jobs.apply_kit import APP, MODULE, STACK, JobStack, count_writes, job_stack

RAN: list[tuple[str, Any]] = []


@job
def greet(name: str, punctuation: str = "!") -> str:
    RAN.append(("greet", (name, punctuation)))
    return f"hello {name}{punctuation}"


@job(track=False)
def ping(n: int) -> None:
    RAN.append(("ping", n))


@job(unique="until_done", key="k-{n}")
def once(n: int) -> None:
    RAN.append(("once", n))


@job(unique="until_done")
def once_any(n: int) -> None:
    RAN.append(("once_any", n))


RUNNABLE: dict[str, JobFunction[..., Any]] = {fn.name: fn for fn in (greet, ping, once, once_any)}


@pytest.fixture
def stack(aws: Clients, settings: Settings, clock: ManualClock) -> JobStack:
    """The job stack with the template's entry topic, Unroutable queue and catch-all subscription."""
    base = job_stack(aws, settings, clock)
    topic = aws.sns.create_topic(Name=f"{STACK}-entry")["TopicArn"]
    url = aws.sqs.create_queue(QueueName=f"{STACK}-unroutable")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps(catch_all_filter([]))},
    )
    full = replace(base.settings, entry_topic_arn=topic, unroutable_queue_url=url)
    return JobStack(aws, full, base.root, applier(base, full), clock)


def applier(base: JobStack, settings: Settings, *, cap: int = 150) -> JobsApply:
    aws = base.aws
    return JobsApply(
        settings=settings,
        admin=base.root.admin,
        sqs=aws.sqs,
        cloudwatch=aws.cloudwatch,
        scheduler=aws.scheduler,
        dynamodb=aws.dynamodb,
        sns=aws.sns,
        entry_cap=cap,
    )


def publish(stack: JobStack, body: str, **attributes: str) -> None:
    stack.aws.sns.publish(
        TopicArn=stack.settings.entry_topic_arn,
        Message=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )


def drain(stack: JobStack, name: str) -> list[dict[str, Any]]:
    """Every message in the queue (received with its attributes, then deleted)."""
    url = stack.url(name)
    found: list[dict[str, Any]] = []
    while True:
        messages = stack.aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(dict(message))
            stack.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def jobs_of(messages: list[dict[str, Any]]) -> list[str | None]:
    return sorted(
        (m.get("MessageAttributes", {}).get("job", {}).get("StringValue") for m in messages), key=lambda j: j or ""
    )


def entry_steps(plan: Any) -> list[tuple[str, str, str]]:
    kinds = {"subscription", "queue-policy", "unroutable", "router-queue"}
    return [(s.action, s.kind, s.name) for s in plan.steps if s.kind in kinds]


# ---------------------------------------------------------------- apply: the routes


def test_apply_routes_each_job_by_its_filter_and_everything_else_to_unroutable(stack: JobStack) -> None:
    # Given the four jobs applied
    plan = stack.run()
    # Then each standard queue has its subscription and queue policy; the FIFO job has none, and a warning
    assert ("create", "subscription", f"{STACK}-send_email") in entry_steps(plan)
    assert ("update", "unroutable", f"{STACK}-unroutable") in entry_steps(plan)
    assert not [s for s in plan.steps if s.kind == "subscription" and s.name.endswith(".fifo")]
    assert any("FIFO" in warning and "charge" in warning for warning in plan.warnings)
    policy = json.loads(stack.attributes(f"{STACK}-resize")["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": stack.settings.entry_topic_arn}}
    # When messages are published: known names, an unknown name, a FIFO job's name, no job attribute at all
    publish(stack, "[1]", job="send_email")
    publish(stack, '["a.png"]', job="resize")
    publish(stack, "[2]", job="no_such_job")
    publish(stack, '["c1", 5]', job="charge")
    publish(stack, "[3]")
    # Then each known one is in its queue only, raw, with its attributes; the rest are in Unroutable
    [email] = drain(stack, f"{STACK}-send_email")
    assert email["Body"] == "[1]"
    assert email["MessageAttributes"]["job"]["StringValue"] == "send_email"
    assert jobs_of(drain(stack, f"{STACK}-resize")) == ["resize"]
    assert jobs_of(drain(stack, f"{STACK}-unroutable")) == [None, "charge", "no_such_job"]


def test_a_second_apply_changes_nothing(stack: JobStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the jobs applied once
    stack.run()
    counter = count_writes(monkeypatch)
    # When applied again
    with counter.on() as writes:
        plan = stack.run()
    # Then every entry step is unchanged and nothing was written
    assert {action for action, _, _ in entry_steps(plan)} == {"unchanged"}
    assert writes == []


def test_a_new_job_is_subscribed_before_the_catch_all_shrinks_and_redrive_reroutes(stack: JobStack) -> None:
    # Given three of the jobs applied, and a message for the fourth (not applied yet) published
    stack.run({name: fn for name, fn in APP.items() if name != "send_email"})
    publish(stack, "[7]", job="send_email", id="welcome-7")
    publish(stack, "[8]", job="still_unknown")
    assert len(stack.apply.plan(MODULE, APP).steps) > 0
    # When the module with the fourth job is applied
    plan = stack.run()
    # Then its subscription comes before the catch-all's update in the plan
    order = [(s.kind, s.name) for s in plan.steps]
    assert order.index(("subscription", f"{STACK}-send_email")) < order.index(("unroutable", f"{STACK}-unroutable"))
    # And redrive --unroutable re-publishes what now has a job, and leaves the rest, saying why
    routes = EntryRoutes(settings=stack.settings, sns=stack.aws.sns, sqs=stack.aws.sqs)
    listed = routes.unroutable(now=stack.clock.now() + 1e10)
    assert sorted(item.job or "" for item in listed) == ["send_email", "still_unknown"]
    assert all(item.body_head in ("[7]", "[8]") for item in listed)
    done = routes.redrive_unroutable(dynamodb=stack.aws.dynamodb, jobs_table=stack.settings.jobs_table)
    assert len(done.published) == 1
    assert [why for why in done.left.values()] == ["no job is named 'still_unknown' yet: `jobs apply` it first"]
    [rerouted] = drain(stack, f"{STACK}-send_email")
    assert rerouted["Body"] == "[7]"
    assert rerouted["MessageAttributes"]["id"]["StringValue"] == "welcome-7"
    assert jobs_of(drain(stack, f"{STACK}-unroutable")) == ["still_unknown"]


def test_filter_combinations_count_every_value_of_each_array() -> None:
    assert filter_combinations(job_filter(["a", "b"])) == 2
    assert filter_combinations(catch_all_filter(["a", "b", "c"])) == 4  # three names and exists
    assert filter_combinations({"job": ["a", "b"], "tier": ["x", "y", "z"]}) == 6


def test_past_the_cap_a_router_queue_checks_names_against_the_catalog(stack: JobStack) -> None:
    # Given a cap lower than the names (3 routable jobs + exists = 4 combinations > 3)
    capped = replace(stack, apply=applier(stack, stack.settings, cap=3))
    plan = capped.run()
    # Then the router queue is created, subscribed for every named message, registered with the router handler,
    # and the Unroutable subscription keeps the missing attribute only
    router = f"{STACK}-entry-router"
    assert ("create", "router-queue", router) in entry_steps(plan)
    assert ("create", "subscription", router) in entry_steps(plan)
    assert capped.root.registry.get(capped.url(router)).handler == ROUTER_HANDLER
    # When a known name, an unknown name and no name are published
    publish(capped, "[1]", job="send_email")
    publish(capped, "[2]", job="no_such_job")
    publish(capped, "[3]")
    # Then the missing attribute went to Unroutable directly; both named ones reached the router
    assert jobs_of(drain(capped, f"{STACK}-unroutable")) == [None]
    routed = drain(capped, router)
    assert jobs_of(routed) == ["no_such_job", "send_email"]
    # And the router forwards the unknown one to Unroutable, and drops the known one (its route delivered it)
    reader = CatalogReader(dynamodb=capped.aws.dynamodb, table_name=capped.settings.jobs_table)
    router_fn = EntryRouter(sqs=capped.aws.sqs, catalog=reader, unroutable_url=capped.settings.unroutable_queue_url)
    arn = capped.attributes(router)["QueueArn"]
    forwarded = [router_fn.route(to_lambda_record(m, queue_arn=arn, region=REGION)) for m in routed]
    assert sorted(forwarded) == [False, True]
    [unknown] = drain(capped, f"{STACK}-unroutable")
    assert (unknown["Body"], jobs_of([unknown])) == ("[2]", ["no_such_job"])
    assert jobs_of(drain(capped, f"{STACK}-send_email")) == ["send_email"]
    # And a second apply under the cap changes nothing
    assert {a for a, _, _ in entry_steps(capped.plan())} == {"unchanged"}


# ---------------------------------------------------------------- the runner: bare messages


@pytest.fixture
def executor(aws: Clients, jobs_table: str, clock: ManualClock) -> JobExecutor:
    RAN.clear()
    store = JobStore(table_name=jobs_table, dynamodb=aws.dynamodb, clock=clock)
    return JobExecutor(RUNNABLE, store=store, source="jobs:test", clock=clock)


def delivered(aws: Clients, body: str, **attributes: str) -> dict[str, Any]:
    """A bare message as raw SNS delivery leaves it in a job queue (published to a topic, received from SQS)."""
    topic = aws.sns.create_topic(Name="entry")["TopicArn"]
    url = aws.sqs.create_queue(QueueName="job-queue")["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    aws.sns.publish(
        TopicArn=topic,
        Message=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )
    [message] = aws.sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )["Messages"]
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return to_lambda_record(message, queue_arn=arn, region=REGION)


def run(executor: JobExecutor, record: dict[str, Any]) -> Any:
    from sqsloops.jobs.entry import bare_message

    return executor.run(record["body"], entry=bare_message(record))


def test_a_bare_array_is_the_args_and_the_job_gets_its_row(
    aws: Clients, executor: JobExecutor, store: JobStore
) -> None:
    record = delivered(aws, '["ada"]', job="greet")
    verdict = run(executor, record)
    assert verdict.action == SUCCEEDED_ACTION
    assert RAN == [("greet", ("ada", "!"))]
    # the id is the SQS message id (raw delivery strips SNS's), enqueued_at the delivery's SentTimestamp
    assert verdict.envelope.id == record["messageId"]
    sent_s = int(record["attributes"]["SentTimestamp"]) / 1000
    assert verdict.envelope.enqueued_at.timestamp() == pytest.approx(sent_s)
    row = store.get(record["messageId"])
    assert row is not None
    assert (row.job, row.state, row.result) == ("greet", SUCCEEDED, '"hello ada!"')


def test_a_bare_object_is_the_kwargs_and_an_id_attribute_is_the_job_id(
    aws: Clients, executor: JobExecutor, store: JobStore
) -> None:
    verdict = run(executor, delivered(aws, '{"name": "bob", "punctuation": "?"}', job="greet", id="greet-bob-1"))
    assert verdict.action == SUCCEEDED_ACTION
    assert RAN == [("greet", ("bob", "?"))]
    row = store.get("greet-bob-1")
    assert row is not None
    assert row.state == SUCCEEDED
    # the same id delivered again (SNS is at-least-once) runs once
    again = run(executor, delivered(aws, '{"name": "bob", "punctuation": "?"}', job="greet", id="greet-bob-1"))
    assert again.action == "skipped"
    assert len(RAN) == 1


def test_an_untracked_bare_job_runs_with_no_row(aws: Clients, executor: JobExecutor, store: JobStore) -> None:
    record = delivered(aws, "[5]", job="ping")
    assert run(executor, record).action == SUCCEEDED_ACTION
    assert RAN == [("ping", 5)]
    assert store.get(record["messageId"]) is None


@pytest.mark.parametrize(
    ("body", "attributes", "reason"),
    [
        ("not json", {"job": "greet"}, "not JSON"),
        ('"ada"', {"job": "greet"}, "publish a JSON array"),
        ("[NaN]", {"job": "greet"}, "not JSON"),
        ('["ada"]', {"job": "greet", "id": "has spaces"}, "not a valid job id"),
        ('["ada"]', {"job": "greet", "delay": "10m"}, "no delay"),
        ('["ada"]', {"job": "no such job!"}, "not a valid job name"),
        ('["ada"]', {"job": "unknown_here"}, "unknown job 'unknown_here'"),
        ("[1]", {"job": "once_any"}, "declares no key template"),  # unique: needs a key attribute
        ("[]", {"job": "once"}, "do not fit"),  # its key template cannot be rendered over no args
        ('["ada"]', {"job": "greet", "key": "k"}, "is for unique jobs"),
        ("[1]", {"job": "once", "key": "k" * 513}, "key"),  # over the 512-byte key limit
        ('["a", "b", "c"]', {"job": "greet"}, "do not fit its signature"),
    ],
)
def test_a_bare_message_that_cannot_be_run_goes_to_the_dlq_with_its_reason(
    aws: Clients, executor: JobExecutor, body: str, attributes: dict[str, str], reason: str
) -> None:
    verdict = run(executor, delivered(aws, body, **attributes))
    assert verdict.action == DEAD_ACTION
    assert reason in verdict.reason
    assert RAN == []
