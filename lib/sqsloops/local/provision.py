"""Deploy a SAM template into moto as `sam package && sam deploy` would, then create what moto's CloudFormation skips.

Steps: zip each function's CodeUri and each layer's ContentUri, upload them to moto's S3 and point the template at
them; translate SAM to CloudFormation offline (samtranslator, with a managed-policy loader that never calls IAM);
`create_stack`; then, by API, what moto 5.2.5 ignores or drops: SNS subscriptions, topic and queue policies, CloudWatch
alarms, Lambda EventInvokeConfig, function layers (and string environment values), reserved concurrency, DynamoDB
TTL, Scheduler schedule groups, and Secrets Manager secrets (a generated value as GenerateSecretString asks; each
function's `!Ref` to one is set to the secret's ARN).

A layer zip carries its ContentUri directory under `python/`: the files its `layer.txt` lists when it has one
(for this template, lib/layer.txt: the runtime, i.e. sqsloops core and jobs, without ops/, cli/, local/), with
the rule lib/Makefile applies for `sam build` (see `layer_files`), else the whole directory. A layer directory that
is itself a package (app/, the user's jobs) ships as `python/app/` with its requirements, as app/Makefile builds it.
Beside a layer.txt, the packages of requirements.txt (Powertools, croniter, tzdata and what they require) go in
too, as lib/Makefile's `pip install --target` puts them: copied from this virtualenv's installed distributions by
their RECORD, never downloaded (sqsloops.local.distributions). Workers see only the function's code, its layers and
the Lambda runtime's boto3 (worker_spawner), so a layer missing a dependency fails here as it would on AWS.

Intrinsics in the skipped resources are resolved by moto's own CloudFormation resolver against the created
stack (the embedded server runs in this process), so `!Ref`, `!GetAtt`, `!Sub`, `!If` and conditions mean
exactly what they meant to `create_stack`.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import secrets as secrets_module
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError
from moto.cloudformation.models import cloudformation_backends
from moto.cloudformation.parsing import clean_json
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import intrinsics_multi_constructor

from sqsloops.errors import DeployError
from sqsloops.local import distributions

ClientFactory = Callable[[str], Any]
Echo = Callable[[str], None]

# Managed policies samtranslator may name (it adds AWSLambdaBasicExecutionRole to every function role).
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/service-role/{name}"
    for name in (
        "AWSLambdaBasicExecutionRole",
        "AWSLambdaSQSQueueExecutionRole",
        "AWSLambdaDynamoDBExecutionRole",
        "AWSLambdaVPCAccessExecutionRole",
        "AWSLambdaRole",
    )
} | {"AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
# What moto's CloudFormation skips (with a warning each) and this module creates by API instead.
COMPLETED_TYPES = (
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::SQS::QueuePolicy",
    "AWS::ApiGatewayV2::Api",  # the HttpApi (SAM's transform makes these two): served by local/gateway.py
    "AWS::ApiGatewayV2::Stage",
    "AWS::SecretsManager::Secret",
)
_SKIPPED_FILES = {"__pycache__", ".pytest_cache", ".mypy_cache"}
# A layer directory holding this file ships only what it lists (the same file lib/Makefile reads for sam build).
LAYER_MANIFEST = "layer.txt"
# Beside a layer.txt: the packages lib/Makefile installs into the layer (pip install --requirement ... --target).
LAYER_REQUIREMENTS = "requirements.txt"
# A layer directory holding this file is a package (app/): it ships as python/<its name>/ (see package_layer_files).
PACKAGE_MARKER = "__init__.py"
_region_lock = threading.Lock()


@dataclass(frozen=True)
class Deployment:
    """What a deploy produced: the stack's outputs, its function names, and what could not be created."""

    stack_name: str
    outputs: dict[str, str]
    function_names: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


