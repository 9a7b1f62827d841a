"""The three doors into the job layer, side by side in one run on the embedded AWS (issue 10's benchmark).

    .venv/bin/python -m bench.entry [--jobs 3000] [--repeat 5] [--samples 200]

The doors, each sending jobs of the same size (the same args, PAYLOAD_BYTES of payload) to a no-op untracked job of
its own (bench/entry_app.py, applied with `jobs apply`'s code: one queue per job, the entry topic subscribed):

- **enqueue_many**: `JobClient.enqueue_many` (SendMessageBatch in tens), the Python producer's door and the baseline;
- **POST /jobs/batch**: the HTTP API through the embedded AWS's local gateway (SigV4-verified, then a Lambda Invoke of
  the stack's jobs-api function), 100 jobs per request, each request signed with botocore's SigV4Auth;
- **SNS PublishBatch**: bare messages (the args as the body, a `job` attribute) to the stack's entry topic, ten per
  request, delivered raw to the job's queue by its filtered subscription.

Every producer runs in one child process (spawned once, its clients and connections made before any timing): in the
benchmark's process its Python would share the GIL with moto's server threads and slow the server down.

1. Throughput: `--jobs` jobs through each door, doors rotated each round, with the job queues' loops paused (`jobs
   pause`: nothing consumes), timed from the first send until all of them are counted on the door's queue. jobs/s is
   the median of the rounds; a ratio is the median of the rounds' paired ratios to enqueue_many. Each queue is
   purged between rounds (moto's strict 60 s purge rule is lifted for this process: the queue is ours alone).
2. Latency, one job at a time with one warm loop per queue: the enqueue call (`enqueue`, `POST /jobs`, SNS
   `Publish`; on the embedded AWS a job is on its queue when the call returns, SNS delivery included) and enqueue to
   job start (the probe line of bench/entry_app.py, read from the function log); p50 / p99, and what each door adds
   to enqueue's (to the start: p50 / p90, since a start's p99 is the loop's, whichever the door: a job sent while
   its loop was not polling, around a heartbeat, waits for the next receive).
3. AWS requests per job, counted at the server (bench.common.ApiCalls, plus the gateway's requests counted at the
   gateway): the producer's, the gateway's, its Invokes and the jobs-api function's own, by service and action. The
   entry topic's deliveries to SQS happen inside moto (no request), as on AWS they are SNS's, not the producer's.

Figures are measurements without targets (issue 10 sets none). An error (a door that fails to send, jobs that never
arrive, a probe never seen, anything left in the Unroutable queue) is printed and exits 1.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from bench import common
from bench.common import ApiCalls, CallKey, LogTap
from bench.entry_app import PROBE, entry_api, entry_direct, entry_sns
from sqsloops.jobs.api import MAX_BATCH_ITEMS
from sqsloops.jobs.client import JobCall, JobClient
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.entry import JOB_ATTRIBUTE
from sqsloops.jobs.store import JobStore
from sqsloops.local.provision import LayerSource

STACK = "bench-entry"
ENTRY_APP = "bench.entry_app"
ENTRY_APP_LAYER = LayerSource(name="entry-app", root=common.ROOT, entries=("bench/__init__.py", "bench/entry_app.py"))
PRODUCER_APP_ID = "bench-entry-producer"  # the child's clients
GATEWAY_SOURCE = "api-gateway"  # requests counted at the local gateway (not moto's: they never reach it)
API_FUNCTION = "jobs-api"  # the stack's jobs-api function, tagged by common.embedded_aws with its short name
PROCESS_APP_ID = "process"
PAYLOAD_BYTES = 200
SNS_BATCH_ENTRIES = 10  # PublishBatch takes up to 10 messages per request
ENQUEUE_CHUNK = 500  # calls per enqueue_many
WARMUP_JOBS = 200  # per door, untimed: the jobs-api function's cold start, the child's connections
WARMUP_PROBES = 3
ARRIVAL_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 30.0
SLOW_START_S = 0.1  # a start this late waited for a loop that was not polling, whichever the door
LOOP_START_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 120.0
PURGE_RULE_ENV = "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"  # read by moto at each PurgeQueue


# ---------------------------------------------------------------- the doors


@dataclass(frozen=True)
class Door:
    """One way into the job layer: its name in batches and one at a time, its job, and whose requests it makes."""

    name: str
    single: str  # the one-job call of the latency phase
    fn: JobFunction[..., Any]
    counts: Callable[[CallKey], bool]


DIRECT = "enqueue_many"
API = "POST /jobs/batch"
SNS = "SNS PublishBatch"


def _direct_counts(key: CallKey) -> bool:
    return key.source == PRODUCER_APP_ID and key.service != "sns"


def _sns_counts(key: CallKey) -> bool:
    return key.source == PRODUCER_APP_ID and key.service == "sns"


def _api_counts_for(function_name: str) -> Callable[[CallKey], bool]:
    def counts(key: CallKey) -> bool:
        invoke = key.action == "Invoke" and key.scope == function_name  # the gateway's, counted at moto
        return invoke or key.source in (GATEWAY_SOURCE, API_FUNCTION)

    return counts


def doors(stack_name: str) -> list[Door]:
    return [
        Door(DIRECT, "enqueue", entry_direct, _direct_counts),
        Door(API, "POST /jobs", entry_api, _api_counts_for(f"{stack_name}-{API_FUNCTION}")),
        Door(SNS, "SNS Publish", entry_sns, _sns_counts),
    ]


def job_args(n: int, *, probe: bool = False) -> list[Any]:
    """The same arguments at every door: a number, PAYLOAD_BYTES of payload, the probe flag."""
    return [n, "x" * PAYLOAD_BYTES, probe]


# ---------------------------------------------------------------- counting at the server (and at the gateway)


class DoorCalls(ApiCalls):
    """ApiCalls, with the action of a query-protocol request (SNS: `Action=PublishBatch` in its form body) instead of
    `POST /`, and a way to count requests that never reach moto (the local gateway's)."""

    def record(self, environ: dict[str, Any]) -> None:
        action = _query_action(environ)
        if action is None:
            super().record(environ)
            return
        self.count(CallKey(common._source(environ), common._service(environ), action))

    def count(self, key: CallKey) -> None:
        with self._lock:
            self._counts[key] += 1


def _query_action(environ: dict[str, Any]) -> str | None:
    """The Action of a form-encoded request (its body is read, then put back for moto), else None."""
    if environ.get("HTTP_X_AMZ_TARGET") or "x-www-form-urlencoded" not in str(environ.get("CONTENT_TYPE", "")):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    actions = parse_qs(body.decode(errors="replace")).get("Action")
    return actions[0] if actions else None


def count_gateway_requests(calls: DoorCalls) -> None:
    """Count every request the local gateway answers, by method and path (wraps HttpApiGateway.answer here)."""
    from sqsloops.local.gateway import HttpApiGateway

    original = getattr(HttpApiGateway, "_bench_original_answer", None) or HttpApiGateway.answer

    def answer(gateway: Any, **request: Any) -> Any:
        path = urlsplit(str(request.get("target", ""))).path
        calls.count(CallKey(GATEWAY_SOURCE, "execute-api", f"{request.get('method', '?')} {path}"))
        return original(gateway, **request)

    HttpApiGateway._bench_original_answer = original  # type: ignore[attr-defined]
    HttpApiGateway.answer = answer  # type: ignore[method-assign,assignment]


# ---------------------------------------------------------------- the producer (a child process)

_CHILD: dict[str, Any] = {}


def _child(context: dict[str, str]) -> dict[str, Any]:
    """The producer's clients, made once per child: boto3's, a keep-alive HTTP pool for the API, a JobClient."""
    if _CHILD:
        return _CHILD
    import urllib3

    os.environ.update({k: v for k, v in context.items() if k.isupper()})  # endpoint, region, credentials
    session = boto3.session.Session()
    config = Config(user_agent_appid=PRODUCER_APP_ID, retries={"max_attempts": 10})  # type: ignore[call-arg]
    clients: dict[str, Any] = {
        name: session.client(name, config=config) for name in ("sqs", "sns", "dynamodb", "scheduler")
    }
    _CHILD.update(clients)
    _CHILD["signer"] = SigV4Auth(
        Credentials(context["AWS_ACCESS_KEY_ID"], context["AWS_SECRET_ACCESS_KEY"]),
        "execute-api",
        context["AWS_DEFAULT_REGION"],
    )
    _CHILD["http"] = urllib3.PoolManager(maxsize=1, retries=False, timeout=HTTP_TIMEOUT_S)
    _CHILD["jobs"] = JobClient(
        sqs=clients["sqs"],
        scheduler=clients["scheduler"],
        store=JobStore(table_name=context["jobs_table"], dynamodb=clients["dynamodb"]),
        schedule_group=context["schedule_group"],
        scheduler_role_arn=context["scheduler_role_arn"],
        jobs=[entry_direct],
        queue_urls={entry_direct.name: context["direct_queue_url"]},
    )
    return _CHILD


def send_in_child(door: str, first: int, count: int, context: dict[str, str]) -> float:
    """In the producer: `count` jobs through `door`, numbered from `first`; the seconds the sending took."""
    child = _child(context)
    started = time.perf_counter()
    numbers = range(first, first + count)
    if door == DIRECT:
        for start in range(0, count, ENQUEUE_CHUNK):
            chunk = numbers[start : start + ENQUEUE_CHUNK]
            results = child["jobs"].enqueue_many([JobCall(entry_direct, job_args(n)) for n in chunk])
            bad = [r for r in results if not r.ok]
            if bad:
                raise RuntimeError(f"{len(bad)} jobs not enqueued: {bad[0].error}")
    elif door == API:
        for start in range(0, count, MAX_BATCH_ITEMS):
            items = [{"job": entry_api.name, "args": job_args(n)} for n in numbers[start : start + MAX_BATCH_ITEMS]]
            status, answer = _signed_post(child, context["api_url"] + "/jobs/batch", {"jobs": items})
            if status != 200 or answer.get("accepted") != len(items):
                raise RuntimeError(f"POST /jobs/batch answered {status}: {json.dumps(answer)[:300]}")
    elif door == SNS:
        for start in range(0, count, SNS_BATCH_ENTRIES):
            entries = [
                {"Id": str(n), "Message": json.dumps(job_args(n)), "MessageAttributes": _job_attribute(entry_sns)}
                for n in numbers[start : start + SNS_BATCH_ENTRIES]
            ]
            response = child["sns"].publish_batch(TopicArn=context["topic_arn"], PublishBatchRequestEntries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"PublishBatch failed: {response['Failed'][0]}")
    else:
        raise ValueError(f"no door {door!r}")
    return time.perf_counter() - started


def send_one_in_child(door: str, n: int, context: dict[str, str]) -> tuple[float, float]:
    """In the producer: one probed job through `door`'s one-job call; (epoch seconds at the send, its seconds)."""
    child = _child(context)
    args = job_args(n, probe=True)
    sent_at, started = time.time(), time.perf_counter()
    if door == DIRECT:
        child["jobs"].enqueue(entry_direct, args)
    elif door == API:
        status, answer = _signed_post(child, context["api_url"] + "/jobs", {"job": entry_api.name, "args": args})
        if status != 201:
            raise RuntimeError(f"POST /jobs answered {status}: {json.dumps(answer)[:300]}")
    elif door == SNS:
        child["sns"].publish(
            TopicArn=context["topic_arn"], Message=json.dumps(args), MessageAttributes=_job_attribute(entry_sns)
        )
    else:
        raise ValueError(f"no door {door!r}")
    return sent_at, time.perf_counter() - started


def _job_attribute(fn: JobFunction[..., Any]) -> dict[str, dict[str, str]]:
    return {JOB_ATTRIBUTE: {"DataType": "String", "StringValue": fn.name}}


def _signed_post(child: dict[str, Any], url: str, payload: Any) -> tuple[int, Any]:
    """A POST signed as tests/e2e/test_jobs_api.py signs it (botocore's SigV4Auth), on the child's kept connection."""
    body = json.dumps(payload).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    child["signer"].add_auth(request)
    prepared = request.prepare()
    response = child["http"].request("POST", url, body=body, headers=dict(prepared.headers))
    try:
        return int(response.status), json.loads(response.data or b"null")
    except ValueError:
        return int(response.status), {"body": response.data[:300].decode(errors="replace")}


# ---------------------------------------------------------------- 1. throughput


@dataclass
class Series:
    """One door, repeated: rates by round, and the requests counted over its repetitions."""

    door: Door
    rates: dict[int, float] = field(default_factory=dict)  # round -> jobs/s
    calls: Counter[CallKey] = field(default_factory=Counter)
    jobs: int = 0
    error: str | None = None
    lag_s: float = 0.0  # the longest a round's last jobs took to be on the queue after the sends returned

    @property
    def rate(self) -> float:
        return common.median(self.rates.values())

    def ratio_to(self, other: Series) -> float:
        """Median over the rounds both ran of this rate over the other's (paired within a round)."""
        return common.median(r / other.rates[k] for k, r in self.rates.items() if k in other.rates)

    def per_job(self) -> float:
        return sum(self.calls.values()) / self.jobs if self.jobs else float("nan")


@dataclass
class Stage:
    """What the measures share: the embedded AWS's clients, the child, the doors' queues."""

    aws: Any
    calls: DoorCalls
    producer: ProcessPoolExecutor
    context: dict[str, str]
    queues: dict[str, str]  # door name -> its job's queue URL
    monitor: Any = None

    def __post_init__(self) -> None:
        self.monitor = common.tagged_client(self.aws, "sqs", common.MONITOR_APP_ID)

    def arrived(self, door: Door, count: int, *, timeout_s: float = ARRIVAL_TIMEOUT_S) -> float | None:
        """Seconds waited, from now, until the door's queue holds `count` jobs (0.0 when it already does); None if
        it never did."""
        url = self.queues[door.name]
        started = time.perf_counter()
        if common.depth(self.monitor, url) >= count:
            return 0.0
        if common.wait_until(lambda: common.depth(self.monitor, url) >= count, timeout_s=timeout_s, interval_s=0.01):
            return time.perf_counter() - started
        return None

    def purge(self, door: Door) -> None:
        self.monitor.purge_queue(QueueUrl=self.queues[door.name])
        if not common.wait_until(lambda: common.depth(self.monitor, self.queues[door.name]) == 0, timeout_s=10):
            raise RuntimeError(f"{door.name}'s queue was not empty after PurgeQueue")


def measure_throughput(stage: Stage, all_doors: Sequence[Door], *, jobs: int, repeat: int) -> dict[str, Series]:
    """Warm every door up (untimed), then `repeat` rounds, doors rotated, of `jobs` jobs each."""
    series = {door.name: Series(door) for door in all_doors}
    active = list(all_doors)
    number = 0
    for door in list(active):
        try:
            stage.producer.submit(send_in_child, door.name, number, WARMUP_JOBS, stage.context).result()
            if stage.arrived(door, WARMUP_JOBS) is None:
                raise RuntimeError(f"the warm-up's {WARMUP_JOBS} jobs did not all arrive")
            stage.purge(door)
        except Exception as exc:
            series[door.name].error = f"warm-up: {type(exc).__name__}: {exc}"
            active.remove(door)
        number += WARMUP_JOBS
    for round_ in range(repeat):
        shift = round_ % len(active) if active else 0
        for door in active[shift:] + active[:shift]:
            before = stage.calls.snapshot()
            try:
                sending_s = stage.producer.submit(send_in_child, door.name, number, jobs, stage.context).result()
                lag_s = stage.arrived(door, jobs)  # on the embedded AWS every door's jobs are there on return
                if lag_s is None:
                    left = common.depth(stage.monitor, stage.queues[door.name])
                    raise RuntimeError(f"{jobs} jobs sent, {left} on the queue after {ARRIVAL_TIMEOUT_S:.0f} s")
                seconds = sending_s + lag_s
                series[door.name].lag_s = max(series[door.name].lag_s, lag_s)
                series[door.name].calls.update(common.calls_between(before, stage.calls.snapshot(), door.counts))
                stage.purge(door)
            except Exception as exc:
                series[door.name].error = f"round {round_ + 1}: {type(exc).__name__}: {exc}"
                active.remove(door)
                continue
            finally:
                number += jobs
            series[door.name].rates[round_] = jobs / seconds
            series[door.name].jobs += jobs
            print(f"    round {round_ + 1} {door.name}: {jobs / seconds:.0f} jobs/s", flush=True)
    return series


# ---------------------------------------------------------------- 2. latency


PROBE_LINE = re.compile(re.escape(PROBE) + r" (\d+) ([0-9.]+)")


class ProbeTap(LogTap):
    """The function log, and the start time a probed job printed (bench/entry_app.py PROBE)."""

    def started_at(self, n: int, *, since: int, timeout_s: float) -> float | None:
        needle = f"{PROBE} {n} "
        if not self.wait_for(needle, count=1, since=since, timeout_s=timeout_s):
            return None
        with self._cond:
            line = next(line for line in self._lines[since:] if needle in line)
        found = PROBE_LINE.search(line)
        return float(found.group(2)) if found else None


@dataclass
class Latency:
    """One door's one-job samples: the enqueue call's seconds and enqueue-to-start seconds."""

    door: Door
    call_s: list[float] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)
    calls: Counter[CallKey] = field(default_factory=Counter)
    error: str | None = None


