"""The operator's composition root: the runtime and job roots plus what only operators use (alarms, registration)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqsloops.jobs.root import JobsRoot
from sqsloops.ops.alarms import Alarms
from sqsloops.ops.handler_check import HandlerCheck
from sqsloops.ops.registration import QueueAdmin


class OpsRoot(JobsRoot):
    """What the CLI, the demo, benchmarks and tests build from one Settings.

    check_handlers=False wires an admin whose register() checks no handler (tests whose handlers are only names).
    """

    def __init__(self, *args: Any, check_handlers: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._check_handlers = check_handlers

    @cached_property
    def alarms(self) -> Alarms:
        return Alarms(
            cloudwatch=self.clients.cloudwatch,
            stack_name=self.settings.stack_name,
            scale_up_topic_arn=self.settings.scale_up_topic_arn,
            scale_down_topic_arn=self.settings.scale_down_topic_arn,
            period_s=self.settings.alarm_period_s,
        )

    @cached_property
    def handler_check(self) -> HandlerCheck:
        """What `register` asks before writing; its synchronous invokes wait as long as a handler's may."""
        return HandlerCheck(
            lambda_client=self.clients.lambda_forwarding,
            process_function=self.settings.process_function,
            stack_name=self.settings.stack_name,
            cloudformation=self.clients.cloudformation,
            iam=self.clients.get("iam"),
        )

    @cached_property
    def admin(self) -> QueueAdmin:
        return QueueAdmin(
            settings=self.settings,
            registry=self.registry,
            tokens=self.tokens,
            launcher=self.launcher,
            fleet=self.fleet,
            alarms=self.alarms,
            sqs=self.sqs,
            clock=self.clock,
            handler_check=self.handler_check if self._check_handlers else None,
        )
