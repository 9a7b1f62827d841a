"""The job layer against its baselines, side by side in one run on the embedded AWS (issue 9's benchmark).

    .venv/bin/python -m bench.jobs [--jobs 1500] [--repeat 3] [--consumers 2] [--samples 60]

1. Enqueue: `JobClient.enqueue_many` of an untracked and of a tracked no-op job (bench/jobs_app.py) against a bare
   boto3 SendMessageBatch loop at the same batch size (10), the same number of messages of the same size, each on
   a queue nobody consumes. jobs/s is the median of the rounds; a ratio is the median of the rounds' ratios.
2. Throughput with warm loops on a pre-filled backlog, the same N consumers each: the untracked job and the tracked
   one (`jobs:bench.jobs_app`), the bare `python:sqsloops.examples:noop` handler and Celery's SQS transport (as
   bench/throughput.py runs both). Every consumer set is started and warmed up first; a repetition fills its
   queue with --jobs messages held back (DelaySeconds 900: jobs through the JobClient, so tracked jobs get their
   queued row) and then releases them all at once in the embedded moto (this process owns it), so the consumers
   meet a full backlog, as on AWS after a burst. Timed from the release until the queue is empty.
3. Latency from enqueue to start with a warm loop: --samples jobs of each kind sent one at a time with a pause; each
   prints the time it starts (bench/jobs_app.py PROBE), read back from the function log.
4. AWS requests per job, counted at the server (bench.common.ApiCalls, plus the DynamoDB table of each request):
   SQS requests of the loops per job on the backlog, and the end-to-end figure with the enqueue's SendMessageBatch;
   Jobs table writes per tracked job on the success path (the enqueue's PutItem plus the runner's writes).
5. What tracking costs per million jobs, priced by sqsloops.ops.cost / ops.prices from the counted requests.

One table of figures, each with its target and PASS / MISS. A missed target is a measurement (exit 0); an error
(a consumer set that does not start or drain, a job not enqueued, a probe never seen) exits 1.
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from bench import common, throughput
from bench.common import ApiCalls, CallKey, Children, LogTap
from bench.jobs_app import PROBE, noop_tracked, noop_untracked
from sqsloops.jobs.client import MAX_BATCH_ENTRIES, JobCall, JobClient
from sqsloops.jobs.definition import JobFunction
from sqsloops.jobs.envelope import Envelope, new_job_id
from sqsloops.jobs.store import JobStore
from sqsloops.local.provision import LayerSource
from sqsloops.ops.cost import Estimate

STACK = "bench-jobs"
JOBS_APP = "bench.jobs_app"
# The jobs reach the process function's workers as a layer: they see only code, layers and the runtime's boto3.
JOBS_APP_LAYER = LayerSource(name="jobs-app", root=common.ROOT, entries=("bench/__init__.py", "bench/jobs_app.py"))
PROCESS_APP_ID = throughput.PROCESS_APP_ID
ENQUEUE_APP_ID = "bench-enqueue"  # the enqueue phase's clients; the backlogs' are common.PRODUCER_APP_ID
HOLD_S = 900  # SQS's longest DelaySeconds: a backlog is held until released, however long the fill takes
ENQUEUE_CHUNK = 500  # calls per enqueue_many of a backlog fill (its results are kept in memory)
WARMUP_PER_CONSUMER = 50
PROBE_TIMEOUT_S = 30.0
PROBE_LINE = re.compile(re.escape(PROBE) + r" (\S+) ([0-9.]+)")
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
DYNAMODB_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
MILLION = 1_000_000

# Targets (issue 9, "Benchmarks" and "Precisions")
MIN_ENQUEUE_RATIO = 0.8
MIN_UNTRACKED_TO_PYTHON = 0.9
MIN_TRACKED_TO_PYTHON = 0.6
MIN_JOBS_TO_CELERY = 1.5
MAX_SQS_PER_JOB = 0.3
# DynamoDB writes per tracked job: <= 3 (queued, running, final), or <= 2 when `running` has no write of its own
# (jobs/execution.py module doc; jobs/store.py mark_running is an UpdateItem). rows() says which from the counts.


# ---------------------------------------------------------------- counting, by DynamoDB table too


class TableCalls(ApiCalls):
    """ApiCalls, and the items of every DynamoDB request counted by table: CallKey(source, "dynamodb", action,
    table) -> items read or written (1 for GetItem / PutItem / UpdateItem, the entries of a batch or transaction).

    ApiCalls' scope tells loops apart by queue; the Jobs table's keys name no queue, so its requests need this, and
    a BatchWriteItem of 25 rows is 25 writes (25 write units), not one.
    """

    def __init__(self, *, scoped_sources: Sequence[str] = ()) -> None:
        super().__init__(scoped_sources=scoped_sources)
        self._items_lock = threading.Lock()
        self._items: Counter[CallKey] = Counter()

    def record(self, environ: dict[str, Any]) -> None:
        items = _items_by_table(environ)
        super().record(environ)
        if items:
            source, action = common._source(environ), common._action(environ)
            with self._items_lock:
                for table, n in items.items():
                    self._items[CallKey(source, "dynamodb", action, table)] += n

    def items_snapshot(self) -> Counter[CallKey]:
        with self._items_lock:
            return Counter(self._items)


def _items_by_table(environ: dict[str, Any]) -> Counter[str]:
    """Items per table of a DynamoDB request (its body is read, then put back for moto); empty for anything else."""
    found: Counter[str] = Counter()
    if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
        return found
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return found
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = json.loads(body)
    except ValueError:
        return found
    if not isinstance(request, dict):
        return found
    if request.get("TableName"):
        found[str(request["TableName"])] += 1
    for table, entries in (request.get("RequestItems") or {}).items():  # BatchWriteItem, BatchGetItem
        found[str(table)] += len(entries.get("Keys", ())) if isinstance(entries, dict) else len(entries)
    for entry in request.get("TransactItems") or ():  # TransactWriteItems, TransactGetItems
        for operation in entry.values():
            found[str(operation.get("TableName", ""))] += 1
    return found


def from_source(source: str) -> Callable[[CallKey], bool]:
    return lambda key: key.source == source


class ProbeTap(LogTap):
    """The function log, and the start time a probed job printed (bench/jobs_app.py PROBE)."""

    def started_at(self, job_id: str, *, since: int, timeout_s: float) -> float | None:
        needle = f"{PROBE} {job_id} "
        if not self.wait_for(needle, count=1, since=since, timeout_s=timeout_s):
            return None
        with self._cond:
            lines = [line for line in self._lines[since:] if needle in line]
        found = PROBE_LINE.search(lines[0])
        return float(found.group(2)) if found else None


# ---------------------------------------------------------------- holding and releasing a backlog


def holding_client(aws: Any, app_id: str) -> Any:
    """An SQS client whose SendMessageBatch entries are all delayed HOLD_S: a backlog fills without being consumed."""
    client = common.tagged_client(aws, "sqs", app_id)

    def hold(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries", []):
            entry["DelaySeconds"] = HOLD_S

    client.meta.events.register("before-parameter-build.sqs.SendMessageBatch", hold)
    return client


def release(queue_url: str) -> int:
    """Make every held message of the queue visible at once, in this process's moto; returns how many.

    The embedded AWS runs moto here, so this is the one place a whole backlog can appear in one instant (SQS has no
    call for it): the waiting long polls are woken as a send would wake them.
    """
    from moto.sqs.models import sqs_backends

    from sqsloops.local.server import REGION

    account, name = urlparse(queue_url).path.strip("/").split("/")[-2:]
    queue = sqs_backends[account][REGION].queues[name]
    with queue._messages_lock:
        messages = list(queue._messages)
        for message in messages:
            message.delayed_until = 0
        queue._messages_lock.notify_all()
    return len(messages)


# ---------------------------------------------------------------- the stack's clients for jobs


def job_client(aws: Any, *, sqs: Any, app_id: str, queue_urls: dict[str, str]) -> JobClient:
    """A JobClient for the benchmark's jobs, sending to the given queues, its requests tagged `app_id`."""
    settings = aws.settings
    store = JobStore(table_name=settings.jobs_table, dynamodb=common.tagged_client(aws, "dynamodb", app_id))
    return JobClient(
        sqs=sqs,
        scheduler=common.tagged_client(aws, "scheduler", app_id),
        store=store,
        schedule_group=settings.schedule_group,
        scheduler_role_arn=settings.scheduler_role_arn,
        jobs=[noop_untracked, noop_tracked],
        queue_urls=queue_urls,
    )


