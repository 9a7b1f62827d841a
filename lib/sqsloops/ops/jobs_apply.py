"""`sqsloops jobs apply MODULE`: make AWS match the jobs a module declares, printing the plan first.

Per queue (one per job unless jobs share one): the queue `<stack>-<queue>` (`.fifo` for serial ordering) and its
dead-letter queue `<stack>-<queue>-dlq`, both encrypted (SSE-SQS); the redrive policy's maxReceiveCount is a large
safety net for poison that crashes workers, never the retry policy (the runner counts attempts and moves dead jobs
itself); the visibility timeout leaves every message of a batch its job's timeout, at least 6x the timeout. Names
start with the stack's, so the stack's IAM scope (`<stack>-*`) covers them. Then the registration (handler
`jobs:MODULE`, max loops = concurrency, min loops) through QueueAdmin, which also puts the depth alarms; an alarm on
the DLQ notifying the stack's Alerts topic; one Scheduler schedule per cron job (its input an envelope whose id is
`NAME@<aws.scheduler.scheduled-time>`, so a duplicate firing runs once); and the job catalog (jobs/catalog.py).

Planning only reads; each step of the plan carries the write that carries it out, so `--dry-run` prints exactly
what `apply` would do, and an apply with nothing to change writes nothing. Every write is idempotent, so an apply
that fails half-way can simply be run again.

- A job removed from code (its catalog entry names this module) is pruned only with `--prune`.
- A queue that still holds messages (or whose DLQ does) is never deleted without `--force`: it stays registered and
  drains, the plan says `blocked`, and a later apply deletes it once it is empty.
- Standard <-> FIFO is a new queue (SQS cannot convert one): planned as a replacement, new queue first, catalog
  re-pointed, the old queue retired under the rule above.
- A registration paused with `jobs pause` stays paused: apply never changes `enabled`.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from sqsloops import defaults
from sqsloops.errors import ConfigError, SqsloopsError
from sqsloops.handlers import HTTP, JOBS
from sqsloops.jobs.catalog import Catalog, CatalogEntry, read_catalog, write_catalog
from sqsloops.jobs.definition import DLQ_SUFFIX, FIFO_SUFFIX, VISIBILITY_PER_TIMEOUT, JobFunction, jobs_in
from sqsloops.jobs.envelope import ENVELOPE_VERSION
from sqsloops.log import logger
from sqsloops.ops import job_alarms
from sqsloops.ops.alarms import alarm_matches, alarm_steps
from sqsloops.ops.jobs_entry import FILTER_COMBINATIONS_MAX, EntryRoutes, RouteTarget
from sqsloops.queues import queue_depth, queue_missing
from sqsloops.registry import QueueConfig
from sqsloops.settings import FIELD_BY_ATTR, Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from sqsloops.ops.registration import QueueAdmin

Action = Literal["create", "update", "unchanged", "delete", "replace", "blocked", "prune"]
CHANGES: frozenset[str] = frozenset({"create", "update", "delete", "replace", "prune"})

SQS_MAX_QUEUE_NAME_LEN = 80
# SQS counts every receive, including messages handed back for a limit or lost with a dead loop: this only catches
# a message that crashes its loop before the runner can settle it. Attempts are the runner's to count.
MAX_RECEIVE_COUNT = 100
DLQ_RETENTION_S = 14 * 24 * 3600  # SQS's longest: a dead job waits two weeks for a redrive
BATCH_SIZE = defaults.BATCH_SIZE
CRON_SCHEDULE_PREFIX = "cron-"  # one-time schedules of delayed jobs are "job-<id>" (jobs/client.py): never clash
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
DLQ_ALARM_SUFFIX = "-not-empty"
# A tick Scheduler cannot deliver is retried for an hour (AWS's default is a day), then goes to the schedules' DLQ:
# the tick ledger sees the gap and the missed-run policy decides, rather than a day-old tick arriving unannounced.
CRON_RETRY_POLICY = {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 10}

# Queue attributes that differ between what we ask and what SQS reports, compared as SQS reports them.
_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "SqsManagedSseEnabled", "RedrivePolicy", "MessageRetentionPeriod")
_SCHEDULE_COMPARED = ("ScheduleExpression", "ScheduleExpressionTimezone", "State", "FlexibleTimeWindow", "Target")


@dataclass(frozen=True)
class Step:
    """One resource of the plan: what will happen to it, and the write that does it (None: nothing to write)."""

    action: Action
    kind: str  # queue, dlq, registration, alarms, dlq-alarm, schedule, catalog
    name: str
    detail: str = ""
    run: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def changes(self) -> bool:
        return self.action in CHANGES


@dataclass(frozen=True)
class Plan:
    """Every step of an apply, in the order they run: queues and what hangs on them, schedules, catalog, removals."""

    module: str
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()

    @property
    def changes(self) -> list[Step]:
        return [step for step in self.steps if step.changes]

    @property
    def blocked(self) -> list[Step]:
        return [step for step in self.steps if step.action == "blocked"]

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for step in self.steps:
            found[step.action] = found.get(step.action, 0) + 1
        return found

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [(step.action, step.kind, step.name, step.detail) for step in self.steps]


@dataclass
class _Queue:
    """What the declarations want of one queue."""

    logical: str
    module: str  # the registration's handler is jobs:<module>
    name: str
    dlq_name: str
    fifo: bool
    jobs: list[JobFunction[..., Any]]
    timeout_s: float
    concurrency: int | None
    min_loops: int
    rate_per_s: float | None
    http_target: str | None = None  # its jobs run in a web app (`@job(http=...)`): the loops POST them there

    @property
    def handler(self) -> str:
        """The registration's handler: the module's jobs run in the loop, or are POSTed to their web app."""
        return f"{HTTP}:{self.http_target}" if self.http_target is not None else f"{JOBS}:{self.module}"

    @property
    def batch_size(self) -> int:
        """As many as fit the visibility timeout: the last message of a batch still gets its job's whole timeout."""
        return max(1, min(BATCH_SIZE, math.floor(defaults.MAX_VISIBILITY_TIMEOUT_S / self.timeout_s) - 1))

    @property
    def visibility_timeout_s(self) -> int:
        """At least 6x the timeout (AWS's rule for Lambda consumers), and room for a whole batch run in turn."""
        wanted = self.timeout_s * max(VISIBILITY_PER_TIMEOUT, self.batch_size + 1)
        return min(defaults.MAX_VISIBILITY_TIMEOUT_S, math.ceil(wanted))