def start_loops(aws: Any, stage: Stage, all_doors: Sequence[Door]) -> None:
    """Resume each door's registration with one loop pinned (min = max = 1), and wait until each has polled."""
    admin = common.registrations(aws)
    for door in all_doors:
        admin.update(stage.queues[door.name], enabled=True, min_loops=1)
    for door in all_doors:
        url = stage.queues[door.name]
        if not common.wait_until(
            lambda url=url: common.running_loops(admin.tokens.list(url)) >= 1,  # type: ignore[misc]
            timeout_s=LOOP_START_TIMEOUT_S,
            interval_s=0.2,
        ):
            raise RuntimeError(f"{door.name}'s loop did not start within {LOOP_START_TIMEOUT_S:.0f} s")


def measure_latency(
    stage: Stage, tap: ProbeTap, all_doors: Sequence[Door], *, samples: int, pause_s: float, first: int
) -> dict[str, Latency]:
    """`samples` probed jobs through each door's one-job call, one at a time, doors rotated; after WARMUP_PROBES
    untimed ones each (the loops' first jobs load the app)."""
    found = {door.name: Latency(door) for door in all_doors}
    number = first

    def one(door: Door, *, record: bool) -> None:
        nonlocal number
        number += 1
        mark = tap.mark()
        sent_at, call_s = stage.producer.submit(send_one_in_child, door.name, number, stage.context).result()
        started_at = tap.started_at(number, since=mark, timeout_s=PROBE_TIMEOUT_S)
        if started_at is None:
            raise RuntimeError(f"job {number} did not start within {PROBE_TIMEOUT_S:.0f} s")
        if record:
            found[door.name].call_s.append(call_s)
            found[door.name].start_s.append(started_at - sent_at)
        time.sleep(pause_s)

    active = list(all_doors)
    for door in list(active):
        try:
            for _ in range(WARMUP_PROBES):
                one(door, record=False)
        except Exception as exc:
            found[door.name].error = f"latency warm-up: {type(exc).__name__}: {exc}"
            active.remove(door)
    before = stage.calls.snapshot()
    for i in range(samples):
        shift = i % len(active) if active else 0
        for door in active[shift:] + active[:shift]:
            try:
                one(door, record=True)
            except Exception as exc:
                found[door.name].error = f"latency: {type(exc).__name__}: {exc}"
                active.remove(door)
    counted = stage.calls.snapshot() - before
    for door in all_doors:
        found[door.name].calls = Counter({k: n for k, n in counted.items() if door.counts(k)})
    return found


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, math.ceil(p / 100 * len(ranked)) - 1))]