def enqueue_all(client: JobClient, fn: JobFunction[..., Any], count: int, *, chunk: int = ENQUEUE_CHUNK) -> None:
    """enqueue_many of `count` no-op jobs; RuntimeError naming the first failure if any was not sent."""
    for start in range(0, count, chunk):
        results = client.enqueue_many([JobCall(fn) for _ in range(min(chunk, count - start))])
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"{len(bad)} {fn.name} jobs not enqueued: {bad[0].error}")


def sample_envelope_bytes() -> int:
    """The size of one untracked no-op job's message: the bare loop sends bodies of this size."""
    envelope = Envelope(id=new_job_id(), job=noop_untracked.name, args=(), kwargs={}, enqueued_at=_utc_now())
    return len(envelope.to_json().encode())


def _utc_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(tz=UTC)


# ---------------------------------------------------------------- 1. enqueue


@dataclass
class Series:
    """One way of doing something, repeated: rates by round, and the API calls counted over its repetitions."""

    name: str
    rates: dict[int, float] = field(default_factory=dict)  # round -> jobs/s
    calls: Counter[CallKey] = field(default_factory=Counter)
    items: Counter[CallKey] = field(default_factory=Counter)  # DynamoDB items, by table (TableCalls)
    jobs: int = 0
    error: str | None = None

    @property
    def rate(self) -> float:
        return common.median(self.rates.values())

    def ratio_to(self, other: Series) -> float:
        """Median over the rounds both ran of this rate over the other's (paired within a round)."""
        return common.median(r / other.rates[k] for k, r in self.rates.items() if k in other.rates)

    def per_job(self, wanted: Callable[[CallKey], bool], *, items: bool = False) -> float:
        counted = self.items if items else self.calls
        return sum(n for key, n in counted.items() if wanted(key)) / self.jobs if self.jobs else float("nan")


