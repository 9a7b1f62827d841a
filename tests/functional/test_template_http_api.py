"""The jobs HTTP API in template.yaml, as CloudFormation sees it (translated by samtranslator): AWS_IAM on every
route but the http: workers' receipt route (no gateway auth: the function checks its HMAC), throttling and access
logs on the stage, the invoke policy on these routes only, and the same routes the embedded AWS's gateway serves
(read from the same template)."""

from __future__ import annotations

from typing import Any

from sqsloops.local.gateway import http_api_routes
from sqsloops.local.provision import load_template
from tests.conftest import ACCOUNT, REGION
from tests.functional.test_template_policies import STACK, TEMPLATE, Stack, as_list, translated

SIGNED_ROUTES = {("POST", "/jobs"), ("POST", "/jobs/batch"), ("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}")}
RECEIPT_ROUTE = ("POST", "/jobs/{id}/receipt")
ROUTES = SIGNED_ROUTES | {RECEIPT_ROUTE}
API = "ref:JobsHttpApi"  # how the policies test's resolver renders the API's id


def api_body() -> dict[str, Any]:
    body: dict[str, Any] = translated()["Resources"]["JobsHttpApi"]["Properties"]["Body"]
    return body


def test_every_route_but_the_receipt_route_is_signed_with_iam_and_goes_to_the_jobs_api_function() -> None:
    paths = api_body()["paths"]
    found = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert found == ROUTES
    for path, methods in paths.items():
        for method, operation in methods.items():
            if (method.upper(), path) == RECEIPT_ROUTE:
                assert operation["security"] == [{"NONE": []}]  # `Authorizer: NONE`: the function checks the HMAC
            else:
                assert operation["security"] == [{"AWS_IAM": []}]
            integration = operation["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["payloadFormatVersion"]) == ("aws_proxy", "2.0")
            assert "${JobsApiFunction.Arn}" in integration["uri"]["Fn::Sub"]


def test_the_stage_is_throttled_by_parameters_and_access_logged_with_retention() -> None:
    resources = translated()["Resources"]
    [stage] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["JobsApiAccessLogGroup", "Arn"]}
    assert "$context.status" in stage["AccessLogSettings"]["Format"]
    assert "\n" not in stage["AccessLogSettings"]["Format"]  # API Gateway takes a one-line format
    group = resources["JobsApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_invoke_policy_allows_these_routes_and_nothing_else() -> None:
    stack = Stack()
    document = stack.resolve(stack.cfn["Resources"]["JobsApiInvokePolicy"]["Properties"]["PolicyDocument"])
    [statement] = as_list(document["Statement"])
    prefix = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API}/$default"
    assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
    assert sorted(statement["Resource"]) == sorted(
        [f"{prefix}/POST/jobs", f"{prefix}/POST/jobs/batch", f"{prefix}/GET/jobs/*", f"{prefix}/DELETE/jobs/*"]
    )
    outputs = stack.cfn["Outputs"]
    assert outputs["JobsApiInvokePolicyArn"]["Value"] == {"Ref": "JobsApiInvokePolicy"}
    # in the form sqsloops.local.gateway.local_outputs recognizes, to point it at the local gateway
    url = "https://${JobsHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    assert outputs["JobsApiUrl"]["Value"] == {"Fn::Sub": url}


def test_the_local_gateway_serves_the_same_routes_from_the_same_template() -> None:
    # the embedded AWS reads the template as provisioning loads it, and routes each path to the deployed function
    routes = http_api_routes(load_template(TEMPLATE), {"JobsApiFunction": f"{STACK}-jobs-api"})
    assert {(route.method, route.path) for route in routes["JobsHttpApi"]} == ROUTES
    assert {(route.method, route.path) for route in routes["JobsHttpApi"] if not route.signed} == {RECEIPT_ROUTE}
    assert {route.function_name for route in routes["JobsHttpApi"]} == {f"{STACK}-jobs-api"}
    assert routes["JobsHttpApi"][0].match("GET", "/jobs/a%20b") is None  # POST /jobs first: no GET there
    status = next(route for route in routes["JobsHttpApi"] if route.key == "GET /jobs/{id}")
    assert (status.match("GET", "/jobs/a%20b"), status.match("GET", "/jobs/a/b")) == ({"id": "a b"}, None)
