"""The SNS entry topic on the embedded AWS: what the template deploys for it (topic, Unroutable queue, its catch-all
subscription, queue policy and alarm: created by provisioning where moto's CloudFormation skips them), then a jobs
module applied as `jobs apply` does, bare messages published from outside running on the deployed loop, unknown and
unnamed ones landing in Unroutable, and `jobs redrive --unroutable` (through the ops code the CLI calls) re-routing
one once its job exists."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sqsloops.jobs.definition import jobs_in
from sqsloops.jobs.states import SUCCEEDED
from sqsloops.local.server import EmbeddedAws
from sqsloops.ops.jobs_apply import JobsApply
from sqsloops.ops.jobs_entry import EntryRoutes
from sqsloops.ops.root import OpsRoot
from tests.e2e import entry_jobs
from tests.e2e.conftest import STACK, eventually

pytestmark = pytest.mark.e2e

MODULE = entry_jobs.__name__
JOBS = jobs_in(entry_jobs)


@pytest.fixture(scope="module")
def root(embedded_aws: EmbeddedAws) -> OpsRoot:
    return embedded_aws.root()


@pytest.fixture(scope="module")
def outputs(embedded_aws: EmbeddedAws) -> dict[str, str]:
    return embedded_aws.outputs


@pytest.fixture(scope="module")
def routes(root: OpsRoot) -> EntryRoutes:
    return EntryRoutes(settings=root.settings, sns=root.clients.sns, sqs=root.clients.sqs)


@pytest.fixture(scope="module")
def applied(root: OpsRoot) -> Iterator[JobsApply]:
    """The module's first job applied (entry_late comes later); the job queues deregistered at the end."""
    applier = JobsApply.for_root(root)
    applier.apply(applier.plan(MODULE, {"entry_greet": JOBS["entry_greet"]}))
    yield applier
    root.clients.sqs.purge_queue(QueueUrl=root.settings.unroutable_queue_url)  # what the test left there
    for name in JOBS:
        url = root.clients.sqs.get_queue_url(QueueName=f"{STACK}-{name}")["QueueUrl"]
        if root.admin.registry.find(url) is not None:
            root.admin.deregister(url)


def publish(embedded_aws: EmbeddedAws, body: str, **attributes: str) -> None:
    embedded_aws.client("sns").publish(
        TopicArn=embedded_aws.settings.entry_topic_arn,
        Message=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": v} for name, v in attributes.items()},
    )


def succeeded(root: OpsRoot, job_id: str) -> Any:
    store = root.job_store
    assert store is not None
    row = store.get(job_id)
    return row if row is not None and row.state is SUCCEEDED else None


def test_deploy_creates_the_topic_the_unroutable_queue_its_filtered_subscription_policy_and_alarm(
    embedded_aws: EmbeddedAws, outputs: dict[str, str]
) -> None:
    sns, sqs = embedded_aws.client("sns"), embedded_aws.client("sqs")
    topic = outputs["EntryTopicArn"]
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"].get("KmsMasterKeyId")  # encrypted
    unroutable_url = outputs["UnroutableQueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=unroutable_url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true"
    [delivers] = [s for s in json.loads(attributes["Policy"])["Statement"] if s["Sid"] == "EntryTopicDelivers"]
    assert delivers["Principal"] == {"Service": "sns.amazonaws.com"}
    assert delivers["Condition"] == {"ArnEquals": {"aws:SourceArn": topic}}
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    [catch_all] = [s for s in subscriptions if s["Endpoint"] == attributes["QueueArn"]]
    sub = sns.get_subscription_attributes(SubscriptionArn=catch_all["SubscriptionArn"])["Attributes"]
    assert sub["RawMessageDelivery"] == "true"
    assert {"exists": False} in json.loads(sub["FilterPolicy"])["job"]  # (apply narrows its anything-but)
    [alarm] = embedded_aws.client("cloudwatch").describe_alarms(AlarmNames=[f"{STACK}-unroutable"])["MetricAlarms"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": f"{STACK}-unroutable"}]
    assert alarm["AlarmActions"] == [embedded_aws.settings.alerts_topic_arn]


def test_a_bare_message_runs_on_the_loop_the_rest_lands_in_unroutable_and_is_rerouted_once_its_job_exists(
    embedded_aws: EmbeddedAws, root: OpsRoot, applied: JobsApply, routes: EntryRoutes
) -> None:
    run = uuid.uuid4().hex[:8]
    # When a job's args are published with its name (and an id), then an unknown name, no name, and a job not
    # applied yet
    publish(embedded_aws, '["ada"]', job="entry_greet", id=f"greet-{run}")
    publish(embedded_aws, json.dumps([run]), job=f"no_such_job_{run}")
    publish(embedded_aws, json.dumps({"run": run}))
    publish(embedded_aws, "[21]", job="entry_late", id=f"late-{run}")
    # Then the known one ran on the deployed loop: its row succeeded with its result
    row = eventually(lambda: succeeded(root, f"greet-{run}"), what="the published job succeeded")
    assert row.result == '"hello ada"'

    # And the other three are in Unroutable, listed by `jobs unroutable`'s code
    def listed() -> list[Any]:
        found = routes.unroutable(now=root.clock.now())
        mine = [item for item in found if run in item.body_head or item.job == "entry_late"]
        return mine if len(mine) == 3 else []

    assert sorted(item.job or "" for item in eventually(listed, what="three messages in Unroutable")) == [
        "",
        "entry_late",
        f"no_such_job_{run}",
    ]
    # When entry_late is applied, then Unroutable is redriven
    applied.apply(applied.plan(MODULE, JOBS))
    rerouted = routes.redrive_unroutable(dynamodb=root.clients.dynamodb, jobs_table=root.settings.jobs_table)
    # Then that one was re-published and runs; the unknown and the unnamed ones are left, saying why
    assert len(rerouted.published) == 1, rerouted
    assert rerouted.failed == {}
    late = eventually(lambda: succeeded(root, f"late-{run}"), what="the rerouted job succeeded")
    assert late.result == "42"
    assert sorted(rerouted.left.values()) == [
        "no job attribute: publish it again with one (or delete it)",
        f"no job is named 'no_such_job_{run}' yet: `jobs apply` it first",
    ]
