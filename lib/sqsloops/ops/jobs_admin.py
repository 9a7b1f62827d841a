"""Operating job types by name: their queues from the catalog, dead jobs, redrive, discard, pause, resume, drain.

Redrive is a batched move that never loses a message: each batch is received from the DLQ, the jobs' rows are reset
(`JobStore.requeue_for_redrive`: dead -> queued, attempts 0), the envelopes are sent back to the job's queue with
their attempt count reset, and only the messages SQS accepted are then deleted from the DLQ. A crash between the
send and the delete leaves a copy in both queues; the runner skips a tracked job that already succeeded, and a
FIFO queue's deduplication id (the DLQ message's id) drops the second send within five minutes. Messages not
selected (`--id`) are hidden during the scan and handed back at its end. StartMessageMoveTask would move a whole
DLQ without resetting attempts (and moto lacks it), so it is not used.

Bare entry-topic messages (jobs/entry.py): the runner dead-letters one as its wrapped envelope (jobs/runner.py),
which is moved like any other. One that SQS moved itself (maxReceiveCount) is still bare: it is read by wrapping it
as the runner does, its id from its `id` attribute, else its MessageId (the original delivery's when the redrive
policy moved it: moto keeps it; not checked against AWS here), and sent back as that envelope (attempts reset). A
bare message that cannot be wrapped is counted unreadable and left where it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.errors import ConfigError
from sqsloops.jobs.catalog import CatalogEntry, read_catalog
from sqsloops.jobs.entry import bare_message
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.errors import MalformedEnvelopeError, UnknownJobError
from sqsloops.jobs.store import JobStore
from sqsloops.queues import Depth, queue_depth, queue_url_of, redrive_policy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sqsloops.ops.registration import QueueAdmin

BATCH = 10  # ReceiveMessage, SendMessageBatch and DeleteMessageBatch take at most 10
SCAN_HIDE_S = 120  # messages looked at but not selected stay hidden this long at most (handed back at the end)
DRAIN_POLL_S = 2.0


@dataclass(frozen=True)
class Moved:
    """What a redrive or discard did: the job ids moved (or deleted), those skipped, and why some could not be."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unreadable: int = 0  # DLQ messages that are no envelope: left where they are


