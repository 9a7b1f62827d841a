"""The SNS entry topic's routes, kept by `jobs apply`, and the operator's view of what no route took.

Subscriptions on the entry topic (all SQS, raw delivery, filter on the `job` message attribute):

- one per standard job queue: `{"job": [<the queue's job names>]}`, and a queue policy letting the topic send
  (`sns.amazonaws.com`, `aws:SourceArn` = the topic). An SNS topic cannot deliver to a FIFO queue: FIFO jobs get no
  subscription, so their names stay "unknown" and their messages land in Unroutable (apply warns);
- the catch-all to the Unroutable queue (its subscription is the template's):
  `{"job": [{"exists": false}, {"anything-but": [<every routable name in the catalog>]}]}`. `exists` is listed
  first: the order means nothing to SNS, but moto stops at an anything-but whose attribute is missing.

**Ordering**: SNS applies filter changes within up to 15 minutes, so apply subscribes a new job's queue before it
shrinks the catch-all, and widens the catch-all before it unsubscribes a pruned job's queue. In the window a message
may reach both (a duplicate in Unroutable), never neither.

**The cap**: SNS refuses a filter policy of more than 150 value combinations (the product of each array's values:
here the names plus `exists`). Past it, the catch-all falls back to a router: the Unroutable subscription keeps only
`{"job": [{"exists": false}]}`, and a router queue `<stack>-entry-router` takes every named message
(`{"job": [{"exists": true}]}`); its loop (`python:sqsloops.jobs.entry:route`) checks each name against the catalog
and forwards the unknown ones to Unroutable. moto does not enforce the cap, so the switch is decided here, by
`filter_combinations`, and tested with a lower cap.

`unroutable()` lists the Unroutable queue; `redrive_unroutable()` re-publishes each message whose job now has a
route (same body and attributes) and deletes it only after SNS accepted the publish.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqsloops.errors import ConfigError
from sqsloops.jobs.catalog import CatalogEntry, read_catalog
from sqsloops.jobs.entry import JOB_ATTRIBUTE, ROUTER_HANDLER, string_attributes
from sqsloops.queues import queue_missing
from sqsloops.registry import QueueConfig

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from sqsloops.ops.jobs_apply import Step
    from sqsloops.ops.registration import QueueAdmin
    from sqsloops.settings import Settings

FILTER_COMBINATIONS_MAX = 150  # SNS: the product of each filter array's number of values
ROUTER_QUEUE_SUFFIX = "-entry-router"
ROUTER_MAX_LOOPS = 2
ROUTER_RETENTION_S = 14 * 24 * 3600
UNROUTABLE_SUFFIX = "-unroutable"
BATCH = 10
SCAN_HIDE_S = 60  # an Unroutable message being looked at stays hidden this long at most (handed back at the end)
BODY_HEAD_CHARS = 80
# A subscription's attributes as we set them, compared as SNS reports them.
RAW = "RawMessageDelivery"
FILTER = "FilterPolicy"


def filter_combinations(policy: Mapping[str, Sequence[Any]]) -> int:
    """The value combinations SNS counts in a filter policy: the product of each key's number of values (the
    values of an anything-but count one each)."""
    total = 1
    for values in policy.values():
        count = 0
        for value in values:
            if isinstance(value, Mapping) and "anything-but" in value:
                but = value["anything-but"]
                count += len(but) if isinstance(but, list) else 1
            else:
                count += 1
        total *= max(count, 1)
    return total


def job_filter(names: Iterable[str]) -> dict[str, list[Any]]:
    return {JOB_ATTRIBUTE: sorted(set(names))}


def catch_all_filter(routable: Iterable[str]) -> dict[str, list[Any]]:
    names = sorted(set(routable))
    return {JOB_ATTRIBUTE: [{"exists": False}, {"anything-but": names or [""]}]}


MISSING_ONLY = {JOB_ATTRIBUTE: [{"exists": False}]}
NAMED_ONLY = {JOB_ATTRIBUTE: [{"exists": True}]}


def delivery_policy(queue_arn: str, topic_arn: str) -> dict[str, Any]:
    """The queue policy letting the entry topic (and only it) send to a queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EntryTopicDelivers",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }


