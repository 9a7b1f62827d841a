"""Messages from the SNS entry topic: the bare form, and the runner's wrapping of it into an envelope.

Producers that do not run our code (any language, another stack) publish to the entry topic:

    aws sns publish --topic-arn $ENTRY --message '[42, "welcome"]' \\
        --message-attributes '{"job": {"DataType": "String", "StringValue": "send_welcome_email"}}'

With raw delivery the job's queue receives exactly the published message, and SNS's message attributes arrive as
SQS message attributes (at most 10 of them, or SNS discards the delivery). The **bare form** is:

- the body: the job's arguments as JSON, an array (positional) or an object (keyword arguments); nothing else;
- attribute `job` (String, required): the job's name; it is what the subscriptions' filter policies match;
- attribute `id` (String, optional): the job id; without it the id is the SQS message id of the delivery (raw
  delivery strips SNS's own MessageId, so it cannot be used). Give an `id` to look the job up, to redrive it by
  id, and to make SNS's at-least-once duplicates one job (a tracked job that succeeded is skipped the second time);
- attribute `key` (String, optional): a unique job's dedupe key, as `enqueue(key=...)` takes it.
- no delay: `delay` or `run_at` attributes are refused (DLQ, with the reason) rather than ignored; delayed jobs go
  through the Python API, the CLI or the HTTP API.

A message carrying a `job` attribute is bare; anything else in a job queue is an envelope (jobs/envelope.py). The
copy the runner re-sends for an untracked job's retry is an envelope and so carries none of these attributes.
The wrapped envelope starts at attempt 0 with `enqueued_at` the delivery's SentTimestamp; a tracked job's row is
created by the runner's `mark_running` at its first start (no producer wrote one).

Size limits by door: the entry topic takes 256 KB per message (SNS publish, body and attributes); SendMessage, the
Python API, the CLI and `POST /jobs` take 1 MiB (SQS) for the whole envelope.

Unique jobs: a bare message has no enqueue step, so the runner claims the key instead, before the job first runs
(jobs/execution.py, with the job's unique scope, as `enqueue` claims it): the `key` attribute, else the job's `key`
template rendered over the bare args. A duplicate (the key held by another job id) is skipped: deleted, logged, and
counted as JobDuplicate. A unique job with neither a `key` attribute nor a key template (its key would be a digest of
the Python-bound arguments, defaults included: no producer could name it, and a changed default changes it), and a
`key` attribute on a job that is not unique, go to the DLQ with that reason. Only a job id with no row yet claims: a
retry, a redelivery or an SNS duplicate of the same `id` finds the row and runs (or is skipped) by it, so it never
claims a key anew (and never leaves one claimed by a delivery that did not run).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqsloops.errors import ConfigError
from sqsloops.jobs.envelope import MAX_SNS_MESSAGE_BYTES, Envelope, check_job_id, check_job_name, json_safe
from sqsloops.jobs.errors import JobArgsError, MalformedEnvelopeError

if TYPE_CHECKING:
    from sqsloops.jobs.definition import JobFunction

JOB_ATTRIBUTE = "job"
ID_ATTRIBUTE = "id"
KEY_ATTRIBUTE = "key"
ENTRY_ATTRIBUTES = (JOB_ATTRIBUTE, ID_ATTRIBUTE, KEY_ATTRIBUTE)
REFUSED_ATTRIBUTES = ("delay", "run_at")  # no delay through SNS: refused, never silently ignored
MAX_ENTRY_MESSAGE_BYTES = MAX_SNS_MESSAGE_BYTES
MAX_RAW_DELIVERY_ATTRIBUTES = 10  # SNS discards a raw delivery to SQS with more


@dataclass(frozen=True)
class BareMessage:
    """An entry-topic delivery as the runner received it: body and attributes, not yet an envelope."""

    body: str
    attributes: Mapping[str, str]  # String attributes by name
    message_id: str
    sent_at: float | None  # epoch seconds (SQS SentTimestamp)

    @property
    def job(self) -> str:
        return self.attributes.get(JOB_ATTRIBUTE, "")

    def wrap(self, *, now: float) -> Envelope:
        """The envelope this message stands for, or MalformedEnvelopeError saying why it cannot be one."""
        refused = [name for name in REFUSED_ATTRIBUTES if name in self.attributes]
        if refused:
            raise MalformedEnvelopeError(
                f"attribute(s) {', '.join(refused)}: the entry topic has no delay (enqueue through the API or CLI)"
            )
        try:
            job = check_job_name(self.job)
            job_id = check_job_id(self.attributes[ID_ATTRIBUTE]) if ID_ATTRIBUTE in self.attributes else None
            args, kwargs = parse_bare_body(self.body)
            moment = self.sent_at if self.sent_at is not None else now
            return Envelope(
                id=job_id or check_job_id(self.message_id),
                job=job,
                args=tuple(args),
                kwargs=kwargs,
                enqueued_at=datetime.fromtimestamp(moment, tz=UTC),
                key=self.attributes.get(KEY_ATTRIBUTE),
            )
        except (ValueError, ConfigError) as exc:
            raise MalformedEnvelopeError(f"entry-topic message for job {self.job!r}: {exc}") from exc


def entry_key(fn: JobFunction[..., Any], envelope: Envelope) -> str | None:
    """The unique key a wrapped bare message claims for `fn` (module doc): its `key` attribute, else the job's key
    template over the args; None for a job that is not unique. JobArgsError when it has none, or must not have one."""
    if fn.options.unique is None:
        if envelope.key is not None:
            raise JobArgsError(fn.name, "a `key` attribute is for unique jobs; publish it without one")
        return None
    if envelope.key is not None:
        return envelope.key
    if fn.options.key is None:
        raise JobArgsError(
            fn.name,
            "it is unique and declares no key template, so an entry-topic message must carry its key: publish it"
            " with a `key` message attribute (or declare the job with key=...)",
        )
    return fn.render_key(envelope.args, envelope.kwargs)


def parse_bare_body(body: str) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) of a bare body: a JSON array or object; ValueError for anything else."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the body is not JSON ({exc})") from exc
    if isinstance(value, list):
        return json_safe(value, path="args"), {}
    if isinstance(value, dict):
        return [], json_safe(value, path="kwargs")
    raise ValueError(
        f"the body is a JSON {type(value).__name__}: publish a JSON array (positional arguments) or object"
        " (keyword arguments)"
    )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def bare_message(record: Mapping[str, Any]) -> BareMessage | None:
    """The bare form of a Lambda-shaped SQS record carrying a `job` attribute, else None (an envelope)."""
    attributes = string_attributes(record.get("messageAttributes") or {})
    if JOB_ATTRIBUTE not in attributes:
        return None
    return BareMessage(
        body=record.get("body", ""),
        attributes=attributes,
        message_id=str(record.get("messageId", "")),
        sent_at=_sent_at(record.get("attributes") or {}),
    )


def string_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    """String-valued message attributes by name, from Lambda's (stringValue) or SQS's (StringValue) shape."""
    found: dict[str, str] = {}
    for name, value in attributes.items():
        if not isinstance(value, Mapping):
            continue
        text = value.get("stringValue", value.get("StringValue"))
        if isinstance(text, str):
            found[name] = text
    return found


def _sent_at(system: Mapping[str, Any]) -> float | None:
    try:
        return int(system["SentTimestamp"]) / 1000
    except (KeyError, TypeError, ValueError):
        return None


# --- the router, past the filter-policy cap (ops/jobs_entry.py) ------------------------------------------------

ROUTER_HANDLER = "python:sqsloops.jobs.entry:route"


class EntryRouter:
    """The router queue's handler: a named message whose job has a route was delivered by that route too, so it is
    dropped here; any other goes to the Unroutable queue (body and attributes kept). A send that fails raises, and
    the loop retries the message: nothing is lost."""

    def __init__(self, *, sqs: Any, catalog: Any, unroutable_url: str) -> None:
        self._sqs = sqs
        self._catalog = catalog  # a jobs.catalog.CatalogReader: get(name) -> CatalogEntry | None
        self._unroutable_url = unroutable_url

    def route(self, record: Mapping[str, Any]) -> bool:
        """True when the message was forwarded to Unroutable, False when its job has a route."""
        job = string_attributes(record.get("messageAttributes") or {}).get(JOB_ATTRIBUTE)
        entry = self._catalog.get(job) if job else None
        if entry is not None and not entry.fifo:
            return False
        request: dict[str, Any] = {"QueueUrl": self._unroutable_url, "MessageBody": record.get("body", "")}
        attributes = _sendable(record.get("messageAttributes") or {})
        if attributes:
            request["MessageAttributes"] = attributes
        self._sqs.send_message(**request)
        return True


def _sendable(attributes: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": text} for name, text in string_attributes(attributes).items()}


@functools.cache
def _default_router() -> EntryRouter:
    import boto3

    from sqsloops.jobs.catalog import CatalogReader
    from sqsloops.settings import Settings

    settings = Settings.from_env()
    if not settings.jobs_table or not settings.unroutable_queue_url:
        raise ConfigError("the entry router needs SQSLOOPS_JOBS_TABLE and SQSLOOPS_UNROUTABLE_QUEUE_URL")
    return EntryRouter(
        sqs=boto3.client("sqs"),
        catalog=CatalogReader(dynamodb=boto3.client("dynamodb"), table_name=settings.jobs_table),
        unroutable_url=settings.unroutable_queue_url,
    )


def route(record: Mapping[str, Any]) -> None:
    """`python:sqsloops.jobs.entry:route`, the router queue's handler in the loop: its router is built once per
    execution environment from the function's environment (SQSLOOPS_JOBS_TABLE, SQSLOOPS_UNROUTABLE_QUEUE_URL)."""
    _default_router().route(record)
