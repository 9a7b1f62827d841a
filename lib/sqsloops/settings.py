"""Stack-wide settings, read once from the environment the template (or the CLI) provides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sqsloops import defaults
from sqsloops.errors import ConfigError

PREFIX = "SQSLOOPS_"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Names of the stack's resources and the timing knobs every function shares."""

    queues_table: str
    loops_table: str
    process_function: str = ""
    scale_up_topic_arn: str = ""
    scale_down_topic_arn: str = ""
    stack_name: str = ""
    heartbeat_s: float = defaults.HEARTBEAT_S
    reserve_s: float = defaults.RESERVE_S
    stale_after_s: float = defaults.STALE_AFTER_S
    alarm_period_s: int = defaults.ALARM_PERIOD_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default)

        def number(name: str, default: float) -> float:
            raw = get(name)
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError as exc:
                raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from exc
            if value <= 0:
                raise ConfigError(f"{PREFIX}{name} must be positive, got {raw!r}")
            return value

        queues_table, loops_table = get("QUEUES_TABLE"), get("LOOPS_TABLE")
        if not queues_table or not loops_table:
            raise ConfigError(
                f"{PREFIX}QUEUES_TABLE and {PREFIX}LOOPS_TABLE must be set (or pass --stack NAME to the CLI)"
            )
        return cls(
            queues_table=queues_table,
            loops_table=loops_table,
            process_function=get("PROCESS_FUNCTION"),
            scale_up_topic_arn=get("SCALE_UP_TOPIC_ARN"),
            scale_down_topic_arn=get("SCALE_DOWN_TOPIC_ARN"),
            stack_name=get("STACK_NAME"),
            heartbeat_s=number("HEARTBEAT_S", defaults.HEARTBEAT_S),
            reserve_s=number("RESERVE_S", defaults.RESERVE_S),
            stale_after_s=number("STALE_AFTER_S", defaults.STALE_AFTER_S),
            alarm_period_s=int(number("ALARM_PERIOD_S", defaults.ALARM_PERIOD_S)),
        )
