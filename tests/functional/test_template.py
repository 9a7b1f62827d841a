"""template.yaml: the guard rails of the recursive loop, encryption, least privilege and the pinned outputs.

The SAM template is translated offline (samtranslator) so that policy templates, Globals and events are checked
as CloudFormation will see them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

from tests.conftest import Clients, create_tables

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STACK = "teststack"

PINNED_OUTPUTS = {
    "QueuesTableName",
    "LoopsTableName",
    "ProcessFunctionName",
    "ScaleUpTopicArn",
    "ScaleDownTopicArn",
    "ScaleUpFunctionName",
    "ScaleDownFunctionName",
    "RestartFunctionName",
    "AlertsTopicArn",
    "HeartbeatSeconds",
    "StaleAfterSeconds",
    "AlarmPeriodSeconds",
}
SETTINGS_ENV = {
    "SQSLOOPS_QUEUES_TABLE",
    "SQSLOOPS_LOOPS_TABLE",
    "SQSLOOPS_PROCESS_FUNCTION",
    "SQSLOOPS_SCALE_UP_TOPIC_ARN",
    "SQSLOOPS_SCALE_DOWN_TOPIC_ARN",
    "SQSLOOPS_STACK_NAME",
    "SQSLOOPS_HEARTBEAT_S",
    "SQSLOOPS_RESERVE_S",
    "SQSLOOPS_STALE_AFTER_S",
    "SQSLOOPS_ALARM_PERIOD_S",
}
FUNCTION_NAMES = {
    "ProcessFunction": "teststack-process",
    "ScaleUpFunction": "teststack-scale-up",
    "ScaleDownFunction": "teststack-scale-down",
    "RestartFunction": "teststack-restart",
    "JobsApiFunction": "teststack-jobs-api",
}


class OfflinePolicies:
    """Managed-policy loader for samtranslator that never calls IAM."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        }


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written (short tags decoded as CloudFormation does)."""
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    plain: dict[str, Any] = json.loads(json.dumps(template))  # the decoder's node classes, as plain dicts
    return plain


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The template translated to plain CloudFormation, code locations pointed at S3 as `sam package` does."""
    template = copy.deepcopy(sam)
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://artifacts/{properties[key].strip('/')}.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_PROFILE", raising=False)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield transform(template, {}, OfflinePolicies())


def resources_of(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in cfn["Resources"].items() if r["Type"] == type_}