@dataclass
class _Known:
    """A queue's URL and ARN: known at plan time when it exists, filled in by its create step otherwise."""

    url: str | None = None
    arn: str | None = None


def import_jobs(module_name: str, *, app_dir: str | Path | None = ".") -> tuple[ModuleType, dict[str, Any]]:
    """The module and the jobs it declares. `app_dir` goes first on sys.path (where `app/` is: the project root), as
    `python -m` would have it; ConfigError (one line) when the module cannot be imported or declares no job."""
    if app_dir is not None:
        where = str(Path(app_dir).resolve())
        if where not in sys.path:
            sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except SqsloopsError:
        raise
    except Exception as exc:  # the user's module can fail in any way
        raise ConfigError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    found = jobs_in(module)
    if not found:
        raise ConfigError(f"{module_name!r} declares no @job function")
    return module, found


def cron_input(job_name: str) -> str:
    """A cron schedule's target input: the envelope Scheduler fills in at each firing. Its id, `NAME@<time>`, is
    the tick's (jobs/cron.py tick_job_id), so a firing delivered twice is one job."""
    envelope = {
        "v": ENVELOPE_VERSION,
        "id": f"{job_name}@{SCHEDULED_TIME}",
        "job": job_name,
        "args": [],
        "kwargs": {},
        "enqueued_at": SCHEDULED_TIME,
        "attempt": 0,
    }
    return json.dumps(envelope, separators=(",", ":"))


def cron_schedule_name(job_name: str) -> str:
    return CRON_SCHEDULE_PREFIX + job_name


