"""Whether a registration's handler can ever work, asked before `register` writes anything.

- `lambda:` the function exists (GetFunction), and the stack's process role may invoke it: an Allow statement for
  lambda:InvokeFunction in the role's inline policies (the template's ForwardToHandlers: `<stack>-handler-*` plus
  the HandlerFunctionArns parameter) whose Resource matches the function's ARN, IAM wildcards and all. Deny
  statements, conditions, permission boundaries and attached managed policies are not evaluated (the template
  uses none of them for invokes). When the stack is not in CloudFormation (settings from SQSLOOPS_* variables),
  only existence is checked; when its role cannot be read, register warns and goes on.
- `python:` the target imports *inside the process function*, with its code, layers and environment: a synchronous
  `{"check_handler": "python:module:function"}` invoke that the process function answers with
  `{"ok": bool, "error": str}` (functions/process/lambda_function.py).
- other kinds (`jobs:`) are not checked.

Every failure is a ConfigError with one line saying what is wrong; `register --no-check` skips all of this.
"""

from __future__ import annotations

import ast
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sqsloops.errors import ConfigError
from sqsloops.handlers import LAMBDA, PYTHON, validate_handler
from sqsloops.log import logger

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient

CHECK_EVENT_KEY = "check_handler"  # the process function's check event: {"check_handler": "python:module:function"}
PROCESS_ROLE = "ProcessFunctionRole"  # the process role's logical id (SAM names a function's role <Function>Role)
INVOKE = "lambda:InvokeFunction"
_NO_CHECK = "(pass --no-check to register anyway)"


def iam_pattern(pattern: str) -> re.Pattern[str]:
    """An IAM Resource (or Action) with wildcards as a regex: `*` any run of characters, `?` any one."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def invoke_resources(policy_documents: Iterable[dict[str, Any]]) -> list[str]:
    """The Resource patterns that Allow statements grant lambda:InvokeFunction on, across policy documents."""
    resources: list[str] = []
    for document in policy_documents:
        statements = document.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            actions = _listed(statement.get("Action"))
            if any(iam_pattern(action.lower()).match(INVOKE.lower()) for action in actions):
                resources += _listed(statement.get("Resource"))
    return resources


def policy_document(document: Any) -> dict[str, Any]:
    """A policy document as GetRolePolicy returns it: a dict (boto3 decodes AWS's URL-encoded JSON), or text.

    moto's CloudFormation (so the embedded AWS) stores a role's inline Policies as Python's repr of the dict: read
    as a literal, never evaluated.
    """
    if not isinstance(document, str):
        return dict(document)
    text = urllib.parse.unquote(document)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = ast.literal_eval(text)
    if not isinstance(parsed, dict):
        raise ConfigError(f"not a policy document: {text[:200]!r}")
    return parsed


class HandlerCheck:
    """Checks handlers against the stack's process function and role (see the module docstring)."""

    def __init__(
        self,
        *,
        lambda_client: LambdaClient,
        process_function: str,
        stack_name: str,
        cloudformation: CloudFormationClient,
        iam: IAMClient,
    ) -> None:
        """lambda_client's read timeout must outlast a cold start of the process function (the check waits)."""
        self._lambda = lambda_client
        self._process_function = process_function
        self._stack_name = stack_name
        self._cloudformation = cloudformation
        self._iam = iam

    def check(self, handler: str) -> list[str]:
        """ConfigError if `handler` can never work; otherwise the warnings about what could not be checked."""
        spec = validate_handler(handler)
        if spec.kind == LAMBDA:
            return self._check_lambda(spec.target)
        if spec.kind == PYTHON:
            self._check_python(handler)
        return []

    # --- lambda: ----------------------------------------------------------------------------------------------

    def _check_lambda(self, target: str) -> list[str]:
        name, _, qualifier = target.rpartition(":") if _qualified(target) else (target, "", "")
        options = {"Qualifier": qualifier} if qualifier else {}
        try:
            configuration = self._lambda.get_function(FunctionName=name, **options)["Configuration"]  # type: ignore[arg-type]
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                raise ConfigError(f"lambda handler function does not exist: {target}") from exc
            raise ConfigError(f"cannot check lambda handler {target}: {_describe(exc)} {_NO_CHECK}") from exc
        arn = str(configuration.get("FunctionArn", ""))
        if qualifier and not arn.endswith(f":{qualifier}"):
            arn = f"{arn}:{qualifier}"
        try:
            resources = self._invocable()
        except Exception as exc:  # AWS or an unexpected answer: the role's scope is unknown, not the handler's fault
            message = f"could not check that the stack's process role may invoke {arn}: {_describe(exc)}"
            logger.warning(message)
            return [message]
        if resources is None:
            return []
        if not any(iam_pattern(resource).match(arn) for resource in resources):
            raise ConfigError(
                f"the stack's process role may not invoke {arn}: name it {self._stack_name}-handler-*, or add it to "
                f"the stack's HandlerFunctionArns parameter and redeploy {_NO_CHECK}"
            )
        return []

    def _invocable(self) -> list[str] | None:
        """The process role's invoke Resources; None when the stack is not in CloudFormation (nothing to read)."""
        if not self._stack_name:
            return None
        try:
            pages = self._cloudformation.get_paginator("list_stack_resources").paginate(StackName=self._stack_name)
            roles = [
                resource.get("PhysicalResourceId", "")
                for page in pages
                for resource in page.get("StackResourceSummaries", [])
                if resource.get("LogicalResourceId") == PROCESS_ROLE
            ]
        except ClientError as exc:
            if _code(exc) == "ValidationError":  # no such stack: the settings came from the environment
                logger.info("stack not in CloudFormation: not checking the process role", extra={"error": str(exc)})
                return None
            raise
        if not roles or not roles[0]:
            raise ConfigError(f"stack {self._stack_name} has no {PROCESS_ROLE}")
        role = roles[0]
        paginator = self._iam.get_paginator("list_role_policies")
        names = [name for page in paginator.paginate(RoleName=role) for name in page.get("PolicyNames", [])]
        documents = []
        for name in names:
            document = self._iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            documents.append(policy_document(document))
        return invoke_resources(documents)

    # --- python: ----------------------------------------------------------------------------------------------

    def _check_python(self, handler: str) -> None:
        function = self._process_function
        try:
            response = self._lambda.invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps({CHECK_EVENT_KEY: handler}).encode(),
            )
        except ClientError as exc:
            raise ConfigError(
                f"cannot check python handler {handler} in process function {function}: {_describe(exc)} {_NO_CHECK}"
            ) from exc
        raw = response["Payload"].read()
        try:
            answer = json.loads(raw or b"null")
        except ValueError:
            answer = None
        if response.get("FunctionError") or not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            shown = raw[:300].decode(errors="replace")
            raise ConfigError(
                f"process function {function} did not answer the handler check (deployed before handler checks? "
                f"redeploy the stack) {_NO_CHECK}: {shown}"
            )
        if not answer["ok"]:
            raise ConfigError(f"python handler does not load in the process function: {answer.get('error', '')}")


def _qualified(target: str) -> bool:
    """Whether a lambda target ends in a version or alias (`name:alias`, `arn:...:function:name:alias`)."""
    return target.count(":") in (1, 7)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
