"""The local gateway's SigV4 check: requests signed by botocore's own signer pass, anything else is refused with
API Gateway's 403 answer; and the payload format 2.0 event it builds for the function."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sqsloops.local.gateway import (
    FORBIDDEN,
    SIGNATURE_MISMATCH,
    Route,
    SignatureError,
    payload_event,
    verify_sigv4,
)

HOST = "127.0.0.1:4567"
SECRETS = {"testing": "testing"}
NOW_S = time.time()  # a fixed moment for the event shape; signatures are verified against the time they were made

Edit = Callable[[list[tuple[str, str]]], list[tuple[str, str]]]


def sign(
    method: str = "POST",
    target: str = "/jobs",
    body: bytes = b'{"job": "x"}',
    *,
    key: str = "testing",
    secret: str = "testing",
    service: str = "execute-api",
    region: str = "us-east-1",
    headers: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The headers a producer's SDK sends (botocore's SigV4Auth), the host header included."""
    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return [("Host", HOST), *request.prepare().headers.items()]


def verify(
    headers: list[tuple[str, str]], *, method: str = "POST", target: str = "/jobs", body: bytes = b'{"job": "x"}'
) -> str:
    class Received:
        def raw_items(self) -> list[tuple[str, str]]:
            return headers

    return verify_sigv4(
        method=method,
        target=target,
        headers=Received(),
        body=body,
        secrets=SECRETS,
        region="us-east-1",
        now_s=time.time(),
    )


def test_a_request_signed_by_botocore_is_accepted_with_its_access_key() -> None:
    assert verify(sign()) == "testing"
    query = "/jobs/a%20b?x=1&a=2"
    assert verify(sign("GET", query, b""), method="GET", target=query, body=b"") == "testing"
    signed_body_hash = {"x-amz-content-sha256": hashlib.sha256(b'{"job": "x"}').hexdigest()}
    assert verify(sign(headers=signed_body_hash)) == "testing"


def without(name: str) -> Edit:
    return lambda headers: [(k, v) for k, v in headers if k.lower() != name]


def replaced(name: str, value: str) -> Edit:
    return lambda headers: [(k, value if k.lower() == name else v) for k, v in headers]


@pytest.mark.parametrize(
    ("make_headers", "answer"),  # signed when the test runs: a signature made at collection may expire
    [
        (lambda: without("authorization")(sign()), FORBIDDEN),
        (lambda: replaced("authorization", "Bearer abc")(sign()), FORBIDDEN),
        (lambda: sign(secret="wrong"), SIGNATURE_MISMATCH),
        (lambda: sign(service="lambda"), FORBIDDEN),
        (lambda: sign(region="eu-west-1"), FORBIDDEN),
        (lambda: sign(key="AKIDUNKNOWN"), {"message": "The security token included in the request is invalid."}),
        (lambda: replaced("x-amz-date", "20200101T000000Z")(sign()), {"message": "Signature expired"}),
        (lambda: without("x-amz-date")(sign()), FORBIDDEN),
        (lambda: replaced("host", "evil.example.com")(sign()), SIGNATURE_MISMATCH),
        (lambda: sign(headers={"x-amz-content-sha256": "0" * 64}), SIGNATURE_MISMATCH),
    ],
    ids=[
        "unsigned",
        "not-sigv4",
        "wrong-secret",
        "other-service",
        "other-region",
        "unknown-key",
        "expired",
        "no-date",
        "other-host",
        "body-hash-lies",
    ],
)
def test_anything_else_is_refused_with_api_gateways_answer(
    make_headers: Callable[[], list[tuple[str, str]]], answer: Any
) -> None:
    with pytest.raises(SignatureError) as refused:
        verify(make_headers())
    assert refused.value.body == answer


def test_a_changed_body_method_or_path_is_refused() -> None:
    headers = sign()
    for changed in ({"body": b'{"job": "y"}'}, {"method": "PUT"}, {"target": "/jobs/batch"}):
        with pytest.raises(SignatureError) as refused:
            verify(headers, **changed)  # type: ignore[arg-type]
        assert refused.value.body == SIGNATURE_MISMATCH, changed


def test_the_event_is_payload_format_2_0() -> None:
    route = Route("GET", "/jobs/{id}", "stack-jobs-api")
    headers = [("Host", HOST), ("X-Amz-Date", "x"), ("Accept", "a"), ("accept", "b")]
    event = payload_event(
        route=route,
        method="GET",
        target="/jobs/a%20b?x=1&x=2",
        headers=headers,
        body=b"",
        path_parameters={"id": "a b"},
        api_id="api",
        access_key="testing",
        now_s=NOW_S,
    )
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "GET /jobs/{id}", "/jobs/a%20b")
    assert (event["rawQueryString"], event["queryStringParameters"]) == ("x=1&x=2", {"x": "1,2"})
    assert (event["pathParameters"], event["headers"]["accept"]) == ({"id": "a b"}, "a,b")
    assert (event["headers"]["x-forwarded-proto"], event["headers"]["host"]) == ("http", HOST)
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "testing"
    assert "body" not in event
    binary = payload_event(
        route=route, method="GET", target="/", headers=[], body=b"\xff\x00", path_parameters={}, api_id="a", now_s=0
    )
    assert (binary["isBase64Encoded"], base64.b64decode(binary["body"])) == (True, b"\xff\x00")
