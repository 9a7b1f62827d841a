"""What the benchmarks share: the embedded AWS with server-side API call counting, queues, functions, children.

API calls are counted by the moto server itself (a wrapper around its WSGI application), so every request of
every process is seen, whoever sent it. Each request is attributed to a source by its User-Agent: botocore puts
`app/ID` in it when AWS_SDK_UA_APP_ID (or Config(user_agent_appid=...)) is set. The benchmark process tags its own
clients ("bench", "bench-producer", "bench-monitor": the embedded AWS's evaluator and scheduler, the producer,
the drain monitor), each consumer process and each Lambda function gets its own id, and a request without one
(kombu's pycurl client) counts as "untagged".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
BENCH_APP_ID = "bench"
PRODUCER_APP_ID = "bench-producer"
MONITOR_APP_ID = "bench-monitor"
UA_ENV = "AWS_SDK_UA_APP_ID"
BODY_BYTES = 256
UNTAGGED = "untagged"
LAMBDA_UNTAGGED = "lambda"
_LAMBDA_PATH = re.compile(r"^/[0-9-]+/functions/([^/]+)/(invocations|invoke-async)")
_APP_ID = re.compile(r"\bapp/([A-Za-z0-9._~!$&'*+^`|-]+)")
_MAX_SCOPED_BODY = 256 * 1024


class CallKey(NamedTuple):
    """One kind of request: who sent it, to which service, which action, and on what (see ApiCalls)."""

    source: str
    service: str
    action: str
    scope: str = ""


# ---------------------------------------------------------------- counting API calls at the server


class ApiCalls:
    """Counts every request the moto server answers, by CallKey.

    For the sources in `scoped_sources` the key also names what the request was about (`scope`): the QueueUrl of an
    SQS call, the queue_url in the Key of a DynamoDB call (a loop's heartbeat, its registration), the function of
    an Invoke. That tells apart the loops of two queues that share one process function.
    """

    def __init__(self, *, scoped_sources: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[CallKey] = Counter()
        self._scoped = frozenset(scoped_sources)

    def record(self, environ: dict[str, Any]) -> None:
        source = _source(environ)
        scope = _scope(environ) if source in self._scoped else ""
        key = CallKey(source, _service(environ), _action(environ), scope)
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> Counter[CallKey]:
        with self._lock:
            return Counter(self._counts)

    def install(self) -> None:
        """Wrap moto's WSGI dispatcher in this process (every ThreadedMotoServer uses it)."""
        from moto.moto_server import werkzeug_app

        dispatcher = werkzeug_app.DomainDispatcherApplication
        original = getattr(dispatcher, "_bench_original_call", None) or dispatcher.__call__
        calls = self

        def counting_call(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            calls.record(environ)
            return original(app, environ, start_response)

        dispatcher._bench_original_call = original  # type: ignore[attr-defined]
        dispatcher.__call__ = counting_call  # type: ignore[method-assign,assignment]


def calls_between(
    before: Counter[CallKey], after: Counter[CallKey], wanted: Callable[[CallKey], bool]
) -> Counter[CallKey]:
    """The calls between two snapshots for which `wanted(key)` holds."""
    return Counter({key: n for key, n in (after - before).items() if wanted(key)})


def _source(environ: dict[str, Any]) -> str:
    agent = str(environ.get("HTTP_USER_AGENT", ""))
    found = _APP_ID.search(agent)
    if found:
        return found.group(1)
    if "exec-env/AWS_Lambda" in agent:
        return LAMBDA_UNTAGGED
    return UNTAGGED


def _service(environ: dict[str, Any]) -> str:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    try:
        return auth.split(",", maxsplit=1)[0].split()[1].split("/")[3]
    except IndexError:
        return "?"


def _action(environ: dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    path = str(environ.get("PATH_INFO", ""))
    if _LAMBDA_PATH.match(path):
        return "Invoke"
    return f"{environ.get('REQUEST_METHOD', '?')} {path[:40]}"


def _scope(environ: dict[str, Any]) -> str:
    """What a JSON-protocol request is about (its body is read, then put back for moto), or an Invoke's function."""
    invoked = _LAMBDA_PATH.match(str(environ.get("PATH_INFO", "")))
    if invoked:
        return invoked.group(1)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return ""
    if not environ.get("HTTP_X_AMZ_TARGET") or not 0 < length <= _MAX_SCOPED_BODY:
        return ""
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(request, dict):
        return ""
    if "QueueUrl" in request:
        return str(request["QueueUrl"])
    key = request.get("Key")
    if isinstance(key, dict) and isinstance(key.get("queue_url"), dict):
        return str(key["queue_url"].get("S", ""))
    return ""


# ---------------------------------------------------------------- the embedded AWS


class LogTap:
    """The `echo` of EmbeddedAws: keeps function log lines, and lets a benchmark wait for one to appear."""

    def __init__(self, path: Path | None = None) -> None:
        self._cond = threading.Condition()
        self._lines: list[str] = []
        self._file = path.open("a", encoding="utf-8") if path else None

    def __call__(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self._lines)

    def count(self, needle: str, since: int = 0) -> int:
        with self._cond:
            return sum(needle in line for line in self._lines[since:])

    def wait_for(self, needle: str, *, count: int, since: int = 0, timeout_s: float) -> bool:
        give_up_at = time.monotonic() + timeout_s
        with self._cond:
            while sum(needle in line for line in self._lines[since:]) < count:
                left_s = give_up_at - time.monotonic()
                if left_s <= 0:
                    return False
                self._cond.wait(min(left_s, 1.0))
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@contextlib.contextmanager
def embedded_aws(
    *,
    stack_name: str,
    time_scale: float,
    tap: LogTap,
    calls: ApiCalls | None = None,
    parameters: dict[str, str] | None = None,
) -> Iterator[Any]:
    """An EmbeddedAws whose own clients are tagged "bench"; with `calls`, its requests are counted and each stack
    function is tagged with its name (which replaces its pre-warmed execution environment: warm up after this)."""
    from sqsloops.local.server import EmbeddedAws
    from sqsloops.log import logger

    logger.setLevel("WARNING")  # the evaluator and scheduler log here; the functions' logs go to the tap
    os.environ[UA_ENV] = BENCH_APP_ID  # read when the embedded AWS makes its clients
    if calls is not None:
        calls.install()
    with EmbeddedAws(
        template=TEMPLATE, stack_name=stack_name, time_scale=time_scale, parameters=parameters, echo=tap
    ) as aws:
        assert aws.deployment is not None
        if calls is not None:
            for name in aws.deployment.function_names:
                tag_function(aws, name, name.removeprefix(f"{stack_name}-"))
        yield aws


def tag_function(aws: Any, function_name: str, app_id: str) -> None:
    """Give a function's clients a User-Agent app id (its warm workers are replaced on their next use)."""
    lambda_ = aws.client("lambda")
    config = lambda_.get_function_configuration(FunctionName=function_name)
    variables = {k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()}
    variables[UA_ENV] = app_id
    lambda_.update_function_configuration(FunctionName=function_name, Environment={"Variables": variables})


def tagged_client(aws: Any, service: str, app_id: str) -> Any:
    config = Config(user_agent_appid=app_id, retries={"max_attempts": 10})  # type: ignore[call-arg]
    return aws.client(service, config=config)


def deploy_function(
    aws: Any,
    *,
    name: str,
    source: Path,
    app_id: str,
    timeout_s: int = 300,
    environment: dict[str, str] | None = None,
    reserved_concurrency: int | None = None,
) -> str:
    """Deploy one source file as app.py (handler app.handler) on the embedded AWS; returns the function name."""
    lambda_ = aws.client("lambda")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source.read_text(encoding="utf-8"))
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=_role_arn(aws),
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=timeout_s,
        Environment={"Variables": {**(environment or {}), UA_ENV: app_id}},
    )
    if reserved_concurrency is not None:
        lambda_.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved_concurrency)
    return name


