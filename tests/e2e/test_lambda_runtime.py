"""The embedded Lambda is no more permissive than AWS: a worker sees its code, its layers and the runtime's boto3,
never this virtualenv's other packages."""

from __future__ import annotations

import json

import pytest

from sqsloops.local.server import EmbeddedAws
from tests.e2e.conftest import MakeFunction

pytestmark = pytest.mark.e2e

# Installed in this virtualenv (the layer's requirement), but in no function zip and no layer of this function.
NEEDS_POWERTOOLS = """
from aws_lambda_powertools import Logger

def handler(event, context):
    return "imported"
"""

RUNTIME = """
import importlib

def handler(event, context):
    found = {}
    for name in event["modules"]:
        try:
            importlib.import_module(name)
            found[name] = True
        except ImportError:
            found[name] = False
    return found
"""


def test_a_function_whose_zip_lacks_a_dependency_fails_to_import_as_on_aws(
    embedded_aws: EmbeddedAws, make_function: MakeFunction
) -> None:
    function_name = make_function(NEEDS_POWERTOOLS)
    response = embedded_aws.client("lambda").invoke(FunctionName=function_name, Payload=b"{}")
    assert response.get("FunctionError") == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'aws_lambda_powertools'" in error["errorMessage"]


def test_a_function_has_the_runtimes_sdk_and_nothing_else_of_this_virtualenv(
    embedded_aws: EmbeddedAws, make_function: MakeFunction
) -> None:
    sdk = ["boto3", "botocore", "jmespath", "urllib3", "dateutil", "s3transfer", "six"]
    others = ["moto", "sqsloops", "yaml", "pytest", "aws_lambda_powertools", "tests.e2e.handlers"]
    function_name = make_function(RUNTIME)
    payload = json.dumps({"modules": sdk + others}).encode()
    response = embedded_aws.client("lambda").invoke(FunctionName=function_name, Payload=payload)
    found = json.loads(response["Payload"].read())
    assert found == {name: name in sdk for name in sdk + others}
