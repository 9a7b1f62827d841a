"""The embedded AWS's HTTP API gateway: what API Gateway does in front of a function on an AWS_IAM route.

moto's CloudFormation creates no API Gateway v2 resources, and moto's apigatewayv2 runs no integrations, so the
template's `AWS::Serverless::HttpApi` routes are served here, on 127.0.0.1, one server per HttpApi:

1. Match the request to a route (the `HttpApi` events of the template's functions); none: 404 `Not Found`.
2. Verify its SigV4 signature (service `execute-api`, the stack's region) against the embedded credentials (except on
   a route whose event says `Auth: {Authorizer: NONE}`, as the receipt route of http: workers, which API Gateway
   passes through unsigned too: the function checks its own HMAC):
   missing, for another service or region, older than five minutes, or not matching what botocore's own signer
   computes for the same request: 403, as API Gateway answers. The embedded account's credentials are allowed to
   invoke every route (on AWS the caller's IAM policy decides: see the template's JobsApiInvokePolicy).
3. Invoke the route's function with a payload format 2.0 event through Lambda Invoke (moto, whose invocations the
   embedded executor runs in worker processes), and map its answer back: `{"statusCode", "headers", "body",
   "isBase64Encoded"}` as given; any other JSON value as a 200 `application/json`; a function error as 500
   `Internal Server Error`; a throttled invoke as 503.

Bodies are capped at HTTP API's 10 MB payload limit (413). Lambda's 6 MB synchronous payload limit is not
enforced by the embedded executor; the function's own limits (sqsloops.jobs.api) are lower anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sqsloops.clock import SYSTEM_CLOCK, Clock

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_SKEW_S = 300.0  # "a request must reach AWS within five minutes of the time stamp in the request"
MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API's payload limit
DEFAULT_STAGE = "$default"
HOST = "127.0.0.1"
ACCOUNT_ID = "123456789012"
INVOKE_READ_TIMEOUT_S = 120.0  # past the longest function Timeout the template gives an API route (29 s)

FORBIDDEN = {"message": "Forbidden"}
SIGNATURE_MISMATCH = {
    "message": "The request signature we calculated does not match the signature you provided. Check your AWS"
    " Secret Access Key and signing method. Consult the service documentation for details."
}
UNKNOWN_KEY = {"message": "The security token included in the request is invalid."}
_CREDENTIAL_RE = re.compile(r"(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


@dataclass(frozen=True)
class Route:
    """One route of an HttpApi: `POST /jobs`, `GET /jobs/{id}` (`{name+}` matches the rest of the path)."""

    method: str
    path: str
    function_name: str
    signed: bool = True  # False: `Auth: {Authorizer: NONE}`, no SigV4 asked
    pattern: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = []
        for segment in self.path.strip("/").split("/"):
            name = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
            if name is None:
                parts.append(re.escape(segment))
            else:
                parts.append(f"(?P<{name.group(1)}>{'.+' if name.group(2) else '[^/]+'})")
        object.__setattr__(self, "pattern", re.compile("/" + "/".join(parts)))

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def http_api_routes(sam: Mapping[str, Any], function_names: Mapping[str, str]) -> dict[str, list[Route]]:
    """The routes of each `AWS::Serverless::HttpApi` of a SAM template (logical id -> routes), from the `HttpApi`
    events of its functions; `function_names` maps a function's logical id to its deployed name."""
    resources = sam.get("Resources", {})
    apis = {name for name, resource in resources.items() if resource.get("Type") == "AWS::Serverless::HttpApi"}
    routes: dict[str, list[Route]] = {name: [] for name in apis}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function" or logical_id not in function_names:
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            api = properties.get("ApiId", {})
            api_id = api.get("Ref") if isinstance(api, dict) else None
            if api_id not in routes:
                continue
            method = str(properties.get("Method", "ANY")).upper()
            signed = str((properties.get("Auth") or {}).get("Authorizer", "")).upper() != "NONE"
            routes[api_id].append(Route(method, str(properties["Path"]), function_names[logical_id], signed))
    return routes


class SignatureError(Exception):
    """A request API Gateway would refuse with 403; `body` is its answer."""

    def __init__(self, reason: str, body: Mapping[str, str] = FORBIDDEN) -> None:
        super().__init__(reason)
        self.body = dict(body)