def _role_arn(aws: Any) -> str:
    iam = aws.client("iam")
    name = "bench-functions"
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def registrations(aws: Any) -> Any:
    return aws.root().admin


# ---------------------------------------------------------------- queues


def make_queue(sqs: Any, name: str, *, visibility_timeout_s: int = 60, max_receive_count: int = 5) -> str:
    """A queue with a dead-letter queue, as sqsloops expects; returns its URL."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    attributes = {"VisibilityTimeout": str(visibility_timeout_s), "RedrivePolicy": policy}
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def bodies(count: int, *, size: int = BODY_BYTES) -> list[str]:
    """`count` distinct bodies of exactly `size` bytes."""
    return [f"{i:08d}".ljust(size, "x") for i in range(count)]


def send_all(sqs: Any, queue_url: str, messages: Sequence[str]) -> list[str]:
    """SendMessageBatch in tens; returns the MessageIds in order. Failed entries are retried."""
    ids: list[str] = []
    for start in range(0, len(messages), 10):
        pending = {str(i): body for i, body in enumerate(messages[start : start + 10])}
        sent: dict[str, str] = {}
        while pending:
            entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            for ok in response.get("Successful", []):
                sent[ok["Id"]] = ok["MessageId"]
                pending.pop(ok["Id"])
        ids += [sent[str(i)] for i in range(len(sent))]
    return ids


def depth(sqs: Any, queue_url: str) -> int:
    """Messages visible, in flight or delayed: 0 once everything sent was deleted."""
    from sqsloops.queues import queue_depth

    d = queue_depth(sqs, queue_url)
    return d.visible + d.in_flight + d.delayed


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.05) -> bool:
    give_up_at = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > give_up_at:
            return False
        time.sleep(interval_s)
    return True


# ---------------------------------------------------------------- child processes


class Children:
    """Processes a benchmark starts, each in its own session so that it and its children stop together."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self._log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # our own interpreter and scripts
            list(argv),
            env={**os.environ, **env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, grace_s: float = 3.0) -> None:
        """SIGTERM to the process's group (its own session), SIGKILL after grace_s."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self._procs):
            self.stop(proc, grace_s=1.0)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so that `finally` blocks stop the embedded AWS, its workers and our children."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# ---------------------------------------------------------------- execution environments (our worker subprocesses)


def lambda_workers(function_name: str) -> list[int]:
    """PIDs of this process's Lambda worker subprocesses that run `function_name`."""
    me, wanted = os.getpid(), f"AWS_LAMBDA_FUNCTION_NAME={function_name}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _stat_fields(int(entry.name))[1] != str(me):
                continue
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return pids


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, ... utime (11), stime (12)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = _stat_fields(pid)
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def busiest(pids: Sequence[int], count: int, *, window_s: float = 1.0) -> list[int]:
    """The `count` processes that used the most CPU over window_s (a loop polls; an idle environment waits)."""
    before = {pid: _cpu_ticks(pid) for pid in pids}
    time.sleep(window_s)
    used = {pid: _cpu_ticks(pid) - ticks for pid, ticks in before.items() if ticks >= 0}
    ranked = sorted((pid for pid, ticks in used.items() if ticks > 0), key=lambda pid: -used[pid])
    return ranked[:count]


