"""`sqsloops.jobs.lambda_handler(fn_or_module)`: a Lambda function of its own for jobs (memory, timeout, VPC of their
own), fed by an SQS event source mapping, with the loop runner's rules.

    # functions/resize/lambda_function.py
    from sqsloops.jobs import lambda_handler
    from app.jobs import resize_image
    handler = lambda_handler(resize_image)

Each batch runs through the same JobsDispatcher as in the loop, then is settled here, with the same Settler: a
success is deleted, a retry is hidden for its delay, a dead job is moved to the DLQ (sent, then deleted). Every
message not done with is reported in `batchItemFailures`, so the mapping must have
`FunctionResponseTypes: [ReportBatchItemFailures]` (without it Lambda deletes the whole batch on return, retries
included). A moved dead message is reported too: it is gone already, and reporting it keeps one whose move failed.

A job whose timeout does not fit in the invocation's remaining time (less SETTLE_MARGIN_S) is handed back, not
started, so an invocation that would be killed never spends an attempt. Timeouts are enforced with SIGALRM: Lambda
runs the handler on the main thread.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqsloops.dispatch import Outcome, Record
from sqsloops.errors import ConfigError, HandlerError
from sqsloops.jobs.runner import JobsDispatcher, JobsSource, describe_source, executor_for, sendable_attributes
from sqsloops.log import logger
from sqsloops.queues import queue_url_of
from sqsloops.registry import QueueConfig
from sqsloops.settle import Settler
from sqsloops.transient import call_aws

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

    from sqsloops.jobs.execution import JobExecutor
    from sqsloops.jobs.root import JobsRoot

SETTLE_MARGIN_S = 3.0  # kept back from the invocation for settling the batch after the last job


class JobsLambdaHandler:
    """The handler `lambda_handler()` returns: built on the first event, reused by the execution environment."""

    def __init__(self, source: JobsSource, *, root: Callable[[], JobsRoot] | None = None, metrics: bool = True) -> None:
        self._source = source
        self._make_root = root
        self._metrics = metrics
        self._lock = threading.Lock()
        self._root: JobsRoot | None = None
        self._executor: JobExecutor | None = None
        self._queues: dict[str, tuple[str, Settler]] = {}  # event source ARN -> (queue URL, its settler)

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        records = event.get("Records") if isinstance(event, dict) else None
        if not isinstance(records, list):
            raise ConfigError(f"{describe_source(self._source)}: not an SQS event (no Records list)")
        try:
            root, executor = self._built()
        except (ConfigError, HandlerError) as exc:  # nothing can run: every message comes back, then the DLQ
            logger.error("job function cannot run its jobs", extra={"error": str(exc)})
            return _failures(record["messageId"] for record in records)
        failed: list[str] = []
        for arn, group in _by_queue(records).items():
            queue_url, settler = self._queue(root, arn)

            def time_left_s() -> float:
                return float(context.get_remaining_time_in_millis()) / 1000 - SETTLE_MARGIN_S

            dispatcher = JobsDispatcher(
                executor,
                sqs=root.sqs,
                queue_url=queue_url,
                clock=root.clock,
                metrics=self._metrics,
                time_left_s=time_left_s,
            )
            outcome = dispatcher.dispatch(group)
            config = QueueConfig(queue_url=queue_url, handler=describe_source(self._source))
            settler.settle(config, [_message(record) for record in group], outcome)
            failed += _not_done(group, outcome)
        return _failures(failed)

    def _built(self) -> tuple[JobsRoot, JobExecutor]:
        with self._lock:
            if self._root is None:
                self._root = self._make_root() if self._make_root is not None else _root_from_env()
            root = self._root
            if self._executor is None:
                self._executor = executor_for(self._source, store=lambda: root.job_store, clock=root.clock)
            return root, self._executor

    def _queue(self, root: JobsRoot, arn: str) -> tuple[str, Settler]:
        found = self._queues.get(arn)
        if found is None:
            url = call_aws(lambda: queue_url_of(root.sqs, arn))
            found = self._queues[arn] = (url, Settler(sqs=root.sqs, queue_url=url, clock=root.clock))
        return found


def lambda_handler(
    source: JobsSource, *, root: Callable[[], JobsRoot] | None = None, metrics: bool = True
) -> JobsLambdaHandler:
    """A Lambda handler `(event, context) -> {"batchItemFailures": [...]}` running these jobs (a job function, a
    module of them or its dotted name). `root` builds the composition root (default: from the environment)."""
    return JobsLambdaHandler(source, root=root, metrics=metrics)


def _root_from_env() -> JobsRoot:
    from sqsloops.jobs.root import JobsRoot  # it imports the runner: import it when a function first needs it

    return JobsRoot.from_env()


def _by_queue(records: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(str(record.get("eventSourceARN", "")), []).append(record)
    return groups


def _message(record: Record) -> MessageTypeDef:
    """A Lambda SQS record as ReceiveMessage returns it, for the Settler."""
    message: MessageTypeDef = {
        "MessageId": record["messageId"],
        "ReceiptHandle": record.get("receiptHandle", ""),
        "Body": record.get("body", ""),
        "Attributes": dict(record.get("attributes", {})),
    }
    attributes = sendable_attributes(record.get("messageAttributes", {}))
    if attributes:
        message["MessageAttributes"] = attributes  # type: ignore[typeddict-item]
    return message


def _not_done(records: list[Record], outcome: Outcome) -> list[str]:
    succeeded = set(outcome.succeeded) - {failure.message_id for failure in outcome.failed}
    return [record["messageId"] for record in records if record["messageId"] not in succeeded]


def _failures(message_ids: Any) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


class _CallableModule(types.ModuleType):
    """`sqsloops.jobs.lambda_handler` names both this module and its function: once the module is imported, the
    package attribute is the module, so the module calls the function (`sqsloops.jobs.lambda_handler(fn)` works
    either way)."""

    def __call__(
        self, source: JobsSource, *, root: Callable[[], JobsRoot] | None = None, metrics: bool = True
    ) -> JobsLambdaHandler:
        return lambda_handler(source, root=root, metrics=metrics)


sys.modules[__name__].__class__ = _CallableModule
