"""A job's failure-rate alarm: CloudWatch metric math over the runner's per-job EMF metrics (jobs/metrics.py).

    rate = FILL(failed, 0) / (FILL(failed, 0) + FILL(succeeded, 0))     failed, succeeded: Sum per period

in ALARM when the rate stays above the job's `failure_alarm` threshold (`@job`, default 0.2) in DATAPOINTS of
EVALUATION_PERIODS periods; its actions notify the stack's Alerts topic (both ways, as the DLQ alarm does). A period
in which the job did not run has no data: `notBreaching`, so an idle job is OK. Each failed attempt counts (a job
that succeeds on its third attempt counted two failures): the rate is of attempts, which is what a flaky
dependency shows up in. The metric dimensions are the ones the runner's EMF lines carry (Powertools adds
`service`), or the alarm would watch a metric nobody writes. Names start with the stack's, as the Alerts topic's
policy lets only `<stack>-*` alarms publish.

`jobs apply` (ops/jobs_apply.py) plans it per job: create, update, unchanged, delete when the option is turned off,
and with `--prune` when the job is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqsloops.jobs.metrics import DIMENSION, FAILED, NAMESPACE, SUCCEEDED
from sqsloops.log import SERVICE
from sqsloops.ops.alarms import alarm_matches

ALARM_INFIX = "-job-"
ALARM_SUFFIX = "-failure-rate"
PERIOD_S = 300  # EMF counts are sparse: five minutes of attempts make a rate worth alerting on
EVALUATION_PERIODS = 3
DATAPOINTS = 2  # two bad periods out of three: one burst of retries does not page anyone
EXPRESSION = "FILL(failed, 0) / (FILL(failed, 0) + FILL(succeeded, 0))"


def alarm_name(stack: str, job: str) -> str:
    return f"{stack}{ALARM_INFIX}{job}{ALARM_SUFFIX}"


def _count(query_id: str, metric: str, job: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": metric,
                "Dimensions": [{"Name": DIMENSION, "Value": job}, {"Name": "service", "Value": SERVICE}],
            },
            "Period": PERIOD_S,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


def alarm_spec(*, stack: str, job: str, threshold: float, topic_arn: str) -> dict[str, Any]:
    """The PutMetricAlarm request of `job`'s failure-rate alarm."""
    return {
        "AlarmName": alarm_name(stack, job),
        "AlarmDescription": (
            f"sqsloops: more than {threshold:.0%} of job {job}'s attempts failed in {DATAPOINTS} of"
            f" {EVALUATION_PERIODS} {PERIOD_S // 60}-minute periods: see `sqsloops jobs list {job} --state retrying`"
            f" and `sqsloops jobs dead {job}`"
        ),
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "Metrics": [
            _count("failed", FAILED, job),
            _count("succeeded", SUCCEEDED, job),
            {"Id": "rate", "Expression": EXPRESSION, "Label": f"{job} failure rate", "ReturnData": True},
        ],
        "EvaluationPeriods": EVALUATION_PERIODS,
        "DatapointsToAlarm": DATAPOINTS,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def alarm_spec_matches(existing: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """True when the alarm DescribeAlarms returned already is `spec`: the settings `alarm_matches` compares (a
    metric-math alarm has no Dimensions of its own; DescribeAlarms may list them empty), and its metric queries."""
    plain = {key: value for key, value in existing.items() if not (key == "Dimensions" and not value)}
    return alarm_matches(plain, spec) and _queries(existing.get("Metrics")) == _queries(spec.get("Metrics"))


def _queries(metrics: Any) -> list[tuple[Any, ...]]:
    """Metric queries in a comparable form: by Id, dimensions sorted, ReturnData defaulting to true as on AWS."""
    found: list[tuple[Any, ...]] = []
    for query in metrics or []:
        stat = query.get("MetricStat") or {}
        metric = stat.get("Metric") or {}
        dimensions = sorted((d.get("Name"), d.get("Value")) for d in metric.get("Dimensions") or [])
        found.append(
            (
                query.get("Id"),
                query.get("Expression"),
                query.get("Label"),
                query.get("ReturnData", True),
                metric.get("Namespace"),
                metric.get("MetricName"),
                tuple(dimensions),
                stat.get("Period"),
                stat.get("Stat"),
            )
        )
    return sorted(found, key=lambda item: str(item[0]))
