"""The jobs HTTP API on the embedded AWS: the local gateway verifies SigV4 as API Gateway does on AWS_IAM routes, and
the deployed JobsApi function (run by the embedded Lambda executor) enqueues, reads and cancels jobs.

Requests are signed with botocore's SigV4Auth (and with curl's --aws-sigv4, as the README shows); what they left
behind is read back from the embedded SQS and Jobs table.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sqsloops.cli.local import JOBS_API_URL_ENV, api_lines
from sqsloops.errors import ConcurrentUpdateError
from sqsloops.jobs.catalog import CatalogEntry, read_catalog, write_catalog
from sqsloops.local.server import EmbeddedAws
from tests.e2e.conftest import STACK

pytestmark = pytest.mark.e2e

KEY = SECRET = "testing"  # the embedded AWS's credentials
REGION = "us-east-1"


def request(url: str, method: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, JSON body) of one HTTP request; an error status is an answer, not an exception."""
    prepared = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def signed(
    url: str,
    method: str,
    payload: Any = None,
    *,
    secret: str = SECRET,
    service: str = "execute-api",
    region: str = REGION,
) -> tuple[int, Any]:
    """A request signed with botocore's SigV4 signer, as a producer's SDK signs it."""
    body = None if payload is None else json.dumps(payload).encode()
    aws_request = AWSRequest(method=method, url=url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(KEY, secret), service, region).add_auth(aws_request)
    prepared = aws_request.prepare()
    return request(prepared.url, method, body, dict(prepared.headers))


@pytest.fixture(scope="module")
def api_url(embedded_aws: EmbeddedAws) -> str:
    return embedded_aws.api_urls["JobsHttpApi"]


@pytest.fixture(scope="module")
def job(embedded_aws: EmbeddedAws) -> tuple[str, str]:
    """A job in the stack's catalog, as `jobs apply` leaves one: (name, queue URL)."""
    sqs = embedded_aws.client("sqs")
    name = f"api_{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=f"{STACK}-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    entry = CatalogEntry(job=name, queue_url=url, queue_arn=arn)
    table = embedded_aws.settings.jobs_table
    dynamodb = embedded_aws.client("dynamodb")
    for _ in range(5):  # other e2e tests may write the catalog too: add to it, never overwrite it
        catalog = read_catalog(dynamodb, table_name=table)
        try:
            write_catalog(
                dynamodb,
                table_name=table,
                entries={**catalog.entries, name: entry},
                expected_version=catalog.version,
            )
            break
        except ConcurrentUpdateError:
            continue
    return name, url


def bodies(embedded_aws: EmbeddedAws, queue_url: str) -> list[dict[str, Any]]:
    """What the job's queue holds now (received and deleted: the next test starts from an empty queue)."""
    sqs = embedded_aws.client("sqs")
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(message["Body"]) for message in got]


def test_local_up_prints_the_api_url_as_an_export(embedded_aws: EmbeddedAws, api_url: str) -> None:
    assert api_url.startswith("http://127.0.0.1:")
    assert f"export {JOBS_API_URL_ENV}={api_url}" in api_lines(embedded_aws.api_urls)
    assert embedded_aws.outputs["JobsApiUrl"] == api_url  # the stack's URL output points at the gateway


def test_a_signed_post_creates_a_job_that_get_shows_and_delete_cancels(
    embedded_aws: EmbeddedAws, api_url: str, job: tuple[str, str]
) -> None:
    name, queue_url = job
    status, created = signed(f"{api_url}/jobs", "POST", {"job": name, "args": [1], "kwargs": {"to": "a@b.c"}})
    assert status == 201, created
    assert created["status_url"] == f"{api_url}/jobs/{created['id']}"
    [message] = bodies(embedded_aws, queue_url)
    assert (message["id"], message["job"], message["args"]) == (created["id"], name, [1])

    status, shown = signed(created["status_url"], "GET")
    assert (status, shown["state"], shown["attempts"], shown["job"]) == (200, "queued", 0, name)

    status, cancelled = signed(created["status_url"], "DELETE")
    assert (status, cancelled["state"]) == (200, "cancelled")
    status, again = signed(created["status_url"], "DELETE")
    assert (status, again["error"], again["state"]) == (409, "not_cancellable", "cancelled")


def test_a_batch_is_answered_per_item(embedded_aws: EmbeddedAws, api_url: str, job: tuple[str, str]) -> None:
    name, queue_url = job
    status, body = signed(f"{api_url}/jobs/batch", "POST", {"jobs": [{"job": name, "args": [2]}, {"job": "nope"}]})
    assert status == 200, body
    assert [result["status"] for result in body["results"]] == [201, 404]
    assert [message["id"] for message in bodies(embedded_aws, queue_url)] == [body["results"][0]["id"]]