@dataclass
class RouteTarget:
    """A job queue the entry topic should deliver to: its name, its URL/ARN (filled in when apply creates it)."""

    name: str
    known: Any  # jobs_apply._Known: .url and .arn, None until the queue exists
    jobs: list[str]
    fifo: bool


@dataclass(frozen=True)
class Unroutable:
    """One message in the Unroutable queue, as `jobs unroutable` shows it."""

    message_id: str
    job: str | None
    age_s: float
    body_head: str


@dataclass(frozen=True)
class Rerouted:
    """What `jobs redrive --unroutable` did: published (and deleted), left (and why), failed."""

    published: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class EntryRoutes:
    """Plans the entry topic's subscriptions for `jobs apply` (steps of its plan), and operates Unroutable."""

    def __init__(
        self,
        *,
        settings: Settings,
        sns: SNSClient,
        sqs: SQSClient,
        admin: QueueAdmin | None = None,
        cap: int = FILTER_COMBINATIONS_MAX,
    ) -> None:
        self._settings = settings
        self._sns = sns
        self._sqs = sqs
        self._admin = admin
        self._cap = cap
        self._topic = settings.entry_topic_arn

    @property
    def enabled(self) -> bool:
        return bool(self._topic)

    # --- planning ---------------------------------------------------------------------------------------------

    def steps(
        self,
        targets: Sequence[RouteTarget],
        *,
        catalog: Mapping[str, CatalogEntry],
        dropped: Iterable[str] = (),
        retiring: Iterable[str] = (),
        warnings: list[str],
    ) -> list[Step]:
        """Subscriptions and queue policies of `targets`, then the catch-all, then the unsubscribes of retiring
        queues (module doc: in this order)."""
        from sqsloops.ops.jobs_apply import Step

        subscriptions = self._subscriptions()
        steps: list[Step] = []
        fifo_jobs = sorted(name for target in targets if target.fifo for name in target.jobs)
        if fifo_jobs:
            warnings.append(
                f"job(s) {', '.join(fifo_jobs)} run on FIFO queues, which an SNS standard topic cannot deliver to:"
                " entry-topic messages for them land in Unroutable (enqueue them through the API or CLI)"
            )
        for target in targets:
            if not target.fifo:
                steps.append(self._policy_step(target))
                steps.append(self._subscription_step(target, subscriptions))
        # Routable: this module's jobs on standard queues (subscribed above), and other jobs of the catalog whose
        # queue is subscribed already. A name without a route stays out of anything-but: never silently dropped.
        gone = set(dropped)
        here = {name for target in targets for name in target.jobs}
        routable = {name for target in targets if not target.fifo for name in target.jobs}
        routable |= {
            name
            for name, entry in catalog.items()
            if name not in gone and name not in here and entry.queue_arn in subscriptions
        }
        steps += self._catch_all_steps(routable, subscriptions)
        for queue_name in sorted(set(retiring)):
            arn = self._arn_of_name(queue_name)
            sub = subscriptions.get(arn) if arn else None
            if sub is not None:
                steps.append(Step("prune", "subscription", queue_name, "queue retired", run=self._unsubscribe(sub)))
        return steps

    def _subscriptions(self) -> dict[str, str]:
        """Endpoint (queue ARN) -> subscription ARN of the topic's SQS subscriptions."""
        found: dict[str, str] = {}
        paginator = self._sns.get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=self._topic):
            for sub in page.get("Subscriptions", []):
                if sub.get("Protocol") == "sqs" and sub.get("SubscriptionArn", "").startswith("arn:"):
                    found[sub["Endpoint"]] = sub["SubscriptionArn"]
        return found

    def _attributes(self, subscription_arn: str) -> dict[str, str]:
        return dict(self._sns.get_subscription_attributes(SubscriptionArn=subscription_arn).get("Attributes", {}))

    def _policy_step(self, target: RouteTarget) -> Step:
        from sqsloops.ops.jobs_apply import Step

        def put() -> None:
            assert target.known.url is not None
            assert target.known.arn is not None
            policy = delivery_policy(target.known.arn, self._topic)
            self._sqs.set_queue_attributes(QueueUrl=target.known.url, Attributes={"Policy": json.dumps(policy)})

        if target.known.url is None:
            return Step("create", "queue-policy", target.name, "entry topic may send", run=put)
        have = self._sqs.get_queue_attributes(QueueUrl=target.known.url, AttributeNames=["Policy"])
        if _same_json(have.get("Attributes", {}).get("Policy"), delivery_policy(target.known.arn, self._topic)):
            return Step("unchanged", "queue-policy", target.name)
        return Step("update", "queue-policy", target.name, "entry topic may send", run=put)

    def _subscription_step(self, target: RouteTarget, subscriptions: Mapping[str, str]) -> Step:
        wanted = job_filter(target.jobs)
        return self._route_step(
            "subscription",
            target.name,
            arn=target.known.arn,
            wanted=wanted,
            subscriptions=subscriptions,
            known=target.known,
        )

    def _route_step(
        self,
        kind: str,
        name: str,
        *,
        arn: str | None,
        wanted: Mapping[str, Any],
        subscriptions: Mapping[str, str],
        known: Any = None,
    ) -> Step:
        """Create the subscription of `arn` with `wanted` as its filter (raw delivery), or update what differs."""
        from sqsloops.ops.jobs_apply import Step

        detail = _describe_filter(wanted)
        sub = subscriptions.get(arn) if arn is not None else None
        if sub is None:

            def subscribe() -> None:
                endpoint = arn if arn is not None else known.arn
                self._sns.subscribe(
                    TopicArn=self._topic,
                    Protocol="sqs",
                    Endpoint=endpoint,
                    Attributes={RAW: "true", FILTER: json.dumps(wanted)},
                    ReturnSubscriptionArn=True,
                )

            return Step("create", kind, name, detail, run=subscribe)
        have = self._attributes(sub)
        changes: dict[str, str] = {}
        if str(have.get(RAW, "")).lower() != "true":
            changes[RAW] = "true"
        if not _same_json(have.get(FILTER), wanted):
            changes[FILTER] = json.dumps(wanted)
        if not changes:
            return Step("unchanged", kind, name)

        def update() -> None:
            for attribute, value in changes.items():
                self._sns.set_subscription_attributes(
                    SubscriptionArn=sub, AttributeName=attribute, AttributeValue=value
                )

        return Step("update", kind, name, detail if FILTER in changes else "raw delivery", run=update)

    def _catch_all_steps(self, routable: set[str], subscriptions: Mapping[str, str]) -> list[Step]:
        from sqsloops.ops.jobs_apply import Step

        unroutable_name = self._settings.stack_name + UNROUTABLE_SUFFIX
        unroutable_arn = self._arn_of_name(unroutable_name)
        if unroutable_arn is None:
            raise ConfigError(f"the stack's Unroutable queue {unroutable_name} does not exist (deploy the template)")
        catch_all = catch_all_filter(routable)
        router_name = self._settings.stack_name + ROUTER_QUEUE_SUFFIX
        router_arn = self._arn_of_name(router_name)
        if filter_combinations(catch_all) <= self._cap:
            steps = [
                self._route_step(
                    "unroutable", unroutable_name, arn=unroutable_arn, wanted=catch_all, subscriptions=subscriptions
                )
            ]
            router_sub = subscriptions.get(router_arn) if router_arn else None
            if router_sub is not None:  # back under the cap: the filter catches again, the router stops taking
                unsubscribe = self._unsubscribe(router_sub)
                steps.append(Step("prune", "subscription", router_name, "router no longer needed", run=unsubscribe))
            return steps
        # Past the cap: the router takes every named message; Unroutable keeps the missing attribute only. The
        # router is subscribed before the catch-all narrows.
        router = _KnownQueue(router_arn, self._url_of_name(router_name))
        steps = [self._router_queue_step(router_name, router)]
        steps.append(
            self._route_step(
                "subscription",
                router_name,
                arn=router.arn,
                wanted=NAMED_ONLY,
                subscriptions=subscriptions,
                known=router,
            )
        )
        steps.append(self._router_registration_step(router_name, router))
        detail = f"{len(routable) + 1} combinations > {self._cap}: router {router_name}"
        step = self._route_step(
            "unroutable", unroutable_name, arn=unroutable_arn, wanted=MISSING_ONLY, subscriptions=subscriptions
        )
        steps.append(Step(step.action, step.kind, step.name, detail if step.run else "", run=step.run))
        return steps

    def _router_queue_step(self, name: str, router: _KnownQueue) -> Step:
        from sqsloops.ops.jobs_apply import Step

        if router.url is not None:
            assert router.arn is not None
            have = self._sqs.get_queue_attributes(QueueUrl=router.url, AttributeNames=["Policy"])
            if _same_json(have.get("Attributes", {}).get("Policy"), delivery_policy(router.arn, self._topic)):
                return Step("unchanged", "router-queue", name)

        def create() -> None:
            attributes = {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(ROUTER_RETENTION_S)}
            router.url = self._sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
            router.arn = self._sqs.get_queue_attributes(QueueUrl=router.url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            policy = json.dumps(delivery_policy(router.arn, self._topic))
            self._sqs.set_queue_attributes(QueueUrl=router.url, Attributes={"Policy": policy})

        return Step("create" if router.url is None else "update", "router-queue", name, "SSE", run=create)

    def _router_registration_step(self, name: str, router: _KnownQueue) -> Step:
        from sqsloops.ops.jobs_apply import Step

        admin = self._admin
        if admin is None:
            return Step("unchanged", "registration", name, "no queue admin: register it by hand")
        if router.url is not None and admin.registry.find(router.url) is not None:
            return Step("unchanged", "registration", name)

        def register() -> None:
            assert router.url is not None
            admin.register(
                QueueConfig(queue_url=router.url, handler=ROUTER_HANDLER, min_loops=0, max_loops=ROUTER_MAX_LOOPS)
            )

        return Step("create", "registration", name, ROUTER_HANDLER, run=register)

    def _unsubscribe(self, subscription_arn: str) -> Callable[[], None]:
        def run() -> None:
            self._sns.unsubscribe(SubscriptionArn=subscription_arn)

        return run

    def _url_of_name(self, name: str) -> str | None:
        try:
            return self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if queue_missing(exc):
                return None
            raise

    def _arn_of_name(self, name: str) -> str | None:
        url = self._url_of_name(name)
        if url is None:
            return None
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # --- the Unroutable queue ---------------------------------------------------------------------------------

    def unroutable_url(self) -> str:
        url = self._settings.unroutable_queue_url or (
            self._url_of_name(self._settings.stack_name + UNROUTABLE_SUFFIX) if self._settings.stack_name else None
        )
        if not url:
            raise ConfigError("the stack has no Unroutable queue: set SQSLOOPS_UNROUTABLE_QUEUE_URL (or --stack NAME)")
        return url

    def unroutable(self, *, now: float, limit: int = 100) -> list[Unroutable]:
        """Up to `limit` messages in the Unroutable queue (looked at, then handed back at once)."""
        found: list[Unroutable] = []

        def look(message: dict[str, Any]) -> bool:
            found.append(_listed(message, now))
            return False

        self._scan(look, limit=limit)
        return found

    def redrive_unroutable(self, *, dynamodb: Any, jobs_table: str) -> Rerouted:
        """Re-publish each Unroutable message whose job now has a route; delete it once SNS accepted it."""
        if not self._topic:
            raise ConfigError("the stack has no entry topic: set SQSLOOPS_ENTRY_TOPIC_ARN (or --stack NAME)")
        catalog = read_catalog(dynamodb, table_name=jobs_table).entries
        published: list[str] = []
        left: dict[str, str] = {}
        failed: dict[str, str] = {}

        def one(message: dict[str, Any]) -> bool:
            message_id = message["MessageId"]
            job = string_attributes(message.get("MessageAttributes", {})).get(JOB_ATTRIBUTE)
            entry = catalog.get(job) if job else None
            if job is None:
                left[message_id] = "no job attribute: publish it again with one (or delete it)"
                return False
            if entry is None:
                left[message_id] = f"no job is named {job!r} yet: `jobs apply` it first"
                return False
            if entry.fifo:
                left[message_id] = f"job {job} runs on a FIFO queue, which the entry topic cannot reach"
                return False
            try:
                self._sns.publish(
                    TopicArn=self._topic,
                    Message=message.get("Body", ""),
                    MessageAttributes=_publishable(message.get("MessageAttributes", {})),  # type: ignore[arg-type]
                )
            except ClientError as exc:
                failed[message_id] = f"publish refused: {exc}"
                return False
            published.append(message_id)
            return True

        self._scan(one, limit=None)
        return Rerouted(published, left, failed)

    def _scan(self, act: Callable[[dict[str, Any]], bool], *, limit: int | None) -> None:
        """Each message of the Unroutable queue once: `act` True deletes it, False hands it back at the end."""
        url = self.unroutable_url()
        seen: set[str] = set()
        passed_over: list[str] = []
        try:
            while limit is None or len(seen) < limit:
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=BATCH if limit is None else min(BATCH, limit - len(seen)),
                    VisibilityTimeout=SCAN_HIDE_S,
                    WaitTimeSeconds=0,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                ).get("Messages", [])
                fresh = [m for m in messages if m["MessageId"] not in seen]
                passed_over += [m["ReceiptHandle"] for m in messages if m["MessageId"] in seen]
                if not fresh:
                    break
                for message in fresh:
                    seen.add(message["MessageId"])
                    if act(dict(message)):
                        self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    else:
                        passed_over.append(message["ReceiptHandle"])
        finally:
            for start in range(0, len(passed_over), BATCH):
                chunk = passed_over[start : start + BATCH]
                self._sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)],
                )


