"""Least privilege in template.yaml, checked on the template as CloudFormation sees it (translated by samtranslator).

- Every action any policy names is an IAM action in policy_sentry's pinned database: botocore operation names are
  not IAM actions (DeleteMessageBatch is an operation; its action is sqs:DeleteMessage), and cfn-lint does not look
  inside a SAM function's inline Policies.
- The default scope is what the stack owns: queues named `<stack>-*`, handler functions `<stack>-handler-*`, its
  own process function for hand-overs; QueueArns and HandlerFunctionArns only add to it.
- Each function's real code, run on moto (which does not enforce IAM), makes only calls its role allows, and every
  action a role allows is one its function's code calls.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import botocore.client
import pytest
from cfnlint.decode import decode
from policy_sentry.querying.actions import get_actions_for_service
from samtranslator.translator.transform import transform

from process import lambda_function as process_app
from restart import lambda_function as restart_app
from scale import lambda_function as scale_app
from sqsloops.cli.demo import DEFAULT_STACK
from sqsloops.dispatch import Failure, HandlerKind, Outcome
from sqsloops.handlers import KNOWN_KINDS
from sqsloops.jobs.client import JobClient
from sqsloops.jobs.envelope import Envelope
from sqsloops.jobs.root import JobsRoot
from sqsloops.jobs.schema import create_jobs_table, job_pk, key_pk
from sqsloops.ops.demo import DemoOptions
from sqsloops.registry import QueueConfig, Registry
from sqsloops.settings import Settings
from tests.conftest import ACCOUNT, REGION, Clients, create_function
from tests.conftest import TestQueue as MadeQueue
from tests.fixtures.fakes import FakeClock
from tests.fixtures.http_app import web_app
from tests.fixtures.loop_kit import FakeLambdaContext, LoopHarness
from tests.functional import jobs_for_policies
from tests.functional.jobs_api_scenario import run_jobs_api
from tests.functional.missed_runs_scenario import run_missed_runs

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
EVENTS = Path(__file__).resolve().parents[2] / "events"
STACK = "sqsloops-test"  # tests/conftest.py's settings: tables and functions are named as the template names them
JOBS_TABLE = f"{STACK}-jobs"
NO_VALUE = object()
HTTP_SECRET_KEY = "TopicsKey"  # the KMS key template.yaml encrypts HttpWorkersSecret with (its KmsKeyId)
HTTP_SECRET = json.dumps({"current": "policy-test-secret"})

# Operations whose IAM action has another name; every other operation's action is `service:Operation`.
ACTION_OF_OPERATION = {
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
}
FUNCTIONS = ("ProcessFunction", "ScaleUpFunction", "ScaleDownFunction", "RestartFunction", "JobsApiFunction")


# ---------------------------------------------------------------- the template, translated and evaluated


class OfflinePolicies:
    """Managed-policy loader for samtranslator that never calls IAM."""

    def load(self) -> dict[str, str]:
        return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


@functools.cache
def translated() -> dict[str, Any]:
    """template.yaml as plain CloudFormation (as lib/sqsloops/local/provision.py translates it)."""
    template, errors = decode(str(TEMPLATE))
    assert not errors, errors
    plain: dict[str, Any] = json.loads(json.dumps(template))
    for resource in plain["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://artifacts/{properties[key].strip('/')}.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_PROFILE", raising=False)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        result: dict[str, Any] = transform(plain, {}, OfflinePolicies())
    return result


class Stack:
    """The translated template deployed as stack STACK with some parameter values: intrinsics resolved offline."""

    def __init__(self, parameters: dict[str, str] | None = None, *, stack_name: str = STACK) -> None:
        self.cfn = translated()
        declared = self.cfn["Parameters"]
        unknown = set(parameters or {}) - set(declared)
        assert not unknown, f"no such parameters: {unknown}"
        self._values: dict[str, Any] = {}
        for name, spec in declared.items():
            raw = str((parameters or {}).get(name, spec.get("Default", "")))
            self._values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
        self._values |= {
            "AWS::Partition": "aws",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": stack_name,
            "AWS::NoValue": NO_VALUE,
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.cfn["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}
        (function, argument), *_ = node.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(logical_id, attribute)
        if function == "Fn::Sub":
            return self._sub(argument)
        if function == "Fn::If":
            name, if_true, if_false = argument
            return self.resolve(if_true if self.condition(name) else if_false)
        if function == "Fn::Equals":
            left, right = self.resolve(argument)
            return left == right
        if function == "Fn::Not":
            return not self.resolve(argument[0])
        if function == "Fn::And":
            return all(self.resolve(argument))
        if function == "Fn::Or":
            return any(self.resolve(argument))
        if function == "Fn::Join":
            separator, values = argument
            return separator.join(str(v) for v in self.resolve(values))
        if function == "Fn::Split":
            separator, value = argument
            return str(self.resolve(value)).split(separator)
        raise AssertionError(f"this test cannot resolve {function}: {node}")

    def _ref(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        resource = self.cfn["Resources"][name]
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::SecretsManager::Secret":  # its ARN: the name and a random suffix
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{self.resolve(properties['Name'])}-*"
        for key in ("TableName", "FunctionName", "TopicName"):
            if key in properties:
                return self.resolve(properties[key])
        return f"ref:{name}"

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.cfn["Resources"][logical_id]
        if resource["Type"] == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self._ref(logical_id)}"
        if resource["Type"] == "AWS::Lambda::Function" and attribute == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self._ref(logical_id)}"
        if resource["Type"] == "AWS::KMS::Key" and attribute == "Arn":  # as CallLog renders a key's ARN
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}"
        if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":  # as jobs_api_scenario.scheduler_role_arn
            return f"arn:aws:iam::{ACCOUNT}:role/{self._values['AWS::StackName']}-{logical_id}"
        return f"getatt:{logical_id}.{attribute}"

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        resolved = {k: self.resolve(v) for k, v in variables.items()}
        out, rest = "", text
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            if name in resolved:
                value = resolved[name]
            elif "." in name:
                value = self._get_att(*name.split(".", 1))
            else:
                value = self._ref(name)
            out += before + str(value)
        return out + rest

    def role_statements(self, function: str) -> list[dict[str, Any]]:
        """The statements of a function's role: its inline policies and the template's own managed policies."""
        resources = self.cfn["Resources"]
        role_id = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
        for arn in role.get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and "Ref" in arn:
                documents.append(resources[arn["Ref"]]["Properties"]["PolicyDocument"])
            else:
                assert arn == "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", arn
        found = [s for document in self.resolve(documents) for s in as_list(document["Statement"])]
        for statement in found:
            assert {"NotAction", "NotResource"}.isdisjoint(statement), statement
        return found

    def allows(self, function: str, action: str, resource: str) -> bool:
        """IAM's evaluation for one identity-based policy set: an explicit Deny wins, else some Allow must match."""
        matching = [
            s
            for s in self.role_statements(function)
            if any(matches_action(pattern, action) for pattern in as_list(s["Action"]))
            and any(fnmatch.fnmatchcase(resource, pattern) for pattern in as_list(s["Resource"]))
        ]
        return bool(matching) and all(s["Effect"] == "Allow" for s in matching)

    def allowed_actions(self, function: str) -> set[str]:
        return {a for s in self.role_statements(function) if s["Effect"] == "Allow" for a in as_list(s["Action"])}

    def resources_for(self, function: str, action: str) -> list[str]:
        return [
            r
            for s in self.role_statements(function)
            if s["Effect"] == "Allow" and action in as_list(s["Action"])
            for r in as_list(s["Resource"])
        ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches_action(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every policy statement anywhere: roles, managed policies, key and topic policies."""
    if isinstance(node, dict):
        if "Statement" in node:
            yield from as_list(node["Statement"])
        for child in node.values():
            yield from statements(child)
    elif isinstance(node, list):
        for child in node:
            yield from statements(child)


@functools.cache
def iam_actions(service: str) -> frozenset[str]:
    """The service's actions in policy_sentry's bundled IAM database (pinned with the package)."""
    return frozenset(a.lower() for a in get_actions_for_service(service))


def is_iam_action(pattern: str) -> bool:
    service, _, _ = pattern.partition(":")
    return any(fnmatch.fnmatchcase(action, pattern.lower()) for action in iam_actions(service))


# ---------------------------------------------------------------- every action is an IAM action


def test_the_action_database_knows_real_actions_and_not_operation_names() -> None:
    # The check below can fail: the database has the actions and not the batch operations' names
    assert is_iam_action("sqs:DeleteMessage")
    assert is_iam_action("kms:GenerateDataKey*")
    assert not is_iam_action("sqs:DeleteMessageBatch")
    assert not is_iam_action("lambda:Invoke")


def test_every_action_in_the_translated_template_is_an_iam_action() -> None:
    found = list(statements(translated()["Resources"]))
    assert len(found) > 10
    actions = {a for s in found for key in ("Action", "NotAction") for a in as_list(s.get(key, []))}
    assert all(isinstance(a, str) for a in actions), actions
    assert sorted(a for a in actions if not is_iam_action(a)) == []


# ---------------------------------------------------------------- the default scope is what the stack owns


def test_by_default_loops_may_touch_only_the_stacks_own_queues() -> None:
    stack = Stack()
    for function in FUNCTIONS:
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage", "sqs:GetQueueAttributes"):
            for resource in stack.resources_for(function, action):
                assert resource == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-*", (function, action)
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}"
    assert stack.allows("ProcessFunction", "sqs:ReceiveMessage", f"{queue}:{STACK}-orders")
    assert stack.allows("ProcessFunction", "sqs:SendMessage", f"{queue}:{STACK}-orders-dlq")
    assert not stack.allows("ProcessFunction", "sqs:ReceiveMessage", f"{queue}:orders")
    assert not stack.allows("RestartFunction", "sqs:GetQueueAttributes", f"{queue}:orders")


def test_queue_arns_add_queues_to_the_stacks_own() -> None:
    stack = Stack({"QueueArns": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-*,arn:aws:sqs:{REGION}:{ACCOUNT}:billing"})
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}"
    for name in (f"{STACK}-work", "orders-eu", "orders-eu-dlq", "billing"):
        assert stack.allows("ProcessFunction", "sqs:ReceiveMessage", f"{queue}:{name}"), name
        assert stack.allows("ScaleUpFunction", "sqs:GetQueueAttributes", f"{queue}:{name}"), name
    assert not stack.allows("ProcessFunction", "sqs:ReceiveMessage", f"{queue}:payroll")


def test_by_default_handlers_are_the_stacks_handler_functions_and_never_its_own() -> None:
    stack = Stack()
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-handler-orders")
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-handler-orders:live")
    # the hand-over, and nothing that merely starts with the process function's name
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-process")
    assert not stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-processor")
    for own in ("scale-up", "scale-down", "anything"):
        assert not stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-{own}"), own
    # the OnFailure destination (Lambda sends it with the function's role); no wider than the role's Loops writes
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-restart")
    for control in ("ScaleUpFunction", "ScaleDownFunction", "RestartFunction"):
        assert stack.resources_for(control, "lambda:InvokeFunction") == [f"{function}:{STACK}-process"]


def test_the_demo_names_its_queues_within_the_default_scope() -> None:
    # `sqsloops demo` runs the template as stack DEFAULT_STACK; its queue and DLQ must be ones its loops may use
    stack = Stack(stack_name=DEFAULT_STACK)
    name = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{DemoOptions().queue_prefix}-00012345"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert stack.allows("ProcessFunction", action, name), action
    assert stack.allows("ProcessFunction", "sqs:SendMessage", f"{name}-dlq")
    assert stack.allows("ScaleUpFunction", "sqs:GetQueueAttributes", name)


def test_scheduler_sends_only_to_the_stacks_queues_for_its_own_schedule_group() -> None:
    # Scheduler (one-time delayed jobs, cron jobs) delivers with SchedulerRole: job queues are <stack>-<queue>,
    # failed deliveries go to <stack>-schedules-dlq; the role may be assumed by Scheduler for this stack's group only
    stack = Stack()
    role = stack.resolve(stack.cfn["Resources"]["SchedulerRole"]["Properties"])
    granted = [s for policy in role["Policies"] for s in as_list(policy["PolicyDocument"]["Statement"])]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in granted] == [
        ("Allow", "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-*")
    ]
    queue_name = stack.resolve(stack.cfn["Resources"]["SchedulesDeadLetterQueue"]["Properties"]["QueueName"])
    assert fnmatch.fnmatchcase(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}", granted[0]["Resource"])
    [trust] = as_list(role["AssumeRolePolicyDocument"]["Statement"])
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    group = stack.resolve(stack.cfn["Resources"]["JobsScheduleGroup"]["Properties"]["Name"])
    assert trust["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{group}"
    }


def test_handler_function_arns_add_functions_to_the_stacks_handlers() -> None:
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
    stack = Stack({"HandlerFunctionArns": f"{function}:orders-worker,{function}:orders-worker:*"})
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:orders-worker")
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:orders-worker:live")
    assert stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-handler-x")
    assert not stack.allows("ProcessFunction", "lambda:InvokeFunction", f"{function}:{STACK}-scale-up")


# ---------------------------------------------------------------- what each function's code calls


@dataclass(frozen=True)
class Call:
    action: str
    resource: str


class CallLog:
    """Every AWS API call made while recording, as (IAM action, resource ARN)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.recording = False

    def record(self, client: Any, operation: str, params: dict[str, Any]) -> None:
        if self.recording:
            service = client.meta.service_model.service_name
            action = ACTION_OF_OPERATION.get((service, operation), f"{service}:{operation}")
            self.calls.append(Call(action, resource_of(service, client.meta.region_name, params)))
            if (service, operation) == ("scheduler", "CreateSchedule"):  # the schedule sends with this role
                self.calls.append(Call("iam:PassRole", params["Target"]["RoleArn"]))
            if (service, operation) == ("secretsmanager", "GetSecretValue"):  # it decrypts with the secret's key
                self.calls.append(Call("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{HTTP_SECRET_KEY}"))

    @contextlib.contextmanager
    def on(self) -> Iterator[None]:
        self.recording = True
        try:
            yield
        finally:
            self.recording = False


def resource_of(service: str, region: str, params: dict[str, Any]) -> str:
    """The ARN of what a call acts on (the resource its IAM action is authorized against)."""
    if service == "sqs":
        if "QueueUrl" in params:
            account, name = urlparse(params["QueueUrl"]).path.strip("/").split("/")
        else:
            account, name = params.get("QueueOwnerAWSAccountId", ACCOUNT), params["QueueName"]
        return f"arn:aws:sqs:{region}:{account}:{name}"
    if service == "dynamodb":  # a Query of an index is authorized against the index
        if "RequestItems" in params:  # BatchWriteItem / BatchGetItem: this test's callers batch on one table
            [table] = params["RequestItems"]
            return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{params['TableName']}{index}"
    if service == "lambda":
        name = params["FunctionName"]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        return f"{arn}:{params['Qualifier']}" if params.get("Qualifier") else arn
    if service == "scheduler":
        return f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule/{params.get('GroupName', 'default')}/{params['Name']}"
    if service == "secretsmanager":  # the functions name their secret by its ARN
        return str(params["SecretId"])
    raise AssertionError(f"a function called {service}, which this test does not know how to authorize")


@pytest.fixture
def call_log(monkeypatch: pytest.MonkeyPatch) -> CallLog:
    log = CallLog()
    original = botocore.client.BaseClient._make_api_call

    def observed(client: Any, operation: str, params: dict[str, Any]) -> Any:
        log.record(client, operation, params)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", observed)
    return log


@dataclass
class Deployed:
    """The functions' environment as the template sets it for stack STACK, on moto and a fake clock."""

    aws: Clients
    loops: LoopHarness
    root: JobsRoot
    clock: FakeClock
    make_queue: Callable[..., MadeQueue]

    def queue(self, name: str, handler: str, *bodies: str, **options: Any) -> MadeQueue:
        queue = self.make_queue(f"{STACK}-{name}")
        values: dict[str, Any] = {"wait_s": 0, "visibility_timeout_s": 30, "backoff_base_s": 0, "backoff_max_s": 0}
        registry = Registry(
            table_name=self.loops.settings.queues_table,
            dynamodb=self.aws.dynamodb,
            handler_kinds={*KNOWN_KINDS, "test"},
        )
        registry.create(QueueConfig(queue_url=queue.url, handler=handler, **{**values, **options}))
        self.loops.send(queue.url, *bodies)
        return queue


@pytest.fixture
def deployed(
    aws: Clients, settings: Settings, make_queue: Callable[..., MadeQueue], monkeypatch: pytest.MonkeyPatch
) -> Deployed:
    assert settings.stack_name == STACK
    for name, value in {
        "QUEUES_TABLE": settings.queues_table,
        "LOOPS_TABLE": settings.loops_table,
        "PROCESS_FUNCTION": settings.process_function,
        "STACK_NAME": settings.stack_name,
        "SCALE_UP_TOPIC_ARN": settings.scale_up_topic_arn,
        "SCALE_DOWN_TOPIC_ARN": settings.scale_down_topic_arn,
        "HEARTBEAT_S": "5",
        "RESERVE_S": "10",
        "STALE_AFTER_S": "120",
        "JOBS_TABLE": JOBS_TABLE,
        "HTTP_SECRET_ARN": aws.get("secretsmanager").create_secret(
            Name=f"{STACK}-http-workers", SecretString=HTTP_SECRET
        )["ARN"],
    }.items():
        monkeypatch.setenv(f"SQSLOOPS_{name}", value)
    create_jobs_table(aws.dynamodb, table_name=JOBS_TABLE)
    loops = LoopHarness.create(aws, settings, monkeypatch)
    clock = loops.clock
    return Deployed(aws, loops, ProcessRoot(Settings.from_env(), clients=aws, clock=clock), clock, make_queue)


class DeadOnBody:
    """Messages whose body is the target are dead (the loop moves them to the DLQ now); the others succeed."""

    def __init__(self, target: str) -> None:
        self.target = target

    def dispatch(self, records: list[dict[str, Any]]) -> Outcome:
        dead = [r["messageId"] for r in records if r["body"] == self.target]
        return Outcome(
            succeeded=tuple(r["messageId"] for r in records if r["messageId"] not in dead),
            failed=tuple(Failure(i, "never retried", dead=True) for i in dead),
        )


class DeadLetteringKind:
    """A `test:` handler kind that declares messages dead, as the job layer's `jobs:` kind does."""

    def validate(self, target: str) -> None:
        pass

    def build(self, target: str, config: QueueConfig) -> DeadOnBody:
        return DeadOnBody(target)


class ProcessRoot(JobsRoot):
    """The process function's root, with the `test:` kind beside its own (as a composition root adds one)."""

    def handler_kinds(self) -> dict[str, HandlerKind]:
        return {**super().handler_kinds(), "test": DeadLetteringKind()}


def alarm_event(name: str, queue_name: str) -> dict[str, Any]:
    """A sample SNS alarm notification (events/), about `queue_name`."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["Trigger"]["Dimensions"] = [{"name": "QueueName", "value": queue_name}]
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def run_process(deployed: Deployed, call_log: CallLog) -> list[Call]:
    """Loops that succeed, hide failures, dead-letter an unusable handler's messages, forward to a Lambda handler,
    post a job to a web app (http:, signed with the stack's secret), heartbeat and hand over."""
    with web_app(json.loads(HTTP_SECRET)["current"]) as app:
        return run_process_with(deployed, call_log, http_url=app.url)


def run_process_with(deployed: Deployed, call_log: CallLog, *, http_url: str) -> list[Call]:
    handler_function = f"{STACK}-handler-echo"
    create_function(deployed.aws, handler_function)
    queues = [
        deployed.queue("ok", "python:sqsloops.examples:noop", "a", "b"),
        deployed.queue("fails", "python:tests.fixtures.handlers:always_fail", "c"),
        deployed.queue("unusable", "python:no_such_package.jobs:run", "d"),
        deployed.queue("dead", "test:poison", "poison", "fine"),
        deployed.queue("forward", f"lambda:{handler_function}", "e"),
        deployed.queue("paced", "python:sqsloops.examples:noop", "f", rate_per_s=5.0),  # counts live loops
        enqueue_jobs(deployed, deployed.queue("jobs", f"jobs:{jobs_for_policies.__name__}")),
        deployed.queue("http", f"http:{http_url}", http_job_body(deployed)),
    ]
    for queue in queues:
        token = deployed.loops.tokens.create(queue.url)
        context = FakeLambdaContext(deployed.clock, deployed.clock.monotonic() + 40)
        with call_log.on():
            summary = process_app.handle(token.payload(), context, lambda: deployed.root)
        assert summary["recursed"] is True, summary
    assert deployed.loops.bodies(queues[3].dlq_url) == ["poison"]  # the loop moved it to the DLQ itself
    assert job_states(deployed, "j-noted", "j-once", "j-http") == ["succeeded", "succeeded", "succeeded"]
    assert job_states(deployed, "j-entry") == ["succeeded"]  # the entry topic's unique job: its key claimed here
    gone = deployed.queue("gone", "python:sqsloops.examples:noop", "g")  # deleted under its loops
    deployed.aws.sqs.delete_queue(QueueUrl=gone.url)
    token = deployed.loops.tokens.create(gone.url)
    with call_log.on():
        summary = process_app.handle(
            token.payload(), FakeLambdaContext(deployed.clock, deployed.clock.monotonic() + 40), lambda: deployed.root
        )
    assert summary["reason"] == "queue_missing", summary  # and it marked the registration broken (UpdateItem)
    return call_log.calls


def enqueue_jobs(deployed: Deployed, queue: MadeQueue) -> MadeQueue:
    """Two tracked jobs (rows queued), one of them unique (its key claimed), each delivered once before the traced
    run: a redelivery reads the job's row first (GetItem), then moves its state (UpdateItem); the unique one frees
    its key when done (DeleteItem)."""
    store = deployed.root.job_store
    assert store is not None
    client = JobClient(
        sqs=deployed.aws.sqs,
        scheduler=deployed.aws.scheduler,
        store=store,
        schedule_group=f"{STACK}-jobs",
        scheduler_role_arn=f"arn:aws:iam::{ACCOUNT}:role/{STACK}-scheduler",
        jobs=(jobs_for_policies.noted, jobs_for_policies.once),
        queue_urls={"noted": queue.url, "once": queue.url},
        clock=deployed.clock,
    )
    client.enqueue(jobs_for_policies.noted, [1], id="j-noted")
    client.enqueue(jobs_for_policies.once, [2], id="j-once")
    sqs = deployed.aws.sqs
    # and one from the entry topic (raw delivery: a bare message): the runner claims its key itself (PutItem)
    entry = {"job": "once", "id": "j-entry", "key": "entry-3"}
    attributes = {name: {"DataType": "String", "StringValue": value} for name, value in entry.items()}
    sqs.send_message(QueueUrl=queue.url, MessageBody="[3]", MessageAttributes=attributes)  # type: ignore[arg-type]
    for message in sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return queue


def http_job_body(deployed: Deployed) -> str:
    now = datetime.fromtimestamp(deployed.clock.now(), UTC)
    return Envelope.create("render", [1], {}, now=now, id="j-http").to_json()


def job_states(deployed: Deployed, *job_ids: str) -> list[str | None]:
    store = deployed.root.job_store
    assert store is not None
    return [None if (row := store.get(job_id)) is None else row.state.value for job_id in job_ids]


def run_control(deployed: Deployed, call_log: CallLog) -> dict[str, list[Call]]:
    """Scale-up from an alarm, scale-down on OK, and a restart sweep that takes stale tokens over."""
    work = deployed.queue("work", f"lambda:{STACK}-handler-x", *[f"job {i}" for i in range(30)], max_loops=10)
    deployed.queue("idle", f"lambda:{STACK}-handler-x", min_loops=1, max_loops=2)
    name = urlparse(work.url).path.rsplit("/", 1)[-1]
    calls: dict[str, list[Call]] = {}
    with call_log.on():
        up = scale_app.handle(alarm_event("alarm_scale_up.json", name), None, lambda: deployed.root, up=True)
    assert up["results"][0]["started"] > 0, up
    calls["ScaleUpFunction"], call_log.calls = call_log.calls, []
    deployed.aws.sqs.purge_queue(QueueUrl=work.url)
    with call_log.on():
        down = scale_app.handle(alarm_event("alarm_scale_down.json", name), None, lambda: deployed.root, up=False)
    assert down["results"][0]["stopped"] > 0, down
    calls["ScaleDownFunction"], call_log.calls = call_log.calls, []
    orphan = deployed.make_queue(f"{STACK}-orphan")  # a token left behind by a deregistered queue
    deployed.loops.tokens.create(orphan.url)
    deployed.clock.advance(600)  # every token is stale now
    with call_log.on():
        swept = restart_app.handle({}, None, lambda: deployed.root)
    assert json.dumps(swept) != "{}", swept
    calls["RestartFunction"], call_log.calls = call_log.calls, []
    return calls


@pytest.fixture
def calls_by_function(deployed: Deployed, call_log: CallLog) -> dict[str, list[Call]]:
    process = run_process(deployed, call_log)
    call_log.calls = []
    calls = {"ProcessFunction": process, **run_control(deployed, call_log)}
    run_jobs_api(
        aws=deployed.aws,
        settings=deployed.root.settings,
        clock=deployed.clock,
        stack=STACK,
        account=ACCOUNT,
        recording=call_log.on,
        http_secret=json.loads(HTTP_SECRET)["current"],
    )
    calls["JobsApiFunction"], call_log.calls = call_log.calls, []
    # the restart function's missed-run sweep (cron jobs in the catalog the jobs API's scenario wrote)
    run_missed_runs(
        aws=deployed.aws, settings=deployed.root.settings, stack=STACK, account=ACCOUNT, recording=call_log.on
    )
    calls["RestartFunction"], call_log.calls = calls["RestartFunction"] + call_log.calls, []
    return calls


def test_every_call_a_function_makes_is_allowed_by_its_role(calls_by_function: dict[str, list[Call]]) -> None:
    stack = Stack()
    for function, calls in calls_by_function.items():
        assert calls, function
        for call in calls:
            assert is_iam_action(call.action), call
        denied = sorted({c for c in calls if not stack.allows(function, c.action, c.resource)}, key=str)
        assert denied == [], function


def test_every_action_a_role_allows_is_one_its_functions_call(calls_by_function: dict[str, list[Call]]) -> None:
    stack = Stack()
    used = {function: {c.action for c in calls} for function, calls in calls_by_function.items()}
    # scale-up, scale-down and restart share ControlPolicy: together they must use all of it
    control = ("ScaleUpFunction", "ScaleDownFunction", "RestartFunction")
    for group in (("ProcessFunction",), control, ("JobsApiFunction",)):
        allowed = set().union(*(stack.allowed_actions(f) for f in group))
        called = set().union(*(used[f] for f in group))
        assert sorted(a for a in allowed if not any(matches_action(a, c) for c in called)) == [], group


def test_the_traced_scenarios_reach_their_resources_under_the_stacks_names(
    calls_by_function: dict[str, list[Call]],
) -> None:
    # the tables, queues and functions the scenarios touched are the stack's own (so the checks above are about them)
    resources = {c.resource for calls in calls_by_function.values() for c in calls}
    owned = (
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-",
        f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{STACK}-jobs/",
        f"arn:aws:iam::{ACCOUNT}:role/{STACK}-",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{STACK}-",
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{HTTP_SECRET_KEY}",
    )
    assert sorted(r for r in resources if not r.startswith(owned)) == []
    # and they reached every kind of call the roles are about: hand-overs, forwarding, dead-letter moves
    assert {
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-process",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-handler-echo",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-dead-dlq",
    } <= resources


def test_the_process_function_writes_whole_items_only_of_job_rows_and_unique_keys() -> None:
    # the runner puts whole job rows (a fast job's start and success, JobStore.mark_ran) and claims the entry
    # topic's unique keys, and a python: handler shares the role: its PutItem reaches job# and key# items only,
    # never the catalog or another kind of item
    stack = Stack()
    puts = [s for s in stack.role_statements("ProcessFunction") if "dynamodb:PutItem" in as_list(s["Action"])]
    leading = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["key#*", "job#*"]}}
    assert [s.get("Condition") for s in puts] == [leading]
    assert [s["Resource"] for s in puts] == [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{JOBS_TABLE}"]
    assert fnmatch.fnmatchcase(key_pk("once", "entry-3"), "key#*")
    assert fnmatch.fnmatchcase(job_pk("j-entry"), "job#*")
    assert not any(fnmatch.fnmatchcase("catalog#jobs", pattern) for pattern in ("key#*", "job#*"))