class JobsApply:
    """Plans and applies a module's jobs against one stack (built by `JobsApply.for_root`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        admin: QueueAdmin,
        sqs: SQSClient,
        cloudwatch: CloudWatchClient,
        scheduler: EventBridgeSchedulerClient,
        dynamodb: DynamoDBClient,
        sns: SNSClient | None = None,
        entry_cap: int = FILTER_COMBINATIONS_MAX,
    ) -> None:
        self._settings = settings
        self._admin = admin
        self._sqs = sqs
        self._cw = cloudwatch
        self._scheduler = scheduler
        self._ddb = dynamodb
        # The entry topic's subscriptions (ops/jobs_entry.py), when the stack has one.
        self._entry = (
            EntryRoutes(settings=settings, sns=sns, sqs=sqs, admin=admin, cap=entry_cap)
            if sns is not None and settings.entry_topic_arn
            else None
        )

    @classmethod
    def for_root(cls, root: Any) -> JobsApply:
        """From an OpsRoot: its settings, its QueueAdmin and its clients."""
        clients = root.clients
        return cls(
            settings=root.settings,
            admin=root.admin,
            sqs=clients.sqs,
            cloudwatch=clients.cloudwatch,
            scheduler=clients.scheduler,
            dynamodb=clients.dynamodb,
            sns=clients.sns,
        )

    # --- planning ---------------------------------------------------------------------------------------------

    def plan(
        self, module_name: str, jobs: Mapping[str, JobFunction[..., Any]], *, prune: bool = False, force: bool = False
    ) -> Plan:
        """What apply would do; reads only. ConfigError for settings the job layer needs and do not exist, or a
        queue name too long for SQS."""
        self._check_settings(jobs)
        queues = self._queues(module_name, jobs)
        catalog = read_catalog(self._ddb, table_name=self._settings.jobs_table)
        steps: list[Step] = []
        warnings: list[str] = []
        known: dict[str, _Known] = {}
        retire: dict[str, str] = {}  # queue name -> why
        for queue in queues.values():
            steps += self._queue_steps(queue, known, warnings)
            other = queue.name.removesuffix(FIFO_SUFFIX) if queue.fifo else queue.name + FIFO_SUFFIX
            if self._ours(self._url(other), module_name, catalog):
                retire[other] = "replaced by " + queue.name
                steps.append(Step("replace", "queue", other, f"{'standard' if queue.fifo else 'FIFO'} -> {queue.name}"))
        ours = self._our_entries(catalog, module_name, jobs)
        removed = sorted(set(ours) - set(jobs))
        steps += self._schedule_steps(jobs, queues, known, removed if prune else [])
        steps += self._failure_alarm_steps(jobs, removed if prune else [])
        wanted_queue_names = {queue.name for queue in queues.values()}
        if prune:
            for name in removed:
                queue_name = ours[name].queue_url.rsplit("/", 1)[-1]
                if queue_name not in wanted_queue_names:
                    retire.setdefault(queue_name, f"job {name} was removed from {module_name}")
            # and queues still registered to this module that no job uses (a prune blocked earlier by messages)
            for config in self._admin.list():
                queue_name = config.queue_url.rsplit("/", 1)[-1]
                if self._owned(config, module_name, catalog) and queue_name not in wanted_queue_names:
                    retire.setdefault(queue_name, f"no job of {module_name} uses it")
        steps.append(self._catalog_step(catalog, jobs, queues, known, drop=removed if prune else []))
        if self._entry is not None:
            targets = [RouteTarget(q.name, known[q.name], [fn.name for fn in q.jobs], q.fifo) for q in queues.values()]
            steps += self._entry.steps(
                targets, catalog=catalog.entries, dropped=removed if prune else [], retiring=retire, warnings=warnings
            )
        if removed and not prune:
            warnings.append(
                f"job(s) {', '.join(removed)} are no longer in {module_name}: kept (pass --prune to remove them)"
            )
        for queue_name, why in sorted(retire.items()):
            steps += self._retire_steps(queue_name, why, force=force)
        return Plan(module_name, tuple(steps), tuple(warnings))

    def apply(self, plan: Plan) -> list[Step]:
        """Carry out the plan's writes in order; the steps done. A failure stops there (run apply again)."""
        done: list[Step] = []
        for step in plan.steps:
            if step.run is None:
                continue
            step.run()
            done.append(step)
            logger.info("jobs apply", extra={"action": step.action, "kind": step.kind, "resource": step.name})
        return done

    def _check_settings(self, jobs: Mapping[str, JobFunction[..., Any]]) -> None:
        needed = ["stack_name", "jobs_table", "alerts_topic_arn"]
        if any(fn.options.cron is not None for fn in jobs.values()):
            needed += ["schedule_group", "scheduler_role_arn"]
        missing = [FIELD_BY_ATTR[attr].env_name for attr in needed if not getattr(self._settings, attr)]
        if missing:
            raise ConfigError(
                f"the stack has no job layer settings: set {', '.join(missing)} (or pass --stack NAME of a stack"
                " whose template has the Jobs table)"
            )

    def _queues(self, module_name: str, jobs: Mapping[str, JobFunction[..., Any]]) -> dict[str, _Queue]:
        queues: dict[str, _Queue] = {}
        for fn in sorted(jobs.values(), key=lambda item: item.name):
            options = fn.options
            queue = queues.get(options.queue)
            if queue is None:
                name = f"{self._settings.stack_name}-{options.queue}"
                suffix = FIFO_SUFFIX if options.fifo else ""
                dlq_name = f"{name}{DLQ_SUFFIX}{suffix}"
                if len(dlq_name) > SQS_MAX_QUEUE_NAME_LEN:
                    raise ConfigError(
                        f"job {fn.name}: queue name {dlq_name!r} is {len(dlq_name)} characters, over SQS's"
                        f" {SQS_MAX_QUEUE_NAME_LEN}: give the job a shorter queue= (or the stack a shorter name)"
                    )
                queue = _Queue(
                    logical=options.queue,
                    module=module_name,
                    name=name + suffix,
                    dlq_name=dlq_name,
                    fifo=options.fifo,
                    jobs=[],
                    timeout_s=options.timeout_s,
                    concurrency=options.concurrency,
                    min_loops=options.min_loops,
                    rate_per_s=options.rate_per_s,
                    http_target=options.http_target,  # one per queue: jobs_in refuses jobs sharing one that differ
                )
                queues[options.queue] = queue
            queue.jobs.append(fn)
            queue.timeout_s = max(queue.timeout_s, options.timeout_s)
            queue.concurrency = queue.concurrency or options.concurrency
            queue.min_loops = max(queue.min_loops, options.min_loops)
            queue.rate_per_s = queue.rate_per_s or options.rate_per_s
        return queues

    def _queue_steps(self, queue: _Queue, known: dict[str, _Known], warnings: list[str]) -> list[Step]:
        dlq = known.setdefault(queue.dlq_name, self._known(queue.dlq_name))
        main = known.setdefault(queue.name, self._known(queue.name))
        steps = [
            self._sqs_step("dlq", queue.dlq_name, dlq, lambda: self._dlq_attributes(queue)),
            self._sqs_step("queue", queue.name, main, lambda: self._queue_attributes(queue, dlq)),
        ]
        steps += self._registration_steps(queue, main, warnings)
        steps.append(self._dlq_alarm_step(queue, dlq))
        return steps

    def _known(self, name: str) -> _Known:
        url = self._url(name)
        if url is None:
            return _Known()
        arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Known(url, arn)

    def _url(self, name: str) -> str | None:
        try:
            return self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if queue_missing(exc):
                return None
            raise

    def _dlq_attributes(self, queue: _Queue) -> dict[str, str]:
        attributes = {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(DLQ_RETENTION_S)}
        if queue.fifo:
            attributes["FifoQueue"] = "true"
        return attributes

    def _queue_attributes(self, queue: _Queue, dlq: _Known) -> dict[str, str]:
        redrive = {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        attributes = {
            "SqsManagedSseEnabled": "true",
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "RedrivePolicy": json.dumps(redrive, separators=(",", ":")),
        }
        if queue.fifo:
            # Scheduler's SQS target carries no MessageDeduplicationId: delayed serial jobs need content dedup.
            attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        return attributes

    def _sqs_step(self, kind: str, name: str, known: _Known, wanted: Callable[[], dict[str, str]]) -> Step:
        """Create the queue, or set the attributes that differ. `wanted` is called when the step runs for a queue
        that does not exist yet (its DLQ's ARN is known only then)."""
        if known.url is None:

            def create() -> None:
                url = self._sqs.create_queue(QueueName=name, Attributes=wanted())["QueueUrl"]  # type: ignore[arg-type]
                known.url = url
                known.arn = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]

            return Step("create", kind, name, "SSE", run=create)
        response: Any = self._sqs.get_queue_attributes(QueueUrl=known.url, AttributeNames=["All"])
        have: dict[str, str] = dict(response.get("Attributes", {}))
        want = wanted()
        different = {k: v for k, v in want.items() if k in _QUEUE_ATTRIBUTES and not _same_attribute(k, have.get(k), v)}
        if not different:
            return Step("unchanged", kind, name)
        url = known.url

        def update() -> None:
            self._sqs.set_queue_attributes(QueueUrl=url, Attributes=different)  # type: ignore[arg-type]

        return Step("update", kind, name, ", ".join(sorted(different)), run=update)

    def _wanted_config(self, queue: _Queue, url: str, module: str) -> QueueConfig:
        return QueueConfig(
            queue_url=url,
            handler=queue.handler,
            min_loops=queue.min_loops,
            max_loops=queue.concurrency if queue.concurrency is not None else max(defaults.MAX_LOOPS, queue.min_loops),
            batch_size=queue.batch_size,
            visibility_timeout_s=queue.visibility_timeout_s,
            rate_per_s=queue.rate_per_s,
        )

    def _registration_steps(self, queue: _Queue, main: _Known, warnings: list[str]) -> list[Step]:
        module = queue.module
        if main.url is None:

            def register() -> None:
                assert main.url is not None
                result = self._admin.register(self._wanted_config(queue, main.url, module))
                warnings.extend(result.warnings)

            detail = f"{queue.handler}, loops {queue.min_loops}-{queue.concurrency or 'default'}"
            return [
                Step("create", "registration", queue.name, detail, run=register),
                Step("create", "alarms", queue.name),
            ]
        wanted = self._wanted_config(queue, main.url, module)
        current = self._admin.registry.find(main.url)
        if current is None:
            url = main.url

            def register_existing() -> None:
                result = self._admin.register(self._wanted_config(queue, url, module))
                warnings.extend(result.warnings)

            return [
                Step("create", "registration", queue.name, queue.handler, run=register_existing),
                Step("create", "alarms", queue.name),
            ]
        fields = ("handler", "min_loops", "max_loops", "batch_size", "visibility_timeout_s", "rate_per_s")
        changes = {name: getattr(wanted, name) for name in fields if getattr(current, name) != getattr(wanted, name)}
        if changes:
            url = main.url

            def update() -> None:
                result = self._admin.update(url, **changes)
                warnings.extend(result.warnings)

            detail = ", ".join(f"{k} {getattr(current, k)} -> {v}" for k, v in sorted(changes.items()))
            return [
                Step("update", "registration", queue.name, detail, run=update),
                Step("update", "alarms", queue.name),
            ]
        expected = [self._admin.alarms.name(current.queue_url, s.level) for s in alarm_steps(current)]
        alarms = (
            Step("unchanged", "alarms", queue.name)
            if self._admin.alarms.names(current.queue_url) == expected
            else Step("update", "alarms", queue.name, f"{len(expected)} depth alarm(s)", run=self._put_alarms(current))
        )
        return [Step("unchanged", "registration", queue.name), alarms]

    def _put_alarms(self, config: QueueConfig) -> Callable[[], None]:
        def run() -> None:
            self._admin.alarms.put(config)

        return run

    def _dlq_alarm_spec(self, queue: _Queue) -> dict[str, Any]:
        topic = self._settings.alerts_topic_arn
        return {
            "AlarmName": queue.dlq_name + DLQ_ALARM_SUFFIX,
            "AlarmDescription": (
                f"sqsloops: dead jobs in {queue.dlq_name} (jobs {', '.join(fn.name for fn in queue.jobs)}): see"
                f" `sqsloops jobs dead NAME`, then redrive or discard them"
            ),
            "ActionsEnabled": True,
            "AlarmActions": [topic],
            "OKActions": [topic],
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": queue.dlq_name}],
            "Statistic": "Maximum",
            "Period": self._settings.alarm_period_s,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }

    def _dlq_alarm_step(self, queue: _Queue, dlq: _Known) -> Step:
        spec = self._dlq_alarm_spec(queue)
        name = spec["AlarmName"]
        found = self._cw.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])

        def put() -> None:
            self._cw.put_metric_alarm(**spec)

        if not found:
            return Step("create", "dlq-alarm", name, "-> Alerts topic", run=put)
        have = found[0]
        if alarm_matches(have, spec):
            return Step("unchanged", "dlq-alarm", name)
        return Step("update", "dlq-alarm", name, run=put)

    def _failure_alarm_steps(self, jobs: Mapping[str, JobFunction[..., Any]], pruned: Iterable[str]) -> list[Step]:
        """Per job, its failure-rate alarm (ops/job_alarms.py) -> Alerts topic; deleted when the job turns it off
        (failure_alarm=None) or is pruned."""
        stack, topic = self._settings.stack_name, self._settings.alerts_topic_arn
        wanted = {name: fn.options.failure_alarm for name, fn in jobs.items()}
        names = {job: job_alarms.alarm_name(stack, job) for job in sorted({*wanted, *pruned})}
        found = {
            alarm["AlarmName"]: alarm
            for start in range(0, len(names), 100)  # DescribeAlarms takes at most 100 names
            for alarm in self._cw.describe_alarms(AlarmNames=list(names.values())[start : start + 100]).get(
                "MetricAlarms", []
            )
        }
        steps: list[Step] = []
        for job, name in names.items():
            threshold = wanted.get(job)
            if threshold is None:
                if name in found:
                    why = "pruned" if job not in wanted else "failure_alarm=None"
                    steps.append(Step("delete", "failure-alarm", name, why, run=self._delete_alarm(name)))
                continue
            spec = job_alarms.alarm_spec(stack=stack, job=job, threshold=threshold, topic_arn=topic)
            detail = f"> {threshold:.0%} of attempts failed -> Alerts topic"
            if name not in found:
                steps.append(Step("create", "failure-alarm", name, detail, run=self._put_alarm(spec)))
            elif job_alarms.alarm_spec_matches(found[name], spec):
                steps.append(Step("unchanged", "failure-alarm", name))
            else:
                steps.append(Step("update", "failure-alarm", name, detail, run=self._put_alarm(spec)))
        return steps

    def _put_alarm(self, spec: dict[str, Any]) -> Callable[[], None]:
        def run() -> None:
            self._cw.put_metric_alarm(**spec)

        return run

    def _delete_alarm(self, name: str) -> Callable[[], None]:
        def run() -> None:
            self._cw.delete_alarms(AlarmNames=[name])

        return run

    # --- schedules and the catalog ----------------------------------------------------------------------------

    def _schedule_steps(
        self,
        jobs: Mapping[str, JobFunction[..., Any]],
        queues: Mapping[str, _Queue],
        known: Mapping[str, _Known],
        pruned: Iterable[str],
    ) -> list[Step]:
        steps: list[Step] = []
        group = self._settings.schedule_group
        existing = self._cron_schedules() if group else set()
        for name, fn in sorted(jobs.items()):
            schedule = cron_schedule_name(name)
            if fn.options.cron is None:
                if schedule in existing:
                    steps.append(Step("delete", "schedule", schedule, "no cron", run=self._delete_schedule(schedule)))
                continue
            queue = queues[fn.options.queue]
            steps.append(self._schedule_step(fn, queue, known[queue.name]))
        for name in pruned:
            schedule = cron_schedule_name(name)
            if schedule in existing:
                steps.append(Step("delete", "schedule", schedule, "pruned", run=self._delete_schedule(schedule)))
        return steps

    def _cron_schedules(self) -> set[str]:
        names: set[str] = set()
        paginator = self._scheduler.get_paginator("list_schedules")
        for page in paginator.paginate(GroupName=self._settings.schedule_group, NamePrefix=CRON_SCHEDULE_PREFIX):
            names |= {s["Name"] for s in page.get("Schedules", []) if "Name" in s}
        return names

    def _schedule_request(self, fn: JobFunction[..., Any], queue: _Queue, queue_arn: str) -> dict[str, Any]:
        options = fn.options
        target: dict[str, Any] = {
            "Arn": queue_arn,
            "RoleArn": self._settings.scheduler_role_arn,
            "Input": cron_input(fn.name),
            "RetryPolicy": dict(CRON_RETRY_POLICY),
        }
        if queue.fifo:
            target["SqsParameters"] = {"MessageGroupId": fn.group_of([], {}) or fn.name}
        if self._settings.schedule_dlq_arn:
            target["DeadLetterConfig"] = {"Arn": self._settings.schedule_dlq_arn}
        return {
            "Name": cron_schedule_name(fn.name),
            "GroupName": self._settings.schedule_group,
            "ScheduleExpression": options.schedule_expression,
            "ScheduleExpressionTimezone": options.tz,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Description": f"sqsloops cron job {fn.name}: {options.cron.source if options.cron else ''} {options.tz}",
            "Target": target,
        }

    def _schedule_step(self, fn: JobFunction[..., Any], queue: _Queue, main: _Known) -> Step:
        name = cron_schedule_name(fn.name)
        detail = f"{fn.options.schedule_expression} {fn.options.tz}"
        try:
            have: dict[str, Any] | None = dict(
                self._scheduler.get_schedule(Name=name, GroupName=self._settings.schedule_group)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            have = None

        def put(create: bool) -> Callable[[], None]:
            def run() -> None:
                assert main.arn is not None
                request = self._schedule_request(fn, queue, main.arn)
                if create:
                    self._scheduler.create_schedule(**request)
                else:
                    self._scheduler.update_schedule(**request)

            return run

        if have is None:
            return Step("create", "schedule", name, detail, run=put(True))
        if main.arn is not None:
            want = self._schedule_request(fn, queue, main.arn)
            if all(have.get(key) == want[key] for key in _SCHEDULE_COMPARED):
                return Step("unchanged", "schedule", name)
        return Step("update", "schedule", name, detail, run=put(False))

    def _delete_schedule(self, name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                self._scheduler.delete_schedule(Name=name, GroupName=self._settings.schedule_group)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise

        return run

    @staticmethod
    def _our_entries(
        catalog: Catalog, module_name: str, jobs: Mapping[str, JobFunction[..., Any]]
    ) -> dict[str, CatalogEntry]:
        """Catalog entries this module owns: declared in it (or in a module its jobs come from)."""
        modules = {module_name} | {fn.fn.__module__ for fn in jobs.values()}
        return {name: entry for name, entry in catalog.entries.items() if entry.module in modules or name in jobs}

    def _catalog_step(
        self,
        catalog: Catalog,
        jobs: Mapping[str, JobFunction[..., Any]],
        queues: Mapping[str, _Queue],
        known: Mapping[str, _Known],
        *,
        drop: Iterable[str],
    ) -> Step:
        dropped = set(drop)

        def wanted() -> dict[str, CatalogEntry]:
            entries = {name: entry for name, entry in catalog.entries.items() if name not in dropped}
            for name, fn in jobs.items():
                where = known[queues[fn.options.queue].name]
                assert where.url is not None
                assert where.arn is not None
                entries[name] = CatalogEntry.for_job(fn, queue_url=where.url, queue_arn=where.arn)
            return entries

        ready = all(known[queues[fn.options.queue].name].arn is not None for fn in jobs.values())
        if ready and wanted() == dict(catalog.entries):
            return Step("unchanged", "catalog", "jobs")

        def write() -> None:
            write_catalog(
                self._ddb, table_name=self._settings.jobs_table, entries=wanted(), expected_version=catalog.version
            )

        new = sorted(set(jobs) - set(catalog.entries))
        detail = ", ".join(
            part
            for part in (
                f"add {', '.join(new)}" if new else "",
                f"remove {', '.join(sorted(dropped & set(catalog.entries)))}" if dropped & set(catalog.entries) else "",
            )
            if part
        )
        return Step("create" if catalog.version == 0 else "update", "catalog", "jobs", detail, run=write)

    # --- retiring queues --------------------------------------------------------------------------------------

    def _ours(self, url: str | None, module_name: str, catalog: Catalog) -> bool:
        """A queue is ours to retire when it is registered to this module's jobs."""
        if url is None:
            return False
        config = self._admin.registry.find(url)
        return config is not None and self._owned(config, module_name, catalog)

    @staticmethod
    def _owned(config: QueueConfig, module_name: str, catalog: Catalog) -> bool:
        """Registered to this module: `jobs:<module>`, or an http: queue of a job the catalog says is this
        module's (an http: handler names a URL, not the module)."""
        if config.handler == f"{JOBS}:{module_name}":
            return True
        return config.handler.startswith(f"{HTTP}:") and any(
            entry.queue_url == config.queue_url and (entry.module or "").startswith(_package_of(module_name))
            for entry in catalog.entries.values()
        )

    def _retire_steps(self, queue_name: str, why: str, *, force: bool) -> list[Step]:
        url = self._url(queue_name)
        if url is None:
            return []
        fifo = queue_name.endswith(FIFO_SUFFIX)
        dlq_name = queue_name.removesuffix(FIFO_SUFFIX) + DLQ_SUFFIX + (FIFO_SUFFIX if fifo else "")
        dlq_url = self._url(dlq_name)
        held = _messages(self._sqs, url) + (_messages(self._sqs, dlq_url) if dlq_url else 0)
        if held and not force:
            return [
                Step(
                    "blocked",
                    "queue",
                    queue_name,
                    f"{why}; still holds {held} message(s) (with its DLQ): kept and draining; apply again once empty,"
                    " or pass --force to delete it with them",
                )
            ]
        detail = why + (f"; {held} message(s) deleted (--force)" if held else "")
        steps = []

        def deregister() -> None:
            self._admin.deregister(url)

        if self._admin.registry.find(url) is not None:
            steps.append(Step("delete", "registration", queue_name, "its depth alarms and loops too", run=deregister))
        alarm = dlq_name + DLQ_ALARM_SUFFIX

        def delete_alarm() -> None:
            self._cw.delete_alarms(AlarmNames=[alarm])

        if self._cw.describe_alarms(AlarmNames=[alarm]).get("MetricAlarms"):
            steps.append(Step("delete", "dlq-alarm", alarm, run=delete_alarm))
        steps.append(Step("delete", "queue", queue_name, detail, run=lambda: self._delete_queue(url)))
        if dlq_url is not None:
            steps.append(Step("delete", "dlq", dlq_name, run=lambda: self._delete_queue(dlq_url)))
        return steps

    def _delete_queue(self, url: str) -> None:
        try:
            self._sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if not queue_missing(exc):
                raise


def _messages(sqs: SQSClient, url: str) -> int:
    depth = queue_depth(sqs, url)
    return depth.visible + depth.in_flight + depth.delayed


def _same_attribute(key: str, have: str | None, want: str) -> bool:
    if have is None:
        return False
    if key == "RedrivePolicy":
        try:
            mine, theirs = json.loads(want), json.loads(have)
        except ValueError:
            return False
        return bool(
            mine.get("deadLetterTargetArn") == theirs.get("deadLetterTargetArn")
            and str(mine.get("maxReceiveCount")) == str(theirs.get("maxReceiveCount"))
        )
    return str(have).lower() == str(want).lower()


def _package_of(module_name: str) -> str:
    """`app` of `app.jobs`: the catalog names the module a job's function is in, which may be a sibling of the one
    applied (app.jobs importing app.billing's jobs)."""
    return module_name.split(".", 1)[0]
