"""Stack-wide settings: declared once, read by the same code from the environment or from the stack's Outputs.

`FIELDS` is the one table of names: each setting's attribute, its environment variable (what template.yaml gives
every function, and what the CLI accepts), and its CloudFormation output (what `--stack NAME` reads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqsloops import defaults
from sqsloops.errors import ConfigError

PREFIX = "SQSLOOPS_"

Kind = Literal["text", "seconds", "whole_seconds"]


@dataclass(frozen=True)
class Field:
    """One setting: where it is read from, how it parses, and whether a source must carry it."""

    attr: str
    env: str  # without PREFIX
    output: str | None  # the template's Output key; None when the stack does not export it
    kind: Kind = "text"
    required_env: bool = False
    required_output: bool = False

    @property
    def env_name(self) -> str:
        return PREFIX + self.env


FIELDS: tuple[Field, ...] = (
    Field("queues_table", "QUEUES_TABLE", "QueuesTableName", required_env=True, required_output=True),
    Field("loops_table", "LOOPS_TABLE", "LoopsTableName", required_env=True, required_output=True),
    Field("process_function", "PROCESS_FUNCTION", "ProcessFunctionName", required_output=True),
    Field("scale_up_topic_arn", "SCALE_UP_TOPIC_ARN", "ScaleUpTopicArn", required_output=True),
    Field("scale_down_topic_arn", "SCALE_DOWN_TOPIC_ARN", "ScaleDownTopicArn", required_output=True),
    Field("stack_name", "STACK_NAME", None),
    Field("jobs_table", "JOBS_TABLE", "JobsTableName"),  # optional: a stack without the job layer has none
    # What enqueuers and `jobs apply` need of the job layer (optional too): Scheduler's group, role and DLQ, and
    # the topic a job queue's DLQ alarm notifies.
    Field("schedule_group", "SCHEDULE_GROUP", "JobsScheduleGroupName"),
    Field("scheduler_role_arn", "SCHEDULER_ROLE_ARN", "SchedulerRoleArn"),
    Field("schedule_dlq_arn", "SCHEDULE_DLQ_ARN", "SchedulesDeadLetterQueueArn"),
    Field("alerts_topic_arn", "ALERTS_TOPIC_ARN", "AlertsTopicArn"),
    # The entry topic producers publish jobs to (SNS, any language), and where what no job matches lands.
    Field("entry_topic_arn", "ENTRY_TOPIC_ARN", "EntryTopicArn"),
    Field("unroutable_queue_url", "UNROUTABLE_QUEUE_URL", "UnroutableQueueUrl"),
    # The secret http: workers' requests and receipts are signed with (jobs/http.py), JSON {"current", "previous"?}.
    Field("http_secret_arn", "HTTP_SECRET_ARN", "HttpWorkersSecretArn"),
    Field("heartbeat_s", "HEARTBEAT_S", "HeartbeatSeconds", "seconds"),
    Field("reserve_s", "RESERVE_S", "ReserveSeconds", "seconds"),
    Field("stale_after_s", "STALE_AFTER_S", "StaleAfterSeconds", "seconds"),
    Field("alarm_period_s", "ALARM_PERIOD_S", "AlarmPeriodSeconds", "whole_seconds"),
)
FIELD_BY_ATTR = {field.attr: field for field in FIELDS}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Names of the stack's resources and the timing knobs every function shares."""

    queues_table: str
    loops_table: str
    process_function: str = ""
    scale_up_topic_arn: str = ""
    scale_down_topic_arn: str = ""
    stack_name: str = ""
    jobs_table: str = ""  # the Jobs table (status rows, unique keys, cron ticks); "" when the stack has no job layer
    schedule_group: str = ""  # EventBridge Scheduler group of delayed and cron jobs
    scheduler_role_arn: str = ""  # the role Scheduler sends jobs with
    schedule_dlq_arn: str = ""  # where Scheduler puts deliveries it could not make
    alerts_topic_arn: str = ""  # operational alerts (a job queue's DLQ alarm notifies it)
    entry_topic_arn: str = ""  # the SNS entry topic `jobs apply` subscribes job queues to
    unroutable_queue_url: str = ""  # entry-topic messages no job matches
    http_secret_arn: str = ""  # Secrets Manager secret http: workers sign with; "" when the stack has none
    heartbeat_s: float = defaults.HEARTBEAT_S
    reserve_s: float = defaults.RESERVE_S
    stale_after_s: float = defaults.STALE_AFTER_S
    alarm_period_s: int = defaults.ALARM_PERIOD_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [f.env_name for f in FIELDS if f.required_env and not env.get(f.env_name)]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be set (or pass --stack NAME to the CLI)")
        return cls._parse({f.attr: env.get(f.env_name, "") for f in FIELDS}, lambda f: f.env_name)

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: Mapping[str, str]) -> Settings:
        """ConfigError naming every missing or malformed output."""
        missing = sorted(f.output for f in FIELDS if f.required_output and f.output and not outputs.get(f.output))
        if missing:
            raise ConfigError(f"stack {stack_name} is not an sqsloops stack: missing outputs {', '.join(missing)}")
        raw = {f.attr: outputs.get(f.output, "") if f.output else "" for f in FIELDS}
        raw["stack_name"] = stack_name
        return cls._parse(raw, lambda f: f"stack {stack_name} output {f.output}")

    @classmethod
    def _parse(cls, raw: Mapping[str, str], where: Any) -> Settings:
        """Text as given; numbers positive; an empty value keeps the field's default."""
        values: dict[str, Any] = {}
        for field in FIELDS:
            text = raw.get(field.attr, "")
            if not text:
                continue
            if field.kind == "text":
                values[field.attr] = text
                continue
            try:
                number = float(text)
            except ValueError as exc:
                raise ConfigError(f"{where(field)} must be a number, got {text!r}") from exc
            if number <= 0:
                raise ConfigError(f"{where(field)} must be positive, got {text!r}")
            values[field.attr] = int(number) if field.kind == "whole_seconds" else number
        return cls(**values)

    def environment(self) -> dict[str, str]:
        """The variables that make `from_env` return these settings (for a function's environment or a child)."""
        return {f.env_name: str(getattr(self, f.attr)) for f in FIELDS if getattr(self, f.attr) != ""}


def missing_for_writes(settings: Settings) -> list[str]:
    """Writing needs the whole stack (reading needs only the tables): the variables of what is not set."""
    needed = ("process_function", "scale_up_topic_arn", "scale_down_topic_arn", "stack_name")
    return [FIELD_BY_ATTR[attr].env_name for attr in needed if not getattr(settings, attr)]