class _HandledBelow(logging.Filter):
    """Drops moto's "no CloudFormation support" warning for the types this module creates itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("No Moto CloudFormation support") and _handled(record.getMessage()))


def _handled(message: str) -> bool:
    return any(message.rstrip().endswith(type_) or f"parse {type_} but" in message for type_ in COMPLETED_TYPES)


def _quiet_moto_about_completed_types() -> None:
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _HandledBelow) for f in moto_logger.filters):
        moto_logger.addFilter(_HandledBelow())
    for type_ in COMPLETED_TYPES:
        warnings.filterwarnings("ignore", message=f"Tried to parse {type_} but", category=UserWarning)


class _OfflinePolicies:
    """samtranslator's managed-policy loader, without IAM."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt ...), without touching yaml.SafeLoader itself."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: Path) -> dict[str, Any]:
    """A SAM/CloudFormation YAML or JSON template as plain dicts (short tags as their long forms)."""
    loaded = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict) or "Resources" not in loaded:
        raise DeployError(f"{path} is not a CloudFormation template (no Resources)")
    return loaded


# ---------------------------------------------------------------- packaging


def zip_directory(directory: Path, *, prefix: str = "") -> bytes:
    """The files under `directory` (caches left out), each stored under `prefix` + its relative path."""
    if not directory.is_dir():
        raise DeployError(f"code directory not found: {directory}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if path.is_file() and not _SKIPPED_FILES.intersection(relative.parts) and path.suffix != ".pyc":
                archive.write(path, prefix + relative.as_posix())
    return buffer.getvalue()


def layer_files(directory: Path) -> list[str] | None:
    """The files (relative POSIX paths) a layer directory's `layer.txt` lists, sorted; None without a `layer.txt`.

    The rule lib/Makefile's build-LibLayer applies, so `sam build` and the embedded AWS ship the same files: one
    entry per line (`#` comments and blank lines skipped), a path relative to `directory` that may hold glob
    characters (not `**`); a matching file ships, a matching directory ships whole; `__pycache__/` and `*.pyc`
    never ship; an entry that matches nothing ships nothing.
    """
    manifest = directory / LAYER_MANIFEST
    if not manifest.is_file():
        return None
    return matching_files(directory, manifest.read_text().splitlines(), source=manifest)


def matching_files(directory: Path, entries: Iterable[str], *, source: object) -> list[str]:
    """The files (relative POSIX paths, sorted) that manifest `entries` match under `directory` (the rule of
    `layer_files`); `source` names where the entries came from in the DeployError of a bad entry."""
    files: set[str] = set()
    for line in entries:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("/") or ".." in Path(entry).parts or "**" in entry:
            raise DeployError(f"{source}: {entry!r} must be a path inside {directory} without '..' or '**'")
        for match in directory.glob(entry):
            for path in sorted(match.rglob("*")) if match.is_dir() else [match]:
                relative = path.relative_to(directory)
                if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
                    files.add(relative.as_posix())
    return sorted(files)


def zip_layer(directory: Path) -> bytes:
    """A layer's zip, under `python/`: what `layer.txt` lists (see `layer_files`) and the packages of the
    requirements.txt beside it (see `layer_packages`), or else the whole directory."""
    if not directory.is_dir():
        raise DeployError(f"layer directory not found: {directory}")
    if (directory / PACKAGE_MARKER).is_file():
        return _zip_files(package_layer_files(directory) + layer_packages(directory), prefix="python/")
    listed = layer_files(directory)
    if listed is None:
        return zip_directory(directory, prefix="python/")
    files = [(relative, directory / relative) for relative in listed] + layer_packages(directory)
    return _zip_files(files, prefix="python/")


def package_layer_files(directory: Path) -> list[tuple[str, Path]]:
    """A layer directory that is itself a Python package (the app/ beside the template): its .py files under
    `<directory name>/`, so the package imports by its name, as its Makefile (app/Makefile) builds it for sam build."""
    name = directory.name
    return [
        (f"{name}/{path.relative_to(directory).as_posix()}", path)
        for path in sorted(directory.rglob("*.py"))
        if not _SKIPPED_FILES.intersection(path.relative_to(directory).parts)
    ]


def layer_packages(directory: Path) -> list[tuple[str, Path]]:
    """What lib/Makefile's `pip install --requirement requirements.txt --target python/` installs, from this
    virtualenv: (path under python/, installed file) of each required distribution and of what it requires."""
    requirements = directory / LAYER_REQUIREMENTS
    if not requirements.is_file():
        return []
    files: list[tuple[str, Path]] = []
    for dist in distributions.closure(distributions.read_requirements(requirements), where=str(requirements)):
        files += distributions.installed_files(dist)
    return files


@dataclass(frozen=True)
class LayerSource:
    """A layer assembled from files under `root` (`entries` follow layer.txt's rule), such as a test's handlers."""

    name: str
    root: Path
    entries: tuple[str, ...]

    def zip(self) -> bytes:
        listed = matching_files(self.root, self.entries, source=f"layer {self.name}")
        if not listed:
            raise DeployError(f"layer {self.name}: no file under {self.root} matches {list(self.entries)}")
        return _zip_files([(relative, self.root / relative) for relative in listed], prefix="python/")


def _zip_files(files: Iterable[tuple[str, Path]], *, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, path in files:
            archive.write(path, prefix + relative)
    return buffer.getvalue()


def package(sam: dict[str, Any], *, base_dir: Path, s3: Any, bucket: str) -> dict[str, Any]:
    """A copy of the template whose local CodeUri/ContentUri point at zips uploaded to s3://bucket."""
    packaged = copy.deepcopy(sam)
    for logical_id, resource in packaged["Resources"].items():
        properties = resource.get("Properties") or {}
        for key, zip_code in (("CodeUri", zip_directory), ("ContentUri", zip_layer)):
            location = properties.get(key)
            if not isinstance(location, str) or location.startswith("s3://"):
                continue
            body = zip_code((base_dir / location).resolve())
            s3_key = f"{logical_id}-{hashlib.sha256(body).hexdigest()[:16]}.zip"
            s3.put_object(Bucket=bucket, Key=s3_key, Body=body)
            properties[key] = f"s3://{bucket}/{s3_key}"
    return packaged


# ---------------------------------------------------------------- translation


def translate(sam: dict[str, Any], *, parameters: Mapping[str, str], region: str) -> dict[str, Any]:
    """SAM to plain CloudFormation, offline (samtranslator needs a region; it gets ours for the call)."""
    with _region_lock:
        saved = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = region
        try:
            translated: dict[str, Any] = transform(copy.deepcopy(sam), dict(parameters), _OfflinePolicies())
        except Exception as exc:
            raise DeployError(f"SAM translation failed: {exc}") from exc
        finally:
            if saved is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = saved
    return translated


# ---------------------------------------------------------------- deploy


def deploy(
    template: Path,
    *,
    stack_name: str,
    client: ClientFactory,
    parameters: Mapping[str, str] | None = None,
    echo: Echo | None = None,
    timeout_s: float = 120.0,
) -> Deployment:
    """Package, translate and create the stack in moto (same process), then add what moto skipped."""
    say = echo or (lambda _line: None)
    sam = load_template(template)
    values = {key: str(value) for key, value in (parameters or {}).items()}
    unknown = sorted(set(values) - set(sam.get("Parameters", {})))
    if unknown:
        raise DeployError(f"{template} has no parameters {', '.join(unknown)}")

    cloudformation = client("cloudformation")
    region = cloudformation.meta.region_name
    s3 = client("s3")
    bucket = f"{stack_name.lower()}-artifacts-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    cfn = translate(package(sam, base_dir=template.parent, s3=s3, bucket=bucket), parameters=values, region=region)

    _quiet_moto_about_completed_types()
    say(f"creating stack {stack_name}")
    try:
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(cfn),
            Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()],
            Capabilities=CAPABILITIES,
        )
    except ClientError as exc:
        raise DeployError(f"create_stack {stack_name} failed: {exc}") from exc
    stack = _wait_for_stack(cloudformation, stack_name, timeout_s=timeout_s)

    completion = _Completion(cfn=cfn, stack_id=stack["StackId"], stack_name=stack_name, client=client, say=say)
    completion.run()
    outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in stack.get("Outputs", [])}
    for name, output in (cfn.get("Outputs") or {}).items():  # a Ref to a secret moto did not create: its ARN
        value = output.get("Value") if isinstance(output, dict) else None
        if isinstance(value, dict) and value.get("Ref") in completion.secret_arns:
            outputs[name] = completion.secret_arns[value["Ref"]]
    return Deployment(
        stack_name=stack_name,
        outputs=outputs,
        function_names=tuple(completion.function_names),
        notes=tuple(completion.notes),
    )


