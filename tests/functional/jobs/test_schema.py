"""The Jobs table's definition: the table moto creates from it, and the CloudFormation resource it describes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sqsloops.jobs import schema
from sqsloops.jobs.states import JobState
from tests.conftest import Clients

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def test_the_table_is_created_as_defined(aws: Clients, jobs_table: str) -> None:
    # Given the table created from schema.py (the jobs_table fixture)

    # When it is described
    table = aws.dynamodb.describe_table(TableName=jobs_table)["Table"]
    ttl = aws.dynamodb.describe_time_to_live(TableName=jobs_table)["TimeToLiveDescription"]
    backups = aws.dynamodb.describe_continuous_backups(TableName=jobs_table)["ContinuousBackupsDescription"]

    # Then it has one string hash key, the listing index, on-demand billing, encryption, TTL and PITR
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_job_state"
    assert index["KeySchema"] == [
        {"AttributeName": "job", "KeyType": "HASH"},
        {"AttributeName": "state_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert not {"result", "traceback"} & set(index["Projection"]["NonKeyAttributes"])
    assert ttl == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_cloudformation_properties_describe_the_same_table() -> None:
    # Given the create_table arguments and the CloudFormation properties
    api = dict(schema.JOBS_TABLE)
    cfn = schema.cloudformation_properties()

    # Then keys, attributes and index agree; CloudFormation also carries TTL, SSE and PITR; no name in either
    for name in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert cfn[name] == api[name]
    assert cfn["SSESpecification"] == {"SSEEnabled": True}
    assert cfn["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert cfn["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "TableName" not in api
    assert "TableName" not in cfn
    # every key attribute is defined, and nothing else (CloudFormation rejects unused definitions)
    defined = {a["AttributeName"] for a in cfn["AttributeDefinitions"]}
    used = {k["AttributeName"] for k in cfn["KeySchema"]} | {
        k["AttributeName"] for index in cfn["GlobalSecondaryIndexes"] for k in index["KeySchema"]
    }
    assert defined == used


def test_copies_are_independent() -> None:
    first = schema.create_table_kwargs("a")
    first["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"].append("mutated")
    assert (
        "mutated" not in schema.create_table_kwargs("b")["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"]
    )
    assert (
        "mutated"
        not in schema.cloudformation_properties()["GlobalSecondaryIndexes"][0]["Projection"]["NonKeyAttributes"]
    )


def _jobs_table_resource() -> dict[str, Any] | None:
    from cfnlint.decode import decode  # type: ignore[import-untyped]

    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    plain: dict[str, Any] = json.loads(json.dumps(template))
    resource: dict[str, Any] | None = plain.get("Resources", {}).get("JobsTable")
    return resource


def test_the_template_declares_the_table_as_defined() -> None:
    resource = _jobs_table_resource()
    assert resource is not None, "template.yaml has no JobsTable"
    properties = dict(resource["Properties"])
    properties.pop("TableName", None)
    assert properties == schema.cloudformation_properties()


def test_keys_sort_as_time_and_never_collide() -> None:
    assert schema.sortable_time(1.5) < schema.sortable_time(10.0) < schema.sortable_time(1_700_000_000.0)
    assert schema.state_sort_key(JobState.QUEUED, 1_700_000_000.0) == "queued#1700000000.000000"
    assert schema.tick_sort_key(1_700_000_000.0) == "tick#1700000000.000000"
    assert schema.tick_pk("digest", 1_700_000_000) == schema.tick_pk("digest", 1_700_000_000.0)
    assert schema.tick_pk("digest", 1_700_000_000.0) == "tick#digest#2023-11-14T22:13:20Z"
    assert schema.tick_pk("digest", 1_700_000_000.25) == "tick#digest#2023-11-14T22:13:20.250000Z"
    assert len({schema.job_pk("x"), schema.key_pk("x", "x"), schema.tick_pk("x", 0)}) == 3
    with pytest.raises(ValueError, match="epoch seconds"):
        schema.sortable_time(-1)
