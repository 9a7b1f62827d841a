"""EmbeddedAws: the whole stack on one machine, in this process: moto's server plus what moto does not do.

`start()` runs moto's ThreadedMotoServer on 127.0.0.1, makes its SQS fast (sqs_speed), routes Lambda invocations
to worker subprocesses (executor), deploys the template (provision), pre-starts one execution environment per
function, starts the alarm evaluator and the scheduler, and serves each HttpApi of the template on a local port
(gateway: SigV4-verified, routed to its function). `stop()` undoes all of it.

moto keeps its state in process-wide backends: one EmbeddedAws per process at a time, and no `mock_aws` while it
runs (mock_aws resets those same backends).

Time compression (`time_scale` k > 1): alarms are evaluated every Period/k, rate() schedules fire every
interval/k, each invocation gets Timeout/k, and the stack is deployed with StaleAfterSeconds and HeartbeatSeconds
divided by k (at least 1 s) unless `parameters` sets them.

Faults (`faults=`, or `set_faults` while it runs; sqsloops.local.faults) throttle DynamoDB, fail or drop async
invokes and kill the process function's execution environments, their windows and periods in compressed time.
`handler_layers` are layers attached to the process function, where `python:` handlers run: workers see only
code and layers (and the runtime's boto3), so handlers a deployment does not ship in its layer (a test's fixtures,
a benchmark's) come in this way, as they would on AWS.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from sqsloops.clients import Clients
from sqsloops.clock import SYSTEM_CLOCK, Clock
from sqsloops.local import faults as faults_module
from sqsloops.local import sqs_speed
from sqsloops.local.evaluator import AlarmEvaluator
from sqsloops.local.executor import FAKE_CREDENTIALS, LambdaExecutor
from sqsloops.local.faults import FaultInjector, Faults
from sqsloops.local.gateway import HttpApiGateway, local_outputs, start_gateways
from sqsloops.local.provision import Deployment, LayerSource, deploy, load_template
from sqsloops.local.scheduler import Scheduler
from sqsloops.ops.root import OpsRoot
from sqsloops.ops.stack import STACK_ENV
from sqsloops.settings import Settings

REGION = "us-east-1"
HOST = "127.0.0.1"
# Parameters whose meaning is a duration the loops and the sweep wait for: compressed with time_scale.
SCALED_PARAMETERS = ("StaleAfterSeconds", "HeartbeatSeconds")


class EmbeddedAws:
    """moto on 127.0.0.1 with the stack deployed, Lambda code running, alarms evaluated and schedules firing."""

    def __init__(
        self,
        *,
        template: Path,
        stack_name: str = "sqsloops",
        time_scale: float = 1.0,
        parameters: Mapping[str, str] | None = None,
        port: int = 0,
        echo: Callable[[str], None] | None = None,
        faults: Faults | None = None,
        handler_layers: Sequence[LayerSource] = (),
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.template = Path(template)
        self.stack_name = stack_name
        self.time_scale = float(time_scale)
        self.parameters = dict(parameters or {})
        self.port = port
        self.echo = echo
        self.faults = faults
        self.handler_layers = tuple(handler_layers)
        self.endpoint = ""
        self.deployment: Deployment | None = None
        self._settings: Settings | None = None
        self._session = boto3.session.Session(
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self._session_lock = threading.Lock()
        self._server: ThreadedMotoServer | None = None
        self._executor: LambdaExecutor | None = None
        self._evaluator: AlarmEvaluator | None = None
        self._scheduler: Scheduler | None = None
        self._injector: FaultInjector | None = None
        self._gateways: dict[str, HttpApiGateway] = {}

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> EmbeddedAws:
        """Start moto, patch it, deploy the stack, start the evaluator and scheduler. Stops what it started on error."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # otherwise one line per request
        sqs_speed.apply()
        _check_port_free(self.port)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        _, port = self._server.get_host_and_port()
        self.endpoint = f"http://{HOST}:{port}"
        self._executor = LambdaExecutor(
            endpoint_url=self.endpoint, region=REGION, time_scale=self.time_scale, echo=self.echo
        )
        self._executor.install()
        self.deployment = deploy(
            self.template,
            stack_name=self.stack_name,
            client=self.client,
            parameters=self.deploy_parameters(),
            echo=self.echo,
        )
        self._settings = Settings.from_outputs(self.stack_name, self.deployment.outputs)
        self.attach_handler_layers(self.handler_layers)
        for function_name in self.deployment.function_names:
            self._executor.prewarm(function_name)
        self._evaluator = AlarmEvaluator(
            cloudwatch=self.client("cloudwatch"),
            sqs=self.client("sqs"),
            sns=self.client("sns"),
            time_scale=self.time_scale,
        )
        self._scheduler = Scheduler(
            events=self.client("events"),
            scheduler=self.client("scheduler"),
            lambda_client=self.client("lambda"),
            sqs=self.client("sqs"),
            time_scale=self.time_scale,
        )
        self._evaluator.start()
        self._scheduler.start()
        sam = load_template(self.template)
        self._gateways = start_gateways(
            sam,
            stack_name=self.stack_name,
            client=self.client,
            region=REGION,
            secrets={FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]},
        )
        self.deployment.outputs.update(local_outputs(sam, self.api_urls))  # the API's URL output: the gateway's
        self.set_faults(self.faults)

    def attach_handler_layers(self, layers: Sequence[LayerSource]) -> None:
        """Publish each layer and add it to the process function's layers, after those it has: python: handlers
        import from them. Its warm workers are replaced on their next use (their layers changed)."""
        if not layers:
            return
        lambda_ = self.client("lambda")
        function_name = self.settings.process_function
        config = lambda_.get_function_configuration(FunctionName=function_name)
        arns = [layer["Arn"] for layer in config.get("Layers", [])]
        for layer in layers:
            published = lambda_.publish_layer_version(
                LayerName=f"{self.stack_name}-{layer.name}",
                Content={"ZipFile": layer.zip()},
                CompatibleRuntimes=["python3.11"],
            )
            arns.append(published["LayerVersionArn"])
        lambda_.update_function_configuration(FunctionName=function_name, Layers=arns)

    def set_faults(self, faults: Faults | None) -> FaultInjector | None:
        """Inject `faults` from now on (None: none); windows count from now. Returns the injector (its counts and
        kills), None for no faults."""
        if not self.endpoint:
            raise RuntimeError("EmbeddedAws is not started")
        faults_module.deactivate(self._injector)
        self.faults = faults
        self._injector = None
        if faults is not None and faults.any:
            self._injector = FaultInjector(
                faults, time_scale=self.time_scale, kill_function=self.settings.process_function, echo=self.echo
            )
        faults_module.activate(self._injector)
        return self._injector

    @property
    def fault_injector(self) -> FaultInjector | None:
        return self._injector

    def stop(self) -> None:
        """Stop the evaluator, the scheduler, every worker and the server; remove temporary files. Idempotent."""
        faults_module.deactivate(self._injector)
        self._injector = None
        for gateway in self._gateways.values():
            gateway.stop()
        self._gateways = {}
        for component in (self._scheduler, self._evaluator):
            if component is not None:
                component.stop()
        self._scheduler = self._evaluator = None
        if self._executor is not None:
            self._executor.stop()
            self._executor = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ---------------------------------------------------------------- what callers use

    @property
    def settings(self) -> Settings:
        """The deployed stack's settings (from its Outputs)."""
        if self._settings is None:
            raise RuntimeError("EmbeddedAws is not started")
        return self._settings

    @property
    def api_urls(self) -> dict[str, str]:
        """The local URL of each HttpApi of the stack (logical id -> http://127.0.0.1:PORT), SigV4-verified."""
        return {api_id: gateway.url for api_id, gateway in self._gateways.items()}

    @property
    def outputs(self) -> dict[str, str]:
        if self.deployment is None:
            raise RuntimeError("EmbeddedAws is not started")
        return dict(self.deployment.outputs)

    def client(self, service: str, *, config: Config | None = None) -> Any:
        """A new boto3 client on the embedded endpoint (us-east-1, fake credentials)."""
        if not self.endpoint:
            raise RuntimeError("EmbeddedAws is not started")
        with self._session_lock:  # boto3 sessions are not thread-safe; the clients they make are
            return self._session.client(service, endpoint_url=self.endpoint, config=config)  # type: ignore[call-overload]

    def root(self, *, clock: Clock = SYSTEM_CLOCK) -> OpsRoot:
        """The stack's collaborators on the embedded endpoint, wired as the CLI wires them."""
        return OpsRoot(self.settings, clients=Clients(self.client), clock=clock)

    def env(self) -> dict[str, str]:
        """Environment for another process (a CLI, a producer) to use this embedded AWS and find the stack."""
        if not self.endpoint:
            raise RuntimeError("EmbeddedAws is not started")
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **FAKE_CREDENTIALS,
            STACK_ENV: self.stack_name,
        }

    def deploy_parameters(self) -> dict[str, str]:
        """The stack parameters: the caller's, plus the durations compressed by time_scale that the caller left out."""
        values = dict(self.parameters)
        if self.time_scale != 1.0:
            declared = load_template(self.template).get("Parameters", {})
            for name in SCALED_PARAMETERS:
                if name not in values and "Default" in declared.get(name, {}):
                    values[name] = str(max(1, round(float(declared[name]["Default"]) / self.time_scale)))
        return values


def _check_port_free(port: int) -> None:
    """ThreadedMotoServer waits forever when its thread cannot bind: find out here, with a clear error."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise OSError(f"cannot serve the embedded AWS on {HOST}:{port}: {exc.strerror}") from exc