class _Recompute(SigV4Auth):
    """botocore's signer, over exactly the headers the client says it signed."""

    def __init__(self, credentials: Credentials, region: str, signed: Sequence[str]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> Any:
        headers = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                headers[name] = value
        return headers


def verify_sigv4(
    *,
    method: str,
    target: str,
    headers: Mapping[str, str] | Any,
    body: bytes,
    secrets: Mapping[str, str],
    region: str,
    now_s: float,
) -> str:
    """The access key of a request whose SigV4 signature (service execute-api, `region`) is right; SignatureError
    otherwise. `target` is the request line's path and query, as sent; `headers` as received (duplicates kept)."""
    authorization = _header(headers, "authorization")
    if not authorization:
        raise SignatureError("no Authorization header")
    algorithm, _, rest = authorization.partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if algorithm != ALGORITHM or not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        raise SignatureError(f"not a SigV4 Authorization header: {algorithm or authorization!r}")
    credential = _CREDENTIAL_RE.fullmatch(fields["Credential"])
    if credential is None or credential["service"] != SERVICE or credential["region"] != region:
        raise SignatureError(f"credential scope {fields['Credential']!r} is not {region}/{SERVICE}")
    secret = secrets.get(credential["key"])
    if secret is None:
        raise SignatureError(
            "unknown access key", {"message": "The security token included in the request is invalid."}
        )
    timestamp = _header(headers, "x-amz-date") or ""
    try:
        signed_at = datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"x-amz-date {timestamp!r} is not {SIGV4_TIMESTAMP}") from None
    if abs(signed_at.timestamp() - now_s) > MAX_SKEW_S or credential["date"] != timestamp[:8]:
        raise SignatureError("signature expired", {"message": "Signature expired"})
    signed = [name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip()]
    if "host" not in signed:
        raise SignatureError("the host header is not signed")
    content_sha = _header(headers, "x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        raise SignatureError("x-amz-content-sha256 is not the body's", SIGNATURE_MISMATCH)
    request = AWSRequest(method=method, url=f"http://{_header(headers, 'host')}{target}", data=body)
    for name, value in _items(headers):
        request.headers[name] = value  # an email.message.Message: assignment adds, duplicates are kept
    request.context["timestamp"] = timestamp
    signer = _Recompute(Credentials(credential["key"], secret), region, signed)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SignatureError("signature mismatch", SIGNATURE_MISMATCH)
    return credential["key"]


def _header(headers: Any, name: str) -> str | None:
    for key, value in _items(headers):
        if key.lower() == name:
            return str(value)
    return None


def _items(headers: Any) -> list[tuple[str, str]]:
    return list(headers.items()) if not hasattr(headers, "raw_items") else list(headers.raw_items())


def payload_event(
    *,
    route: Route,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    path_parameters: Mapping[str, str],
    api_id: str,
    stage: str = DEFAULT_STAGE,
    source_ip: str = HOST,
    access_key: str | None = None,
    now_s: float,
) -> dict[str, Any]:
    """The event API Gateway sends a Lambda integration, payload format 2.0 (header names lower-cased, duplicates
    joined with commas; a body that is not UTF-8 text base64-encoded)."""
    parts = urlsplit(target)
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    # What API Gateway adds; the function builds status URLs from host and proto (plain HTTP here, HTTPS on AWS).
    forwarded = joined.get("x-forwarded-for")
    joined["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
    joined["x-forwarded-proto"] = "http"
    joined["x-forwarded-port"] = joined.get("host", "").rpartition(":")[2] or "80"
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    moment = datetime.fromtimestamp(now_s, UTC)
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": joined.get("host", HOST),
        "domainPrefix": joined.get("host", HOST).split(".")[0],
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": route.key,
        "stage": stage,
        "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now_s * 1000),
    }
    if access_key is not None:
        context["authorizer"] = {
            "iam": {
                "accessKey": access_key,
                "accountId": ACCOUNT_ID,
                "callerId": access_key,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{ACCOUNT_ID}:root",
                "userId": ACCOUNT_ID,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": context,
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        event["body"] = text
    return event


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpApiGateway:
    """One HttpApi's routes on HOST:port, SigV4-verified, each request an Invoke of its route's function."""

    def __init__(
        self,
        *,
        lambda_client: Any,
        routes: Sequence[Route],
        secrets: Mapping[str, str],
        region: str,
        api_id: str = "local",
        port: int = 0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._lambda = lambda_client
        self.routes = tuple(routes)
        self._secrets = dict(secrets)
        self.region = region
        self.api_id = api_id
        self._port = port
        self._clock = clock
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> HttpApiGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = _content_length(self.headers)
                if length is None:  # chunked or unreadable: the body's end is unknown, so is the next request's start
                    answer = _json_response(411, {"message": "Length Required"})
                    self.close_connection = True
                elif length > MAX_BODY_BYTES:
                    answer = _json_response(413, {"message": "Request Entity Too Large"})
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length > 0 else b""
                    answer = gateway.answer(
                        method=self.command,
                        target=self.path,
                        headers=list(self.headers.items()),
                        body=body,
                        source_ip=self.client_address[0],
                    )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((HOST, self._port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-api-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def answer(
        self, *, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes, source_ip: str = HOST
    ) -> GatewayResponse:
        """What API Gateway answers one request (see the module docstring)."""
        path = urlsplit(target).path
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                break
        else:
            return _json_response(404, {"message": "Not Found"})
        now_s = self._clock.now()
        try:
            access_key = (
                None
                if not route.signed
                else verify_sigv4(
                    method=method,
                    target=target,
                    headers=_Headers(headers),
                    body=body,
                    secrets=self._secrets,
                    region=self.region,
                    now_s=now_s,
                )
            )
        except SignatureError as exc:
            return _json_response(403, exc.body)
        event = payload_event(
            route=route,
            method=method,
            target=target,
            headers=headers,
            body=body,
            path_parameters=parameters,
            api_id=self.api_id,
            source_ip=source_ip,
            access_key=access_key,
            now_s=now_s,
        )
        return self._invoke(route, event)

    def _invoke(self, route: Route, event: dict[str, Any]) -> GatewayResponse:
        try:
            response = self._lambda.invoke(FunctionName=route.function_name, Payload=json.dumps(event).encode())
        except ClientError as exc:
            throttled = exc.response.get("Error", {}).get("Code") == "TooManyRequestsException"
            status = 503 if throttled else 500
            return _json_response(status, {"message": HTTPStatus(status).phrase})
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            return _json_response(500, {"message": "Internal Server Error"})
        try:
            result = json.loads(payload) if payload else None
        except ValueError:
            return _json_response(500, {"message": "Internal Server Error"})
        if isinstance(result, dict) and "statusCode" in result:
            raw = result.get("body") or ""
            data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
            headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
            return GatewayResponse(int(result["statusCode"]), headers, data)
        return _json_response(200, result)


class _Headers:
    """Received headers as (name, value) pairs, duplicates kept, for `verify_sigv4`."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def raw_items(self) -> list[tuple[str, str]]:
        return self._pairs


def _content_length(headers: Any) -> int | None:
    """The body's length; 0 without a body; None when it cannot be known (chunked, or not a number)."""
    raw = headers.get("content-length")
    if raw is None:
        return None if headers.get("transfer-encoding") else 0
    return int(raw) if raw.strip().isdigit() else None


def _json_response(status: int, body: Any) -> GatewayResponse:
    return GatewayResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def start_gateways(
    sam: Mapping[str, Any],
    *,
    stack_name: str,
    client: Callable[..., Any],
    region: str,
    secrets: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, HttpApiGateway]:
    """One started gateway per HttpApi of the deployed stack (logical id -> gateway); none when it has none.

    `client(service, config=...)` makes clients on the embedded endpoint. The Invoke client never retries: a POST
    must reach the function once, as API Gateway calls its integration once."""
    cloudformation = client("cloudformation")
    resources = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    names = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId")
    }
    invoke_config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=INVOKE_READ_TIMEOUT_S)
    gateways: dict[str, HttpApiGateway] = {}
    try:
        for api_id, routes in http_api_routes(sam, names).items():
            if routes:
                gateway = HttpApiGateway(
                    lambda_client=client("lambda", config=invoke_config),
                    routes=routes,
                    secrets=secrets,
                    region=region,
                    api_id=f"{stack_name}-{api_id}".lower(),
                    clock=clock,
                )
                gateways[api_id] = gateway.start()
    except BaseException:
        for gateway in gateways.values():
            gateway.stop()
        raise
    return gateways


def local_outputs(sam: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, str]:
    """The template's outputs that are an HttpApi's execute-api URL (`!Sub https://${Api}.execute-api...`), with the
    local gateway's URL for their value: moto leaves `${Api}` unresolved, since it creates no API."""
    found: dict[str, str] = {}
    for name, output in (sam.get("Outputs") or {}).items():
        value = output.get("Value") if isinstance(output, dict) else None
        text = value.get("Fn::Sub") if isinstance(value, dict) else None
        if isinstance(text, str) and "execute-api" in text:
            for api_id, url in urls.items():
                if text.startswith(f"https://${{{api_id}}}."):
                    found[name] = url
    return found