BARE, UNTRACKED, TRACKED = "bare SendMessageBatch", "enqueue_many untracked", "enqueue_many tracked"
ENQUEUE_WARMUP = 50


def measure_enqueue(aws: Any, calls: TableCalls, *, jobs: int, repeat: int) -> dict[str, Series]:
    """Each round: the bare loop, enqueue_many untracked and tracked (rotated), each on a fresh queue.

    The producer runs in a process of its own, as a producer would: here, its Python would otherwise share this
    process's GIL with moto's server threads, and every microsecond it spends would also slow the server down.
    """
    admin = aws.client("sqs")
    settings = aws.settings
    context = {
        **aws.env(),
        "jobs_table": settings.jobs_table,
        "schedule_group": settings.schedule_group,
        "scheduler_role_arn": settings.scheduler_role_arn,
    }
    names = [BARE, UNTRACKED, TRACKED]
    series = {name: Series(name) for name in names}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as producer:
        for name in names:  # untimed: the child's imports, clients and connections
            url = admin.create_queue(QueueName=common.unique_name("enq-warm"))["QueueUrl"]
            producer.submit(enqueue_in_child, name, url, ENQUEUE_WARMUP, context).result()
            admin.delete_queue(QueueUrl=url)
        for round_ in range(repeat):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                url = admin.create_queue(QueueName=common.unique_name("enq"))["QueueUrl"]
                before, items_before = calls.snapshot(), calls.items_snapshot()
                try:
                    seconds = producer.submit(enqueue_in_child, name, url, jobs, context).result()
                except Exception as exc:
                    series[name].error = f"{type(exc).__name__}: {exc}"
                    continue
                finally:
                    admin.delete_queue(QueueUrl=url)
                mine = from_source(ENQUEUE_APP_ID)
                series[name].calls.update(common.calls_between(before, calls.snapshot(), mine))
                series[name].items.update(common.calls_between(items_before, calls.items_snapshot(), mine))
                series[name].rates[round_] = jobs / seconds
                series[name].jobs += jobs
                print(f"    round {round_ + 1} {name}: {jobs / seconds:.0f} jobs/s", flush=True)
    return series