def render(value: Any) -> Any:
    """Resolve the intrinsics that name things (`!Sub` of pseudo parameters) for stack STACK."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${AWS::StackName}", STACK)
    return value


def parameter(sam: dict[str, Any], value: Any) -> dict[str, Any]:
    """The parameter a property is bound to (it must be bound to one)."""
    assert isinstance(value, dict), f"expected a !Ref to a parameter, got {value}"
    assert set(value) == {"Ref"}, f"expected a !Ref to a parameter, got {value}"
    return dict(sam["Parameters"][value["Ref"]])


def statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every policy statement anywhere in the template: roles, managed policies, key and topic policies."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            yield from node["Statement"]
        for child in node.values():
            yield from statements(child)
    elif isinstance(node, list):
        for child in node:
            yield from statements(child)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_actions(cfn: dict[str, Any], function: str) -> set[str]:
    """Actions a function's role allows through its inline policies and the template's own managed policies."""
    role_name = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = cfn["Resources"][role_name]["Properties"]
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            documents.append(cfn["Resources"][arn["Ref"]]["Properties"]["PolicyDocument"])
    return {
        action
        for statement in statements(documents)
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


# ---------------------------------------------------------------- the recursive loop's guard rails


def test_process_function_allows_recursion_under_a_fixed_name(cfn: dict[str, Any]) -> None:
    # Given the process function, When deployed, Then Lambda's loop detection will not stop it after ~16 hops
    function = cfn["Resources"]["ProcessFunction"]["Properties"]
    assert function["RecursiveLoop"] == "Allow"
    assert render(function["FunctionName"]) == "teststack-process"
    assert render(function["Environment"]["Variables"]["SQSLOOPS_PROCESS_FUNCTION"]) == "teststack-process"


def test_process_function_never_retries_and_drops_stale_self_invocations(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    configs = [
        r["Properties"]
        for r in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": "ProcessFunction"}
    ]
    assert len(configs) == 1
    assert configs[0]["MaximumRetryAttempts"] == 0
    assert 60 <= int(configs[0]["MaximumEventAgeInSeconds"]) <= 300  # SAM resolves the parameter (its default here)
    declared = sam["Resources"]["ProcessFunction"]["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"]
    max_age = parameter(sam, declared)
    assert 60 <= int(max_age["MinValue"]) <= int(max_age["Default"]) <= int(max_age["MaxValue"]) <= 300


def test_process_function_has_reserved_concurrency_and_timeout_from_parameters(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    function = cfn["Resources"]["ProcessFunction"]["Properties"]
    reserved = parameter(sam, function["ReservedConcurrentExecutions"])
    assert int(reserved["MinValue"]) >= 1
    timeout = parameter(sam, function["Timeout"])
    assert int(timeout["Default"]) == 900
    assert int(timeout["MaxValue"]) == 900


def test_an_alarm_on_process_concurrency_notifies_the_alerts_topic(cfn: dict[str, Any]) -> None:
    alarms = [
        r["Properties"]
        for r in resources_of(cfn, "AWS::CloudWatch::Alarm").values()
        if '"ConcurrentExecutions"' in json.dumps(r) and '{"Ref": "ProcessFunction"}' in json.dumps(r)
    ]
    assert len(alarms) == 1
    assert alarms[0]["AlarmActions"] == [{"Ref": "AlertsTopic"}]


# ---------------------------------------------------------------- state and encryption


def test_tables_are_encrypted_with_point_in_time_recovery(cfn: dict[str, Any]) -> None:
    tables = resources_of(cfn, "AWS::DynamoDB::Table")
    assert set(tables) == {"QueuesTable", "LoopsTable", "JobsTable"}
    for table in tables.values():
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_table_keys_match_the_tables_the_tests_create(cfn: dict[str, Any], aws: Clients) -> None:
    # Given the tables as tests/conftest.py creates them in moto
    create_tables(aws.dynamodb, queues_table="q", loops_table="l")
    for logical_id, name in (("QueuesTable", "q"), ("LoopsTable", "l")):
        # When read back
        created = aws.dynamodb.describe_table(TableName=name)["Table"]
        declared = cfn["Resources"][logical_id]["Properties"]
        # Then the template declares the same keys
        assert declared["KeySchema"] == created["KeySchema"]
        assert sorted(declared["AttributeDefinitions"], key=str) == sorted(created["AttributeDefinitions"], key=str)


def test_every_topic_is_encrypted_with_a_key_cloudwatch_may_use(cfn: dict[str, Any]) -> None:
    topics = resources_of(cfn, "AWS::SNS::Topic")
    assert {"ScaleUpTopic", "ScaleDownTopic", "AlertsTopic"} <= set(topics)
    for topic in topics.values():
        key_ref = topic["Properties"]["KmsMasterKeyId"]
        # a customer-managed key: CloudWatch cannot publish to topics under the AWS-managed alias/aws/sns
        assert isinstance(key_ref, dict), "KmsMasterKeyId must be the template's own key"
        key = cfn["Resources"][key_ref["Ref"]]
        assert key["Type"] == "AWS::KMS::Key"
        cloudwatch = [
            s
            for s in key["Properties"]["KeyPolicy"]["Statement"]
            if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        ]
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= {a for s in cloudwatch for a in as_list(s["Action"])}


def test_cloudwatch_may_publish_to_every_topic_from_this_account_only(cfn: dict[str, Any]) -> None:
    covered: list[Any] = []
    for policy in resources_of(cfn, "AWS::SNS::TopicPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}:
                assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
                # registration names its alarms "{stack}-{queue}-{hash8}-depth-{k}": they must all fall under this
                source_arn = render(statement["Condition"]["ArnLike"]["aws:SourceArn"])
                assert source_arn.endswith(f":alarm:{STACK}-*")
                covered += as_list(statement["Resource"])
    for name in resources_of(cfn, "AWS::SNS::Topic"):
        if name != "EntryTopic":  # producers publish there, no alarm does
            assert {"Ref": name} in covered


# ---------------------------------------------------------------- least privilege


def test_no_policy_grants_all_actions_of_a_service(cfn: dict[str, Any]) -> None:
    found = list(statements(cfn["Resources"]))
    assert len(found) > 10
    for statement in found:
        for action in as_list(statement.get("Action", [])) + as_list(statement.get("NotAction", [])):
            assert isinstance(action, str), statement
            assert action != "*", statement
            assert not action.endswith(":*"), statement


def test_the_process_function_may_poll_forward_and_heartbeat(cfn: dict[str, Any]) -> None:
    assert {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",  # DeleteMessageBatch is authorized by it, ChangeMessageVisibilityBatch by the next
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # dead messages, to the DLQ
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "lambda:InvokeFunction",
    } <= allowed_actions(cfn, "ProcessFunction")


@pytest.mark.parametrize("function", ["ScaleUpFunction", "ScaleDownFunction", "RestartFunction"])
def test_scaling_functions_may_manage_tokens_and_start_loops(cfn: dict[str, Any], function: str) -> None:
    assert {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "sqs:GetQueueAttributes",
        "lambda:InvokeFunction",
    } <= allowed_actions(cfn, function)


# ---------------------------------------------------------------- functions, triggers, logs


def test_every_function_gets_the_settings_it_reads(cfn: dict[str, Any]) -> None:
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert {render(f["Properties"]["FunctionName"]) for f in functions.values()} == set(FUNCTION_NAMES.values())
    for function in functions.values():
        properties = function["Properties"]
        assert set(properties["Environment"]["Variables"]) >= SETTINGS_ENV
        assert properties["Runtime"] == "python3.11"
        assert properties["Architectures"] == ["arm64"]
        # the runtime (LibLayer) everywhere; the process function also loads the user's jobs (AppLayer)
        expected = 2 if render(properties["FunctionName"]) == FUNCTION_NAMES["ProcessFunction"] else 1
        assert len(properties["Layers"]) == expected


def test_every_function_logs_to_its_own_group_with_retention(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    groups = resources_of(cfn, "AWS::Logs::LogGroup")
    for logical_id, name in FUNCTION_NAMES.items():
        group_ref = cfn["Resources"][logical_id]["Properties"]["LoggingConfig"]["LogGroup"]
        group = groups[group_ref["Ref"]]["Properties"]
        assert render(group["LogGroupName"]) == f"/aws/lambda/{name}"
        assert int(parameter(sam, group["RetentionInDays"])["Default"]) > 0


def test_alarms_reach_the_scaling_functions_through_their_topics(cfn: dict[str, Any]) -> None:
    subscriptions = {
        (s["Properties"]["TopicArn"]["Ref"], s["Properties"]["Endpoint"]["Fn::GetAtt"][0])
        for s in resources_of(cfn, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "lambda"
    }
    assert subscriptions == {("ScaleUpTopic", "ScaleUpFunction"), ("ScaleDownTopic", "ScaleDownFunction")}


def test_the_restart_sweep_runs_every_minute_by_default(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    rules = [
        r["Properties"]
        for r in resources_of(cfn, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["RestartFunction", "Arn"]}
    ]
    assert len(rules) == 1
    assert parameter(sam, rules[0]["ScheduleExpression"])["Default"] == "rate(1 minute)"


# ---------------------------------------------------------------- parameters, outputs, lint


def test_parameters_are_described_and_bounded(sam: dict[str, Any]) -> None:
    for name, spec in sam["Parameters"].items():
        assert spec.get("Description"), name
        if spec["Type"] == "Number":
            assert "AllowedValues" in spec or {"MinValue", "MaxValue"} <= set(spec), name


def test_alarm_periods_are_ones_cloudwatch_accepts(sam: dict[str, Any]) -> None:
    periods = [int(p) for p in sam["Parameters"]["AlarmPeriodSeconds"]["AllowedValues"]]
    assert all(p in (10, 30) or p % 60 == 0 for p in periods)
    assert int(sam["Parameters"]["AlarmPeriodSeconds"]["Default"]) == 60


def test_outputs_include_everything_the_cli_discovers(cfn: dict[str, Any]) -> None:
    assert set(cfn["Outputs"]) >= PINNED_OUTPUTS


def test_cfn_lint_finds_nothing() -> None:
    matches = lint_file(TEMPLATE)
    assert [str(m) for m in matches] == []


def test_no_literal_account_or_region_is_baked_in() -> None:
    text = TEMPLATE.read_text()
    assert not re.search(r"\b\d{12}\b", text)
    assert "us-east-1" not in text