# ---------------------------------------------------------------- reporting


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table: first column left-aligned, the others right-aligned."""
    cells = [list(map(str, headers)), *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on, printed with them."""

    cores: int
    load_1m: float

    @classmethod
    def now(cls) -> Machine:
        return cls(cores=os.cpu_count() or 0, load_1m=os.getloadavg()[0])

    def __str__(self) -> str:
        return f"{self.cores} cores, load average {self.load_1m:.2f} at start"


# ---------------------------------------------------------------- the stack's timing


def sweep_interval_s(aws: Any) -> float:
    """Seconds between two restart sweeps: the restart rule's rate(), compressed by the time scale."""
    from sqsloops.local.scheduler import parse_expression

    events = aws.client("events")
    restart = f"{aws.stack_name}-restart"
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        if any(t["Arn"].endswith(f":function:{restart}") for t in targets) and rule.get("ScheduleExpression"):
            trigger = parse_expression(rule["ScheduleExpression"], time_scale=aws.time_scale)
            return float(trigger.interval_s)  # type: ignore[attr-defined]
    raise RuntimeError(f"no schedule rule targets {restart}")


def visibility_timeout_s(time_scale: float) -> int:
    """SQS's default 60 s, compressed: a batch must stay shorter than stale_after_s, which is compressed too."""
    return max(1, int(60 / time_scale))


def alarm_period_s(aws: Any) -> float:
    """Seconds between two evaluations of a depth alarm: the stack's AlarmPeriodSeconds over the time scale."""
    return float(aws.settings.alarm_period_s) / float(aws.time_scale)


def running_loops(tokens: Sequence[Any]) -> int:
    """Tokens whose loop has proved itself at least once (its first heartbeat counts its invocation)."""
    return sum(t.invocations > 0 for t in tokens)


# --- the command line the job-layer benchmarks share ----------------------------------------------------------------


def add_latency_options(parser: argparse.ArgumentParser, *, log_help: str) -> None:
    """--pause, --time-scale and --log-dir, as bench.jobs and bench.entry take them."""
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between two latency samples")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="compress the stack's heartbeat and timeouts (default 1)"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help=log_help)


def parse_checked(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, counts: Sequence[str]
) -> argparse.Namespace:
    """The arguments, each of `counts` at least 1, --pause >= 0 and --time-scale > 0 (else a usage error)."""
    args = parser.parse_args(argv)
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.pause < 0 or args.time_scale <= 0:
        parser.error("--pause must be >= 0 and --time-scale > 0")
    return args


# --- the core tables, for benchmarks that run a loop without a deployed stack ----------------------------------------


def create_core_tables(dynamodb: Any, *, queues_table: str | None = None, loops_table: str | None = None) -> None:
    """The Queues and Loops tables as template.yaml defines them (tests/conftest.py has the tests' copy, kept in step
    by tests/functional/test_template.py); either one left out is not created."""
    if queues_table is not None:
        dynamodb.create_table(
            TableName=queues_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "queue_url", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "queue_url", "KeyType": "HASH"}],
        )
    if loops_table is not None:
        dynamodb.create_table(
            TableName=loops_table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "queue_url", "AttributeType": "S"},
                {"AttributeName": "token", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "queue_url", "KeyType": "HASH"},
                {"AttributeName": "token", "KeyType": "RANGE"},
            ],
        )