_CHILD_CLIENTS: dict[str, Any] = {}


def enqueue_in_child(way: str, queue_url: str, jobs: int, context: dict[str, str]) -> float:
    """In the producer process: send `jobs` one way; the seconds the sending took (clients built before)."""
    if not _CHILD_CLIENTS:
        os.environ.update({k: v for k, v in context.items() if k.isupper()})  # endpoint, region, credentials
        session = boto3.session.Session()
        config = Config(user_agent_appid=ENQUEUE_APP_ID, retries={"max_attempts": 10})  # type: ignore[call-arg]
        _CHILD_CLIENTS.update({name: session.client(name, config=config) for name in ("sqs", "dynamodb", "scheduler")})
    sqs = _CHILD_CLIENTS["sqs"]
    if way == BARE:
        body = "x" * sample_envelope_bytes()
        started = time.perf_counter()
        _bare_sends(sqs, queue_url, jobs, body)
        return time.perf_counter() - started
    client = JobClient(
        sqs=sqs,
        scheduler=_CHILD_CLIENTS["scheduler"],
        store=JobStore(table_name=context["jobs_table"], dynamodb=_CHILD_CLIENTS["dynamodb"]),
        schedule_group=context["schedule_group"],
        scheduler_role_arn=context["scheduler_role_arn"],
        jobs=[noop_untracked, noop_tracked],
        queue_urls={noop_untracked.name: queue_url, noop_tracked.name: queue_url},
    )
    started = time.perf_counter()
    enqueue_all(client, noop_tracked if way == TRACKED else noop_untracked, jobs)
    return time.perf_counter() - started


def _bare_sends(sqs: Any, queue_url: str, count: int, body: str) -> None:
    """The baseline: SendMessageBatch in tens, nothing else."""
    for start in range(0, count, MAX_BATCH_ENTRIES):
        entries = [{"Id": str(i), "MessageBody": body} for i in range(min(MAX_BATCH_ENTRIES, count - start))]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed: {response['Failed'][0]}")


# ---------------------------------------------------------------- 2. throughput on a backlog


class JobsScenario(throughput.Sqsloops):
    """A no-op job on the loops (`jobs:bench.jobs_app`), its backlog enqueued by the JobClient."""

    handler = f"jobs:{JOBS_APP}"

    def __init__(self, bench: throughput.Bench, fn: JobFunction[..., Any]) -> None:
        super().__init__(bench)
        self.fn = fn
        self.name = f"jobs {'tracked' if fn.options.track else 'untracked'}"


@dataclass
class Consumers:
    """A consumer set on its queue, and how its backlog is filled (held) and its warm-up sent (not held)."""

    scenario: throughput.Scenario
    queue_url: str = ""
    fill: Callable[[int], object] = lambda count: None
    warm: Callable[[int], object] = lambda count: None