def test_an_unsigned_request_is_403_and_sends_nothing(
    embedded_aws: EmbeddedAws, api_url: str, job: tuple[str, str]
) -> None:
    name, queue_url = job
    bodies(embedded_aws, queue_url)  # whatever an earlier test left
    body = json.dumps({"job": name, "args": [3]}).encode()
    assert request(f"{api_url}/jobs", "POST", body, {"content-type": "application/json"}) == (
        403,
        {"message": "Forbidden"},
    )
    assert request(f"{api_url}/jobs/anything", "GET")[0] == 403
    assert bodies(embedded_aws, queue_url) == []


@pytest.mark.parametrize(
    "wrong",
    [{"secret": "not-the-secret"}, {"service": "lambda"}, {"region": "eu-west-1"}],
    ids=["wrong-secret", "other-service", "other-region"],
)
def test_a_wrongly_signed_request_is_403(api_url: str, job: tuple[str, str], wrong: dict[str, str]) -> None:
    status, body = signed(f"{api_url}/jobs", "POST", {"job": job[0], "args": [4]}, **wrong)
    assert status == 403, body
    assert "message" in body


def test_a_body_changed_after_signing_is_403(api_url: str, job: tuple[str, str]) -> None:
    aws_request = AWSRequest(method="POST", url=f"{api_url}/jobs", data=json.dumps({"job": job[0], "args": [5]}))
    SigV4Auth(Credentials(KEY, SECRET), "execute-api", REGION).add_auth(aws_request)
    prepared = aws_request.prepare()
    tampered = json.dumps({"job": job[0], "args": [666]}).encode()
    status, body = request(prepared.url, "POST", tampered, dict(prepared.headers))
    assert (status, body["message"].startswith("The request signature we calculated does not match")) == (403, True)


def test_a_signature_older_than_five_minutes_is_403(
    api_url: str, job: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = datetime.now(UTC) - timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: old)
    assert signed(f"{api_url}/jobs", "POST", {"job": job[0], "args": [6]}) == (403, {"message": "Signature expired"})


def test_unknown_jobs_ids_and_routes_are_404(api_url: str) -> None:
    status, body = signed(f"{api_url}/jobs", "POST", {"job": "no_such_job", "args": []})
    assert (status, body["error"], body["field"]) == (404, "unknown_job", "job")
    status, body = signed(f"{api_url}/jobs/0123456789abcdef", "GET")
    assert (status, body["error"]) == (404, "not_found")
    assert signed(f"{api_url}/jobs/0123456789abcdef", "DELETE")[0] == 404
    assert signed(f"{api_url}/nothing-here", "GET") == (404, {"message": "Not Found"})  # the gateway's: no route


def test_bad_input_is_a_4xx_never_a_500(api_url: str, job: tuple[str, str]) -> None:
    assert signed(f"{api_url}/jobs", "POST", {"job": job[0], "delay": "soon"})[0] == 400
    assert signed(f"{api_url}/jobs", "POST", [1, 2])[0] == 400
    assert signed(f"{api_url}/jobs", "POST", {"job": job[0], "args": ["x" * 1_100_000]})[0] == 413


def test_a_body_of_unknown_length_is_411_and_nothing_is_invoked(api_url: str, job: tuple[str, str]) -> None:
    host, _, port = api_url.removeprefix("http://").partition(":")
    body = b'{"job": "x"}'
    # The whole chunked request in one write: the gateway answers before reading a body of unknown length and
    # closes, and a client still sending chunks then would get a broken pipe instead of the answer.
    request = (
        f"POST /jobs HTTP/1.1\r\nHost: {host}:{port}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        response = http.client.HTTPResponse(connection)
        response.begin()
        assert (response.status, json.loads(response.read())) == (411, {"message": "Length Required"})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_aws_sigv4_as_the_readme_shows(embedded_aws: EmbeddedAws, api_url: str, job: tuple[str, str]) -> None:
    name, queue_url = job
    bodies(embedded_aws, queue_url)
    command = [
        "curl", "--silent", "--show-error", "--write-out", "\n%{http_code}",
        "--aws-sigv4", f"aws:amz:{REGION}:execute-api", "--user", f"{KEY}:{SECRET}",
        "--header", "content-type: application/json",
        "--data", json.dumps({"job": name, "args": [7]}), f"{api_url}/jobs",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    body, _, code = output.rpartition("\n")
    assert code == "201", output
    assert [message["id"] for message in bodies(embedded_aws, queue_url)] == [json.loads(body)["id"]]
