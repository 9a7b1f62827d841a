"""Celery with its SQS transport (kombu) on the embedded AWS: the peer in the throughput benchmark.

The worker runs as `python -m celery -A bench.celery_app worker ...` with its settings in the environment:
BENCH_BROKER_URL (sqs://KEY:SECRET@127.0.0.1:PORT), BENCH_CELERY_QUEUE_URL and BENCH_CONCURRENCY.

Configured as a careful operator would for throughput, and for the same delivery guarantee as sqsloops:
- long polling (wait_time_seconds 20) with no client-side pause after an empty poll (polling_interval 0);
- a prefetch of at least 10, so that a receive may return a full batch of 10, as the other consumers' do;
- late acknowledgement (task_acks_late): a message is deleted after its task ran, not before;
- no result backend, no remote control, gossip, mingle or worker heartbeat (SQS has no broadcast anyway).
"""

from __future__ import annotations

import math
import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

QUEUE = "bench"
REGION = "us-east-1"


def make_app(*, broker_url: str, queue_url: str, concurrency: int) -> Celery:
    app = Celery("bench")
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options={
            "region": REGION,
            "is_secure": False,
            "wait_time_seconds": 20,
            "polling_interval": 0,
            "visibility_timeout": 60,
            "predefined_queues": {QUEUE: {"url": queue_url}},
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=max(1, math.ceil(10 / concurrency)),
        worker_concurrency=concurrency,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )

    @app.task(name="noop")  # type: ignore[untyped-decorator]
    def noop(payload: Any) -> None:
        """The no-op task."""

    return app


def _from_environment() -> Celery | None:
    broker_url = os.environ.get("BENCH_BROKER_URL")
    queue_url = os.environ.get("BENCH_CELERY_QUEUE_URL")
    if not broker_url or not queue_url:
        return None
    return make_app(
        broker_url=broker_url, queue_url=queue_url, concurrency=int(os.environ.get("BENCH_CONCURRENCY", "1"))
    )


app = _from_environment()