@dataclass
class _KnownQueue:
    arn: str | None
    url: str | None


def _listed(message: Mapping[str, Any], now: float) -> Unroutable:
    sent_ms = message.get("Attributes", {}).get("SentTimestamp")
    age_s = max(0.0, now - int(sent_ms) / 1000) if sent_ms else 0.0
    body = message.get("Body", "")
    head = body if len(body) <= BODY_HEAD_CHARS else body[: BODY_HEAD_CHARS - 1] + "…"
    return Unroutable(
        message_id=message["MessageId"],
        job=string_attributes(message.get("MessageAttributes", {})).get(JOB_ATTRIBUTE),
        age_s=age_s,
        body_head=head,
    )


def _publishable(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """SQS message attributes as SNS Publish takes them (String and Binary values)."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {"DataType": value.get("DataType", "String")}
        if "StringValue" in value:
            entry["StringValue"] = value["StringValue"]
        elif "BinaryValue" in value:
            entry["BinaryValue"] = value["BinaryValue"]
        else:
            continue
        found[name] = entry
    return found


def _same_json(have: str | None, want: Any) -> bool:
    if not have:
        return False
    try:
        return bool(json.loads(have) == json.loads(json.dumps(want)))
    except ValueError:
        return False


def _describe_filter(policy: Mapping[str, Any]) -> str:
    text = json.dumps(policy, separators=(",", ":"))
    return text if len(text) <= 60 else text[:59] + "…"