def _consumers(bench: throughput.Bench, scenario: throughput.Scenario, queue_url: str) -> Consumers:
    aws = bench.aws
    held = holding_client(aws, common.PRODUCER_APP_ID)
    if isinstance(scenario, JobsScenario):
        fn = scenario.fn
        holding = job_client(aws, sqs=held, app_id=common.PRODUCER_APP_ID, queue_urls={fn.name: queue_url})
        direct = job_client(aws, sqs=bench.producer, app_id=common.PRODUCER_APP_ID, queue_urls={fn.name: queue_url})
        return Consumers(
            scenario, queue_url, lambda n: enqueue_all(holding, fn, n), lambda n: enqueue_all(direct, fn, n)
        )
    return Consumers(
        scenario,
        queue_url,
        lambda n: common.send_all(held, queue_url, scenario.bodies(n)),
        lambda n: common.send_all(bench.producer, queue_url, scenario.bodies(n)),
    )


def measure_throughput(
    bench: throughput.Bench, calls: TableCalls, *, consumers: int, jobs: int, repeat: int
) -> tuple[dict[str, Series], dict[str, Consumers]]:
    """Start and warm up every consumer set, then `repeat` rounds (rotated) of fill, release, drain."""
    scenarios: list[throughput.Scenario] = [
        throughput.Sqsloops(bench),
        JobsScenario(bench, noop_untracked),
        JobsScenario(bench, noop_tracked),
        throughput.CeleryScenario(bench),
    ]
    series = {s.name: Series(s.name) for s in scenarios}
    active: list[Consumers] = []
    visibility_s = common.visibility_timeout_s(bench.time_scale)
    for scenario in scenarios:
        queue_url = common.make_queue(bench.sqs, common.unique_name("jobs"), visibility_timeout_s=visibility_s)
        try:
            scenario.start(queue_url, consumers)
        except Exception as exc:
            series[scenario.name].error = f"start failed: {type(exc).__name__}: {exc}"
            continue
        active.append(_consumers(bench, scenario, queue_url))
    started = {c.scenario.name: c for c in active}
    for c in list(active):
        c.warm(WARMUP_PER_CONSUMER * consumers)
        if not bench.wait_empty(c.queue_url, timeout_s=throughput.START_TIMEOUT_S):
            series[c.scenario.name].error = "warm-up did not drain"
            active.remove(c)
    timeout_s = max(120.0, jobs / 5)
    for round_ in range(repeat):
        shift = round_ % len(active) if active else 0
        for c in active[shift:] + active[:shift]:
            error = _one_backlog(bench, calls, c, series[c.scenario.name], jobs, round_, timeout_s)
            if error:
                series[c.scenario.name].error = error
                active.remove(c)
    return series, started


def _one_backlog(
    bench: throughput.Bench,
    calls: TableCalls,
    c: Consumers,
    series: Series,
    jobs: int,
    round_: int,
    timeout_s: float,
) -> str | None:
    """Fill (held), release, time the drain; the error that stopped it, if any."""
    fill_before = calls.items_snapshot()
    try:
        c.fill(jobs)
    except Exception as exc:
        return f"fill failed: {type(exc).__name__}: {exc}"
    fill_items = common.calls_between(fill_before, calls.items_snapshot(), from_source(common.PRODUCER_APP_ID))
    before, items_before = calls.snapshot(), calls.items_snapshot()
    started = time.perf_counter()
    released = release(c.queue_url)
    done = threading.Event()
    done.set()
    drained = throughput._wait_drained(bench, c.queue_url, done, timeout_s)
    seconds = time.perf_counter() - started
    if released != jobs:
        return f"released {released} messages, {jobs} were sent"
    if not drained:
        return f"did not drain within {timeout_s:.0f} s"
    series.calls.update(common.calls_between(before, calls.snapshot(), c.scenario.counts))
    series.items.update(common.calls_between(items_before, calls.items_snapshot(), from_source(PROCESS_APP_ID)))
    series.items.update(fill_items)  # a tracked job's queued row is part of its cost
    series.rates[round_] = jobs / seconds
    series.jobs += jobs
    print(f"    round {round_ + 1} {series.name}: {jobs / seconds:.0f} jobs/s", flush=True)
    return None