class JobsAdmin:
    """Job types as an operator sees them (built by the CLI from an OpsRoot)."""

    def __init__(
        self, *, sqs: SQSClient, store: JobStore, admin: QueueAdmin, jobs_table: str, dynamodb: Any, clock: Clock
    ) -> None:
        self._sqs = sqs
        self._store = store
        self._admin = admin
        self._jobs_table = jobs_table
        self._ddb = dynamodb
        self.clock = clock

    @classmethod
    def for_root(cls, root: Any) -> JobsAdmin:
        store = root.job_store
        if store is None:
            raise ConfigError("the stack has no Jobs table: set SQSLOOPS_JOBS_TABLE (or pass --stack NAME)")
        return cls(
            sqs=root.sqs,
            store=store,
            admin=root.admin,
            jobs_table=root.settings.jobs_table,
            dynamodb=root.clients.dynamodb,
            clock=getattr(root, "clock", SYSTEM_CLOCK),
        )

    @property
    def store(self) -> JobStore:
        return self._store

    def entry(self, job: str) -> CatalogEntry:
        """The job's catalog entry; UnknownJobError when `jobs apply` never declared it."""
        entry = read_catalog(self._ddb, table_name=self._jobs_table).entries.get(job)
        if entry is None:
            raise UnknownJobError(job)
        return entry

    def dlq_url(self, job: str) -> str:
        url = self.entry(job).queue_url
        policy = redrive_policy(self._sqs, url)
        if policy is None:
            raise ConfigError(f"job {job}'s queue has no dead-letter queue: {url}")
        return queue_url_of(self._sqs, policy.dead_letter_arn)

    def depth(self, job: str) -> Depth:
        return queue_depth(self._sqs, self.entry(job).queue_url)

    def depth_of_dlq(self, job: str) -> int:
        """Messages in the job's DLQ (visible and hidden): what redrive or discard would look at."""
        depth = queue_depth(self._sqs, self.dlq_url(job))
        return depth.visible + depth.in_flight

    # --- pause, resume, drain -----------------------------------------------------------------------------------

    def pause(self, job: str) -> None:
        """Keep accepting the job's messages, run none: the registration is disabled (its loops stop, no alarms)."""
        self._admin.update(self.entry(job).queue_url, enabled=False)

    def resume(self, job: str) -> None:
        self._admin.update(self.entry(job).queue_url, enabled=True)

    def drain(self, job: str, *, timeout_s: float, poll_s: float = DRAIN_POLL_S) -> Depth:
        """Wait until the job's queue holds nothing (visible, in flight or delayed); the last depth seen. The caller
        compares it with zero: a queue that did not drain in `timeout_s` is not an exception here."""
        url = self.entry(job).queue_url
        deadline = self.clock.monotonic() + timeout_s
        while True:
            depth = queue_depth(self._sqs, url)
            left_s = deadline - self.clock.monotonic()
            if depth.visible + depth.in_flight + depth.delayed == 0 or left_s <= 0:
                return depth
            self.clock.sleep(min(poll_s, left_s))

    # --- dead jobs ----------------------------------------------------------------------------------------------

    def redrive(self, job: str, *, ids: Collection[str] | None = None) -> Moved:
        """Move the job's dead messages (all, or those whose job id is in `ids`) back to its queue (module doc)."""
        entry = self.entry(job)
        return self._each_batch(job, ids, lambda batch: self._move(entry, batch))

    def discard(self, job: str, *, ids: Collection[str] | None = None) -> Moved:
        """Delete the job's dead messages (all, or those in `ids`); their rows stay dead until their TTL."""
        dlq = self.dlq_url(job)
        return self._each_batch(job, ids, lambda batch: self._delete(dlq, batch))

    def _each_batch(
        self,
        job: str,
        ids: Collection[str] | None,
        act: Callable[[list[tuple[dict[str, Any], Envelope]]], Moved],
    ) -> Moved:
        dlq = self.dlq_url(job)
        wanted = None if ids is None else set(ids)
        done: list[str] = []
        failed: dict[str, str] = {}
        unreadable = 0
        passed_over: list[str] = []  # receipt handles to hand back
        seen: set[str] = set()
        try:
            while True:
                messages = self._sqs.receive_message(
                    QueueUrl=dlq,
                    MaxNumberOfMessages=BATCH,
                    VisibilityTimeout=SCAN_HIDE_S,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                fresh = [m for m in messages if m["MessageId"] not in seen]
                if not fresh:
                    passed_over += [m["ReceiptHandle"] for m in messages]
                    break
                selected: list[tuple[dict[str, Any], Envelope]] = []
                for message in fresh:
                    seen.add(message["MessageId"])
                    try:
                        envelope = self._envelope_of(message)
                    except MalformedEnvelopeError:
                        unreadable += 1
                        passed_over.append(message["ReceiptHandle"])
                        continue
                    if envelope.job != job or (wanted is not None and envelope.id not in wanted):
                        passed_over.append(message["ReceiptHandle"])
                        continue
                    selected.append((dict(message), envelope))
                if selected:
                    result = act(selected)
                    done += result.done
                    failed |= result.failed
                if wanted is not None and wanted <= set(done) | set(failed):
                    break
        finally:
            self._hand_back(dlq, passed_over)
        for missing in sorted((wanted or set()) - set(done) - set(failed)):
            failed[missing] = "not in the dead-letter queue"
        return Moved(done, failed, unreadable)

    def _envelope_of(self, message: Mapping[str, Any]) -> Envelope:
        """A DLQ message's envelope: its body, or a bare message wrapped (module doc); MalformedEnvelopeError."""
        bare = bare_message(
            {
                "body": message.get("Body", ""),
                "messageId": message.get("MessageId", ""),
                "messageAttributes": message.get("MessageAttributes") or {},
                "attributes": message.get("Attributes") or {},
            }
        )
        if bare is None:
            return Envelope.parse(message["Body"])
        return bare.wrap(now=self.clock.now())

    def _move(self, entry: CatalogEntry, batch: list[tuple[dict[str, Any], Envelope]]) -> Moved:
        dlq = self.dlq_url(entry.job)
        if entry.track:
            for _, envelope in batch:
                self._store.requeue_for_redrive(envelope.id)  # refused (no row, another state): moved all the same
        entries: list[dict[str, Any]] = []
        for index, (message, envelope) in enumerate(batch):
            request: dict[str, Any] = {"Id": str(index), "MessageBody": replace(envelope, attempt=0).to_json()}
            if entry.fifo:
                attributes = message.get("Attributes", {})
                request["MessageGroupId"] = attributes.get("MessageGroupId") or entry.job
                request["MessageDeduplicationId"] = message["MessageId"]
            entries.append(request)
        response = self._sqs.send_message_batch(QueueUrl=entry.queue_url, Entries=entries)  # type: ignore[arg-type]
        failures = {f["Id"]: f.get("Message", f.get("Code", "refused")) for f in response.get("Failed", [])}
        sent = [(message, envelope) for index, (message, envelope) in enumerate(batch) if str(index) not in failures]
        deleted = self._delete(dlq, sent)
        failed = {batch[int(i)][1].id: f"not sent: {why}" for i, why in failures.items()} | deleted.failed
        return Moved(deleted.done, failed)

    def _delete(self, queue_url: str, batch: list[tuple[dict[str, Any], Envelope]]) -> Moved:
        if not batch:
            return Moved()
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, (m, _) in enumerate(batch)]
        response = self._sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        failures = {f["Id"]: f.get("Message", f.get("Code", "refused")) for f in response.get("Failed", [])}
        done = [envelope.id for i, (_, envelope) in enumerate(batch) if str(i) not in failures]
        return Moved(done, {batch[int(i)][1].id: f"not deleted: {why}" for i, why in failures.items()})

    def _hand_back(self, queue_url: str, receipts: list[str]) -> None:
        for start in range(0, len(receipts), BATCH):
            chunk = receipts[start : start + BATCH]
            self._sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)],
            )


def parse_args_json(text: str) -> tuple[list[Any], dict[str, Any]]:
    """`--args JSON`: a list (positional arguments) or an object (keyword arguments); ConfigError otherwise."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--args is not JSON: {exc}") from None
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    raise ConfigError(f"--args must be a JSON list (positional) or object (keyword arguments), got {text!r}")