# ---------------------------------------------------------------- report


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 50) * 1000:.1f} / {percentile(values, 99) * 1000:.1f}"


def _added_ms(values: Sequence[float], base: Sequence[float], *, tail: float) -> str:
    """What a door adds to enqueue's: the difference of the p50s, and of the `tail` percentiles."""
    if not values or not base:
        return "-"
    p50, high = ((percentile(values, p) - percentile(base, p)) * 1000 for p in (50, tail))
    return f"{p50:+.1f} / {high:+.1f}"


def _breakdown(calls: Counter[CallKey], jobs: int) -> str:
    by: Counter[str] = Counter()
    for key, n in calls.items():
        by[f"{key.service} {key.action}"] += n
    return ", ".join(f"{what} {n / jobs:.3f}" for what, n in sorted(by.items(), key=lambda kv: -kv[1])) or "none"


def rows(series: dict[str, Series], latencies: dict[str, Latency]) -> list[list[str]]:
    direct = series[DIRECT]
    out: list[list[str]] = []
    for s in series.values():
        arrival = (
            "all on the queue when the sends returned"
            if s.lag_s == 0
            else f"last on the queue {s.lag_s * 1000:.0f} ms after the sends"
        )
        out.append([f"throughput: {s.door.name} (jobs/s)", f"{s.rate:.0f}" if s.rates else "-", arrival])
    for s in series.values():
        if s is not direct:
            ratio = s.ratio_to(direct)
            value = "-" if math.isnan(ratio) else f"{ratio:.2f}x"
            out.append([f"  {s.door.name} / {DIRECT}", value, "paired, median of rounds"])
    base = latencies.get(DIRECT)
    for lat in latencies.values():
        out.append([f"latency {lat.door.single}: call p50 / p99 (ms)", _ms(lat.call_s), "the job is on its queue"])
        if base is not None and lat is not base:
            added = _added_ms(lat.call_s, base.call_s, tail=99)
            out.append([f"  added by {lat.door.single} over enqueue: p50 / p99", added, ""])
    for lat in latencies.values():
        slow = sum(s > SLOW_START_S for s in lat.start_s)
        detail = f"one warm loop; {slow} of {len(lat.start_s)} over {SLOW_START_S * 1000:.0f} ms"
        out.append([f"latency {lat.door.single} -> start: p50 / p99 (ms)", _ms(lat.start_s), detail])
        if base is not None and lat is not base:
            added = _added_ms(lat.start_s, base.start_s, tail=90)
            why = "p90: the p99s are the loops' (a start that waited for a loop not polling, any door)"
            out.append([f"  added by {lat.door.single} over enqueue: p50 / p90", added, why])
    for s in series.values():
        if s.jobs:
            out.append([f"requests/job {s.door.name} (batched)", f"{s.per_job():.3f}", _breakdown(s.calls, s.jobs)])
    for lat in latencies.values():
        if lat.start_s:
            jobs = len(lat.start_s)
            total = sum(lat.calls.values()) / jobs
            out.append([f"requests/job {lat.door.single} (one at a time)", f"{total:.3f}", _breakdown(lat.calls, jobs)])
    return out