def stop_all(consumers: Sequence[Consumers]) -> None:
    """Stop every set at once: each loop stops at its next heartbeat, so one wait serves them all."""
    threads = [threading.Thread(target=c.scenario.stop, daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# ---------------------------------------------------------------- 3. latency


def measure_latency(
    aws: Any, tap: ProbeTap, queues: dict[str, str], *, samples: int, pause_s: float
) -> dict[str, list[float]]:
    """Enqueue-to-start seconds of `samples` probed jobs of each kind, sent one at a time, alternating kinds."""
    client = job_client(
        aws, sqs=common.tagged_client(aws, "sqs", ENQUEUE_APP_ID), app_id=ENQUEUE_APP_ID, queue_urls=queues
    )
    fns = [fn for fn in (noop_untracked, noop_tracked) if fn.name in queues]
    latencies: dict[str, list[float]] = {fn.name: [] for fn in fns}
    for _ in range(samples):
        for fn in fns:
            mark = tap.mark()
            sent_at = time.time()
            handle = client.enqueue(fn, [True])
            started_at = tap.started_at(handle.id, since=mark, timeout_s=PROBE_TIMEOUT_S)
            if started_at is None:
                raise RuntimeError(f"{fn.name} {handle.id} did not start within {PROBE_TIMEOUT_S:.0f} s")
            latencies[fn.name].append(started_at - sent_at)
            time.sleep(pause_s)
    return latencies


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, math.ceil(p / 100 * len(ranked)) - 1))]


# ---------------------------------------------------------------- 5. what tracking costs


def index_write_units(tables: Counter[CallKey], jobs_table: str) -> float:
    """Writes the `by_job_state` GSI takes for the counted Jobs table item writes (jobs/schema.py): a new row is one
    index put; a state change rewrites `state_at`, the index's sort key, which DynamoDB carries out as a delete and a
    put in the index (two writes: Developer Guide, GSI.html#GSI.Writes). Here the rows are created by the enqueue
    (one each) and changed by the runner, whose every write moves the state (its UpdateItem, PutItem or
    BatchWriteItem replaces the queued row with the succeeded one: two each)."""
    units = 0.0
    for key, n in tables.items():
        if key.scope != jobs_table or key.action not in DYNAMODB_WRITES:
            continue
        units += 2 * n if key.source == PROCESS_APP_ID else n
    return units


def tracking_cost(tracked: Series, untracked: Series, jobs_table: str) -> tuple[Estimate, dict[str, float]]:
    """The Jobs table's bill for a million tracked jobs beyond untracked ones (items under 1 KB: one unit each)."""

    def on_table(series: Series, actions: frozenset[str]) -> float:
        return series.per_job(lambda k: k.scope == jobs_table and k.action in actions, items=True)

    writes = on_table(tracked, DYNAMODB_WRITES) - on_table(untracked, DYNAMODB_WRITES)
    reads = on_table(tracked, DYNAMODB_READS) - on_table(untracked, DYNAMODB_READS)
    index = index_write_units(tracked.items, jobs_table) / tracked.jobs if tracked.jobs else float("nan")
    usage = {"dynamodb_write_unit": (writes + index) * MILLION, "dynamodb_read_unit": reads * MILLION}
    detail = {"table_writes": writes, "index_writes": index, "reads": reads}
    return Estimate("tracking", {"Jobs table": usage}), detail


# ---------------------------------------------------------------- report


@dataclass
class Row:
    figure: str
    value: str
    target: str = "-"
    ok: bool | None = None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "MISS")


def _at_least(figure: str, value: float, minimum: float, unit: str = "x") -> Row:
    ok = None if math.isnan(value) else value >= minimum
    return Row(figure, f"{value:.2f}{unit}", f">= {minimum:g}{unit}", ok)