def _wait_for_stack(cloudformation: Any, stack_name: str, *, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("_IN_PROGRESS"):
            raise DeployError(f"stack {stack_name} ended {status}: {stack.get('StackStatusReason', '')}")
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {status} after {timeout_s:.0f} s")
        time.sleep(0.2)


def _cfn_string(value: Any) -> str:
    """How CloudFormation renders a scalar into a string property (moto keeps numbers as numbers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class _Completion:
    """Creates, by API, the parts of a created stack that moto's CloudFormation skipped or dropped."""

    cfn: dict[str, Any]
    stack_id: str
    stack_name: str
    client: ClientFactory
    say: Echo
    function_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resource_map: Any = None  # moto's, for the created stack
    secret_arns: dict[str, str] = field(default_factory=dict)  # logical id -> ARN of the secrets created here

    def run(self) -> None:
        _, _, _, region, account, _ = self.stack_id.split(":", 5)
        self.resource_map = cloudformation_backends[account][region].get_stack(self.stack_id).resource_map
        handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "AWS::SecretsManager::Secret": self._secret,  # first: the functions' environment names them
            "AWS::Lambda::Function": self._function,
            "AWS::DynamoDB::Table": self._table,
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::Scheduler::ScheduleGroup": self._schedule_group,
        }
        for type_, handle in handlers.items():  # in this order: functions exist before anything points at them
            for logical_id, properties in self._resources(type_):
                handle(logical_id, properties)

    def _resources(self, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
        conditions = self.resource_map.lazy_condition_map
        for logical_id, resource in self.cfn["Resources"].items():
            if resource["Type"] != type_:
                continue
            if "Condition" in resource and not conditions[resource["Condition"]]:
                continue
            properties = clean_json(copy.deepcopy(resource.get("Properties", {})), self.resource_map)
            yield logical_id, properties

    def _note(self, message: str) -> None:
        self.notes.append(message)
        self.say(f"note: {message}")

    # ---------------------------------------------------------------- fix-ups of created resources

    def _function(self, logical_id: str, properties: dict[str, Any]) -> None:
        lambda_ = self.client("lambda")
        name = self.resource_map[logical_id].function_name
        self.function_names.append(name)
        config = lambda_.get_function_configuration(FunctionName=name)
        update: dict[str, Any] = {}
        layers = [self._layer_arn(layer) for layer in self.cfn["Resources"][logical_id]["Properties"].get("Layers", [])]
        if layers and [layer["Arn"] for layer in config.get("Layers", [])] != layers:
            update["Layers"] = layers
        variables = dict(config.get("Environment", {}).get("Variables", {}))
        declared = self.cfn["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        secrets = {
            key: self.secret_arns[value["Ref"]]
            for key, value in declared.items()
            if isinstance(value, dict) and value.get("Ref") in self.secret_arns
        }
        if secrets or any(not isinstance(value, str) for value in variables.values()):
            variables |= secrets
            update["Environment"] = {"Variables": {key: _cfn_string(value) for key, value in variables.items()}}
        if update:
            lambda_.update_function_configuration(FunctionName=name, **update)
        reserved = properties.get("ReservedConcurrentExecutions")
        if reserved is not None:
            current = lambda_.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
            if current is None or int(current) != int(reserved):
                lambda_.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(reserved))

    def _layer_arn(self, layer: Any) -> str:
        """A layer version ARN (moto's LayerVersion has no physical id, so its `Ref` does not resolve to the ARN)."""
        if isinstance(layer, dict) and set(layer) == {"Ref"}:
            model = self.resource_map[layer["Ref"]]
            if hasattr(model, "arn"):
                return str(model.arn)
        return str(clean_json(layer, self.resource_map))

    def _table(self, logical_id: str, properties: dict[str, Any]) -> None:
        ttl = properties.get("TimeToLiveSpecification")
        if not ttl or not ttl.get("Enabled"):
            return
        self.client("dynamodb").update_time_to_live(
            TableName=self.resource_map[logical_id].physical_resource_id,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )

    # ---------------------------------------------------------------- resources moto skipped

    def _event_invoke_config(self, logical_id: str, properties: dict[str, Any]) -> None:
        request: dict[str, Any] = {"FunctionName": properties["FunctionName"]}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if key in properties:
                request[key] = int(properties[key])
        if properties.get("DestinationConfig"):
            request["DestinationConfig"] = properties["DestinationConfig"]
        self.client("lambda").put_function_event_invoke_config(**request)

    def _topic_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        policy = json.dumps(properties["PolicyDocument"])
        sns = self.client("sns")
        for topic_arn in properties["Topics"]:
            sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy)

    def _queue_policy(self, logical_id: str, properties: dict[str, Any]) -> None:
        """A queue policy (the Unroutable queue's: the entry topic may deliver to it); `Queues` are queue URLs."""
        policy = json.dumps(properties["PolicyDocument"])
        sqs = self.client("sqs")
        for queue_url in properties["Queues"]:
            sqs.set_queue_attributes(QueueUrl=str(queue_url), Attributes={"Policy": policy})

    def _subscription(self, logical_id: str, properties: dict[str, Any]) -> None:
        attributes: dict[str, str] = {}
        for key in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            if key in properties:
                value = properties[key]
                attributes[key] = value if isinstance(value, str) else json.dumps(value)
        for key in ("FilterPolicyScope", "RawMessageDelivery"):
            if key in properties:
                attributes[key] = _cfn_string(properties[key])
        self.client("sns").subscribe(
            TopicArn=properties["TopicArn"],
            Protocol=properties["Protocol"],
            Endpoint=str(properties["Endpoint"]),
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )

    def _secret(self, logical_id: str, properties: dict[str, Any]) -> None:
        """A secret with its SecretString, or the value GenerateSecretString describes (template JSON plus one
        generated key), generated here; KmsKeyId as given."""
        value = properties.get("SecretString")
        generate = properties.get("GenerateSecretString") or {}
        if value is None:
            length = int(generate.get("PasswordLength", 32))
            generated = secrets_module.token_hex(length)[:length]
            template = generate.get("SecretStringTemplate")
            if template is not None and generate.get("GenerateStringKey"):
                value = json.dumps({**json.loads(template), str(generate["GenerateStringKey"]): generated})
            else:
                value = generated
        request: dict[str, Any] = {"Name": str(properties.get("Name") or f"{self.stack_name}-{logical_id}")}
        request["SecretString"] = str(value)
        for key in ("Description", "KmsKeyId"):
            if isinstance(properties.get(key), str):
                request[key] = properties[key]
        client = self.client("secretsmanager")
        try:
            arn = client.create_secret(**request)["ARN"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            arn = client.describe_secret(SecretId=request["Name"])["ARN"]
        self.secret_arns[logical_id] = str(arn)

    def _schedule_group(self, logical_id: str, properties: dict[str, Any]) -> None:
        """The job schedules' group (JobsScheduleGroup): `jobs apply` and delayed enqueues create schedules in it."""
        try:
            self.client("scheduler").create_schedule_group(Name=str(properties["Name"]))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise

    def _alarm(self, logical_id: str, properties: dict[str, Any]) -> None:
        request = _alarm_request(properties)
        request.setdefault("AlarmName", f"{self.stack_name}-{logical_id}-{uuid.uuid4().hex[:12].upper()}")
        try:
            self.client("cloudwatch").put_metric_alarm(**request)
        except ClientError as exc:
            self._note(f"alarm {logical_id} not created (moto refused it: {exc})")


_ALARM_INTS = ("Period", "EvaluationPeriods", "DatapointsToAlarm")
_ALARM_KEYS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
    "Tags",
)


def _alarm_request(properties: Mapping[str, Any]) -> dict[str, Any]:
    """AWS::CloudWatch::Alarm properties as PutMetricAlarm arguments (same names; numbers typed)."""
    request = {key: copy.deepcopy(properties[key]) for key in _ALARM_KEYS if key in properties}
    for key in _ALARM_INTS:
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    if "ActionsEnabled" in request:
        request["ActionsEnabled"] = str(request["ActionsEnabled"]).lower() == "true"
    for dimension in request.get("Dimensions", []):
        dimension["Value"] = str(dimension["Value"])
    for query in request.get("Metrics", []):
        if "Period" in query:
            query["Period"] = int(query["Period"])
        if "ReturnData" in query:
            query["ReturnData"] = str(query["ReturnData"]).lower() == "true"
        stat = query.get("MetricStat")
        if stat:
            stat["Period"] = int(stat["Period"])
            for dimension in stat.get("Metric", {}).get("Dimensions", []):
                dimension["Value"] = str(dimension["Value"])
    return request
