"""sqsloops.local.provision: template.yaml deployed into moto (in-process), with what moto's CloudFormation skips."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

from sqsloops.errors import DeployError
from sqsloops.local.provision import Deployment, deploy
from sqsloops.settings import Settings
from tests.functional.test_template import PINNED_OUTPUTS, SETTINGS_ENV

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
REGION = "us-east-1"
STACK = "provisioned"
PARAMETERS = {"ProcessReservedConcurrency": "7", "MaxEventAgeSeconds": "120", "AlertEmail": "ops@example.com"}


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


@dataclass
class Deployed:
    deployment: Deployment

    @property
    def outputs(self) -> dict[str, str]:
        return self.deployment.outputs


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """template.yaml deployed once for this module (every test only reads)."""
    with mock_aws():
        yield Deployed(deploy(TEMPLATE, stack_name=STACK, client=client, parameters=PARAMETERS))


def function_arn(name: str) -> str:
    return str(client("lambda").get_function(FunctionName=name)["Configuration"]["FunctionArn"])


def test_outputs_carry_every_pinned_key_and_make_settings(deployed: Deployed) -> None:
    assert set(deployed.outputs) >= PINNED_OUTPUTS
    settings = Settings.from_outputs(STACK, deployed.outputs)
    assert settings.process_function == f"{STACK}-process"
    assert settings.stale_after_s == 120


def test_the_tables_exist_with_the_templates_keys(deployed: Deployed) -> None:
    dynamodb = client("dynamodb")
    queues = dynamodb.describe_table(TableName=deployed.outputs["QueuesTableName"])["Table"]
    loops = dynamodb.describe_table(TableName=deployed.outputs["LoopsTableName"])["Table"]
    assert [k["AttributeName"] for k in queues["KeySchema"]] == ["queue_url"]
    assert [k["AttributeName"] for k in loops["KeySchema"]] == ["queue_url", "token"]


def test_every_function_has_its_layer_and_string_settings(deployed: Deployed) -> None:
    lambda_ = client("lambda")
    assert sorted(deployed.deployment.function_names) == sorted(
        f"{STACK}-{suffix}" for suffix in ("process", "scale-up", "scale-down", "restart", "jobs-api")
    )
    handlers = {"scale-up": "lambda_function.scale_up", "scale-down": "lambda_function.scale_down"}
    for name in deployed.deployment.function_names:
        config = lambda_.get_function_configuration(FunctionName=name)
        variables = config["Environment"]["Variables"]
        assert set(variables) >= SETTINGS_ENV
        assert all(isinstance(value, str) for value in variables.values())
        assert variables["SQSLOOPS_HEARTBEAT_S"] == "10"
        assert len(config["Layers"]) == (2 if name == f"{STACK}-process" else 1)  # the process function: + App
        assert config["Handler"] == handlers.get(name.removeprefix(f"{STACK}-"), "lambda_function.handler")


def test_the_layer_zip_carries_the_package_under_python(deployed: Deployed) -> None:
    lambda_ = client("lambda")
    layer_arn = lambda_.get_function_configuration(FunctionName=f"{STACK}-process")["Layers"][0]["Arn"]
    name, version = layer_arn.rsplit(":", 1)
    location = lambda_.get_layer_version(LayerName=name, VersionNumber=int(version))["Content"]
    assert location["CodeSize"] > 0
    content = get_backend(DEFAULT_ACCOUNT_ID, REGION).layers_versions_by_arn(layer_arn).code_bytes
    names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    assert "python/sqsloops/__init__.py" in names
    assert not any("__pycache__" in n for n in names)


def test_the_process_function_has_reserved_concurrency_and_its_event_invoke_config(deployed: Deployed) -> None:
    lambda_ = client("lambda")
    process = f"{STACK}-process"
    assert lambda_.get_function_concurrency(FunctionName=process)["ReservedConcurrentExecutions"] == 7
    config = lambda_.get_function_event_invoke_config(FunctionName=process)
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == 120
    assert lambda_.get_function_configuration(FunctionName=process)["Timeout"] == 900


def test_the_scaling_topics_deliver_to_their_functions(deployed: Deployed) -> None:
    sns = client("sns")
    for topic_key, function_key in (
        ("ScaleUpTopicArn", "ScaleUpFunctionName"),
        ("ScaleDownTopicArn", "ScaleDownFunctionName"),
    ):
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=deployed.outputs[topic_key])["Subscriptions"]
        assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
            ("lambda", function_arn(deployed.outputs[function_key]))
        ]


def test_a_conditional_subscription_follows_its_parameter(deployed: Deployed) -> None:
    subscriptions = client("sns").list_subscriptions_by_topic(TopicArn=deployed.outputs["AlertsTopicArn"])
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions["Subscriptions"]] == [("email", "ops@example.com")]


def test_cloudwatch_may_publish_to_the_topics(deployed: Deployed) -> None:
    attributes = client("sns").get_topic_attributes(TopicArn=deployed.outputs["ScaleUpTopicArn"])["Attributes"]
    statements = json.loads(attributes["Policy"])["Statement"]
    assert {"Service": "cloudwatch.amazonaws.com"} in [s.get("Principal") for s in statements]


def test_the_restart_sweep_is_scheduled(deployed: Deployed) -> None:
    events = client("events")
    restart_arn = function_arn(deployed.outputs["RestartFunctionName"])
    scheduled = [
        (rule["ScheduleExpression"], [t["Arn"] for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]])
        for rule in events.list_rules()["Rules"]
    ]
    assert scheduled == [("rate(1 minute)", [restart_arn])]


def test_the_templates_alarms_exist_including_metric_math(deployed: Deployed) -> None:
    alarms = {a["AlarmName"]: a for a in client("cloudwatch").describe_alarms()["MetricAlarms"]}
    concurrency = alarms[f"{STACK}-process-concurrency"]
    assert [m["Id"] for m in concurrency["Metrics"]] == ["concurrency", "percent"]
    assert concurrency["Metrics"][1]["Expression"] == "100 * concurrency / 7"
    assert concurrency["AlarmActions"] == [deployed.outputs["AlertsTopicArn"]]
    assert alarms[f"{STACK}-restart-errors"]["MetricName"] == "Errors"
    assert deployed.deployment.notes == ()


# ---------------------------------------------------------------- smaller templates (deployed next to the stack above)


def write_template(tmp_path: Path, resources: dict[str, Any], parameters: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "template.json"
    path.write_text(json.dumps({"Parameters": parameters or {}, "Resources": resources}))
    return path


@pytest.mark.usefixtures("deployed")
def test_a_table_with_time_to_live_gets_it(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        {
            "Jobs": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": "jobs",
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "job_id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                },
            }
        },
    )
    deploy(template, stack_name="ttl", client=client)
    ttl = client("dynamodb").describe_time_to_live(TableName="jobs")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


@pytest.mark.usefixtures("deployed")
def test_an_unknown_parameter_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    template = write_template(tmp_path, {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "lonely"}}})
    with pytest.raises(DeployError, match="NoSuchParameter"):
        deploy(template, stack_name="bad", client=client, parameters={"NoSuchParameter": "1"})
    assert not [t for t in client("sns").list_topics()["Topics"] if t["TopicArn"].endswith(":lonely")]