def _at_most(figure: str, value: float, maximum: float) -> Row:
    ok = None if math.isnan(value) else round(value, 6) <= maximum  # counts: 0.2 + 0.1 is 0.3 here
    return Row(figure, f"{value:.3f}", f"<= {maximum:g}", ok)


def rows(
    enqueue: dict[str, Series],
    runs: dict[str, Series],
    latencies: dict[str, list[float]],
    *,
    jobs_table: str,
) -> list[Row]:
    bare, enq_u, enq_t = (enqueue[k] for k in (BARE, UNTRACKED, TRACKED))
    python, run_u, run_t = (runs[k] for k in (throughput.Sqsloops.name, "jobs untracked", "jobs tracked"))
    celery = runs[throughput.CeleryScenario.name]
    out = [Row(f"enqueue: {s.name} (jobs/s)", f"{s.rate:.0f}") for s in (bare, enq_u, enq_t)]
    out += [
        _at_least("enqueue: untracked / bare", enq_u.ratio_to(bare), MIN_ENQUEUE_RATIO),
        Row("enqueue: tracked / bare", f"{enq_t.ratio_to(bare):.2f}x"),
        Row(
            "enqueue tracked: DynamoDB requests / item writes per job",
            f"{enq_t.per_job(lambda key: key.service == 'dynamodb'):.3f} / "
            f"{enq_t.per_job(lambda key: key.action in DYNAMODB_WRITES, items=True):.3f}",
        ),
    ]
    out += [Row(f"throughput: {s.name} (jobs/s)", f"{s.rate:.0f}") for s in (python, run_u, run_t, celery)]
    out += [
        _at_least("throughput: untracked / python:", run_u.ratio_to(python), MIN_UNTRACKED_TO_PYTHON),
        _at_least("throughput: tracked / python:", run_t.ratio_to(python), MIN_TRACKED_TO_PYTHON),
        _at_least("throughput: untracked / celery", run_u.ratio_to(celery), MIN_JOBS_TO_CELERY),
        _at_least("throughput: tracked / celery", run_t.ratio_to(celery), MIN_JOBS_TO_CELERY),
    ]
    for name, values in latencies.items():
        kind = "tracked" if name == noop_tracked.name else "untracked"
        ms = [v * 1000 for v in values]
        out.append(
            Row(
                f"latency enqueue->start {kind}: p50 / p99 (ms)", f"{percentile(ms, 50):.1f} / {percentile(ms, 99):.1f}"
            )
        )

    def sqs(key: CallKey) -> bool:
        return key.service == "sqs"

    for s, enq in ((run_u, enq_u), (run_t, enq_t)):
        kind = s.name.removeprefix("jobs ")
        run_sqs = s.per_job(sqs)
        out.append(_at_most(f"SQS requests/job {kind}: loops on the backlog", run_sqs, MAX_SQS_PER_JOB))
        end_to_end = run_sqs + enq.per_job(sqs)
        out.append(_at_most(f"SQS requests/job {kind}: enqueue + loops (end to end)", end_to_end, MAX_SQS_PER_JOB))

    def on_jobs_table(key: CallKey) -> bool:
        return key.scope == jobs_table and key.action in DYNAMODB_WRITES

    writes = run_t.per_job(on_jobs_table, items=True)
    runner = run_t.per_job(lambda key: on_jobs_table(key) and key.source == PROCESS_APP_ID, items=True)
    # The precision: <= 3 (queued, running, final), <= 2 when `running` has no write of its own. The runner's own
    # writes per job say which: two (mark_running, then the final state) or one (the final state only).
    own = math.isnan(runner) or runner > 1.5
    which = "running has its own write" if own else "running has no write of its own"
    out.append(_at_most(f"DynamoDB writes/tracked job, success ({which})", writes, 3 if own else 2))
    by_action: Counter[str] = Counter()
    for key, n in run_t.items.items():
        if on_jobs_table(key):
            by_action[f"{'runner' if key.source == PROCESS_APP_ID else 'enqueue'} {key.action}"] += n
    if run_t.jobs:
        detail = ", ".join(f"{action} {n / run_t.jobs:.2f}" for action, n in sorted(by_action.items()))
        out.append(Row("  Jobs table item writes per job, by who and action", detail or "none"))
    out.append(Row("DynamoDB writes/untracked job (Jobs table)", f"{run_u.per_job(on_jobs_table, items=True):.3f}"))
    if run_t.jobs and run_u.jobs:
        estimate, detail_cost = tracking_cost(run_t, run_u, jobs_table)
        units = f"{detail_cost['table_writes']:.2f} + {detail_cost['index_writes']:.2f}"
        out += [
            Row("tracking cost per 1M jobs (DynamoDB on-demand, us-east-1)", f"${estimate.total:.2f}"),
            Row("  write units/job beyond untracked: table + GSI", units),
            Row("  read units/job beyond untracked", f"{detail_cost['reads']:.2f}"),
        ]
    return out


