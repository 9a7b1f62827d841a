"""The operator's composition root: the runtime Root plus what only operators use (alarms, registration)."""

from __future__ import annotations

from functools import cached_property

from sqsloops.ops.alarms import Alarms
from sqsloops.ops.registration import QueueAdmin
from sqsloops.root import Root


class OpsRoot(Root):
    """What the CLI, the demo, benchmarks and tests build from one Settings."""

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
        )