def render(table_rows: Sequence[Sequence[str]]) -> str:
    """common.table's layout, with the detail (free text) left-aligned."""
    headers = ["figure", "value", "detail"]
    cells = [headers, *[list(row) for row in table_rows]]
    width = [max(len(row[i]) for row in cells) for i in range(2)]
    lines = [f"{row[0].ljust(width[0])}  {row[1].rjust(width[1])}  {row[2]}".rstrip() for row in cells]
    lines.insert(1, f"{'-' * width[0]}  {'-' * width[1]}  {'-' * max(len(row[2]) for row in cells)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per door and round (default 3000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the throughput measure (default 5)")
    parser.add_argument("--samples", type=int, default=200, help="latency samples per door (default 200)")
    common.add_latency_options(parser, log_help="where the function log goes")
    return common.parse_checked(parser, argv, counts=("jobs", "repeat", "samples"))


def apply_jobs(aws: Any, all_doors: Sequence[Door]) -> dict[str, str]:
    """`jobs apply bench.entry_app` (queues, registrations, entry-topic subscriptions, catalog), then `jobs pause`
    of each: no loop runs (min loops 0, no alarms) until the latency phase. Door name -> queue URL."""
    from sqsloops.ops.jobs_admin import JobsAdmin
    from sqsloops.ops.jobs_apply import JobsApply

    root = aws.root()
    applier = JobsApply.for_root(root)
    applier.apply(applier.plan(ENTRY_APP, {door.fn.name: door.fn for door in all_doors}))
    admin = JobsAdmin.for_root(root)
    queues = {}
    for door in all_doors:
        admin.pause(door.fn.name)
        queues[door.name] = admin.entry(door.fn.name).queue_url
    return queues


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-entry-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"entry: {common.Machine.now()}; logs in {log_dir}", flush=True)
    os.environ[PURGE_RULE_ENV] = "false"  # moto reads it at each PurgeQueue; the queues purged are the bench's own
    tap = ProbeTap(log_dir / "functions.log")
    calls = DoorCalls(scoped_sources=[common.BENCH_APP_ID])  # the gateway's Invokes, scoped by function
    count_gateway_requests(calls)
    all_doors = doors(STACK)
    series: dict[str, Series] = {}
    latencies: dict[str, Latency] = {}
    errors: list[str] = []
    try:
        with (
            common.embedded_aws(stack_name=STACK, time_scale=args.time_scale, tap=tap, calls=calls) as aws,
            ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as producer,
        ):
            aws.attach_handler_layers([ENTRY_APP_LAYER])
            queues = apply_jobs(aws, all_doors)
            settings = aws.settings
            context = {
                **aws.env(),
                "jobs_table": settings.jobs_table,
                "schedule_group": settings.schedule_group,
                "scheduler_role_arn": settings.scheduler_role_arn,
                "direct_queue_url": queues[DIRECT],
                "api_url": aws.api_urls["JobsHttpApi"],
                "topic_arn": settings.entry_topic_arn,
            }
            stage = Stage(aws=aws, calls=calls, producer=producer, context=context, queues=queues)
            print(f"  throughput: {args.jobs} jobs per door, {args.repeat} rounds (loops paused)", flush=True)
            series = measure_throughput(stage, all_doors, jobs=args.jobs, repeat=args.repeat)
            print(f"  latency: {args.samples} jobs per door, one at a time, one warm loop each", flush=True)
            try:
                start_loops(aws, stage, all_doors)
                first = (WARMUP_JOBS + args.jobs * args.repeat) * len(all_doors)
                latencies = measure_latency(
                    stage, tap, all_doors, samples=args.samples, pause_s=args.pause, first=first
                )
            except Exception as exc:
                errors.append(f"latency: {type(exc).__name__}: {exc}")
            unroutable = common.depth(stage.monitor, settings.unroutable_queue_url)
            if unroutable:
                errors.append(f"{unroutable} messages in the Unroutable queue: a door's jobs were not routed")
    finally:
        tap.close()
    errors += [f"{s.door.name}: {s.error}" for s in series.values() if s.error]
    errors += [f"{lat.door.name}: {lat.error}" for lat in latencies.values() if lat.error]
    print()
    print(
        f"{args.jobs} jobs per door and round ({PAYLOAD_BYTES}-byte payload), {args.repeat} rounds, {args.samples}"
        f" latency samples per door; batches: enqueue_many 10 per SendMessageBatch, POST /jobs/batch"
        f" {MAX_BATCH_ITEMS} per request, PublishBatch {SNS_BATCH_ENTRIES}; rates: medians; requests counted at the"
        " server"
    )
    if series:
        print(render(rows(series, latencies)))
    for error in errors:
        print(f"  error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