def render(table_rows: Sequence[Row]) -> str:
    return common.table(
        ["figure", "value", "target", "verdict"], [[r.figure, r.value, r.target, r.verdict] for r in table_rows]
    )


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1500, help="jobs per repetition (default 1500)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measure (default 3)")
    parser.add_argument("--consumers", type=int, default=2, help="loops (and Celery processes) each (default 2)")
    parser.add_argument("--samples", type=int, default=60, help="latency samples of each kind (default 60)")
    common.add_latency_options(parser, log_help="where function and consumer logs go")
    return common.parse_checked(parser, argv, counts=("jobs", "repeat", "consumers", "samples"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="sqsloops-bench-jobs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"jobs: {common.Machine.now()}; logs in {log_dir}", flush=True)
    tap = ProbeTap(log_dir / "functions.log")
    calls = TableCalls(scoped_sources=[PROCESS_APP_ID])
    children = Children(log_dir)
    errors: list[str] = []
    try:
        with common.embedded_aws(stack_name=STACK, time_scale=args.time_scale, tap=tap, calls=calls) as aws:
            aws.attach_handler_layers([JOBS_APP_LAYER])
            jobs_table = aws.settings.jobs_table
            print(f"  enqueue: {args.jobs} jobs, {args.repeat} rounds", flush=True)
            enqueue = measure_enqueue(aws, calls, jobs=args.jobs, repeat=args.repeat)
            bench = throughput.Bench(aws=aws, calls=calls, tap=tap, children=children, time_scale=args.time_scale)
            print(f"  throughput: {args.consumers} consumers each, starting and warming up", flush=True)
            runs, started = measure_throughput(
                bench, calls, consumers=args.consumers, jobs=args.jobs, repeat=args.repeat
            )
            latencies: dict[str, list[float]] = {}
            try:
                queues = {
                    c.scenario.fn.name: c.queue_url
                    for c in started.values()
                    if isinstance(c.scenario, JobsScenario) and not runs[c.scenario.name].error
                }
                print(f"  latency: {args.samples} jobs of each kind, one at a time", flush=True)
                latencies = measure_latency(aws, tap, queues, samples=args.samples, pause_s=args.pause)
            except Exception as exc:
                errors.append(f"latency: {type(exc).__name__}: {exc}")
            finally:
                stop_all(list(started.values()))
    finally:
        children.stop_all()
        tap.close()
    errors += [f"{s.name}: {s.error}" for s in (*enqueue.values(), *runs.values()) if s.error]
    print()
    print(
        f"{args.jobs} jobs per repetition, {args.repeat} rounds, {args.consumers} consumers each; rates: medians; "
        "ratios: medians of the rounds' paired ratios; requests counted at the server"
    )
    print(render(rows(enqueue, runs, latencies, jobs_table=jobs_table)))
    for error in errors:
        print(f"  error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
