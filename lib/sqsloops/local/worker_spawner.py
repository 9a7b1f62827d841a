"""Starting a warm worker for a moto Lambda function: its code and layers unpacked, Lambda's environment set.

Zips are unpacked once per content digest under one temporary directory, shared by every worker of the same
code. The spawner keeps every live worker so that stopping can kill the busy ones too.

A worker sees what a Lambda execution environment has and nothing else: the function's code, its layers, the
standard library, and the runtime's SDK (LAMBDA_RUNTIME_DISTRIBUTIONS: boto3 and its dependencies), laid out once
in a `runtime/` directory of links into this virtualenv. Never the virtualenv's other packages: a function zip
or layer missing a dependency fails here with Runtime.ImportModuleError, as it would on AWS.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Any

from moto.awslambda.utils import get_backend

from sqsloops.local.distributions import LAMBDA_RUNTIME_DISTRIBUTIONS, closure, top_level_entries
from sqsloops.local.worker_client import Echo, Worker

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class WorkerSpawner:
    """Starts, tracks and discards the workers of every function; owns the unpacked code."""

    def __init__(self, *, endpoint_url: str, echo: Echo, stopped: threading.Event) -> None:
        self.endpoint_url = endpoint_url
        self._echo = echo
        self._stopped = stopped
        self._root = Path(tempfile.mkdtemp(prefix="sqsloops-lambda-"))
        self._lock = threading.Lock()
        self._workers: set[Worker] = set()
        self._extracted: dict[str, Path] = {}
        self._runtime_dir: Path | None = None

    def spawn(self, fn: Any) -> Worker:
        """A new worker running `fn`'s handler; its init runs while the caller goes on."""
        if self._stopped.is_set():
            raise RuntimeError("the executor is stopped")
        code_dir = self._extract(fn.code_bytes, "code")
        paths = [str(code_dir)]
        backend = get_backend(fn.account_id, fn.region)
        for layer in fn.layers:
            layer_version = backend.layers_versions_by_arn(layer["Arn"])
            if layer_version is None:
                raise ValueError(f"layer version not found: {layer['Arn']}")
            layer_dir = self._extract(layer_version.code_bytes, "layers")
            paths += [str(layer_dir / "python" / "lib" / "python3.11" / "site-packages"), str(layer_dir / "python")]
        paths.append(str(self._runtime()))  # as /var/runtime comes after /var/task and /opt in Lambda
        config = {"handler": fn.handler, "paths": paths}
        worker = Worker(
            config=config,
            env=self._environment(fn, code_dir),
            cwd=str(code_dir),
            fingerprint=fingerprint(fn),
            label=f"[{fn.function_name}]",
            echo=self._echo,
        )
        with self._lock:
            self._workers.add(worker)
        return worker

    def discard(self, worker: Worker) -> None:
        worker.close()
        with self._lock:
            self._workers.discard(worker)

    def stop(self, idle: set[Worker]) -> None:
        """Close the idle workers, kill the busy ones: the thread waiting on a busy one sees it gone, closes it."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            if worker in idle:
                worker.close()
            else:
                worker.kill()

    def remove_files(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def _runtime(self) -> Path:
        """The Lambda runtime's packages, as links into this virtualenv: made on first use, shared by all workers."""
        with self._lock:
            if self._runtime_dir is None:
                self._runtime_dir = make_runtime_dir(self._root / "runtime")
            return self._runtime_dir

    def _extract(self, zipped: bytes, kind: str) -> Path:
        if not zipped:
            raise ValueError("the function has no code (moto stored no zip for it)")
        digest = hashlib.sha256(zipped).hexdigest()[:16]
        with self._lock:
            known = self._extracted.get(digest)
            if known is not None:
                return known
            target = self._root / kind / digest
            with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
                archive.extractall(target)
            self._extracted[digest] = target
            return target

    def _environment(self, fn: Any, code_dir: Path) -> dict[str, str]:
        """What Lambda sets, the function's variables, and the embedded endpoint; nothing of the parent's AWS setup."""
        today = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            **{key: _env_string(value) for key, value in (fn.environment_vars or {}).items()},
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time or 'python3.11'}",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": str(fn.handler),
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **FAKE_CREDENTIALS,
        }
        return env


def make_runtime_dir(target: Path) -> Path:
    """`target` holding exactly the Lambda runtime's distributions (packages, modules, .dist-info) as symlinks."""
    target.mkdir(parents=True, exist_ok=True)
    for dist in closure(LAMBDA_RUNTIME_DISTRIBUTIONS, where="the Lambda runtime"):
        for name, path in top_level_entries(dist).items():
            link = target / name
            if not link.exists():
                link.symlink_to(path, target_is_directory=path.is_dir())
    return target


def fingerprint(fn: Any) -> str:
    """Changes when the function's code, layers, handler or environment do: its workers must then be replaced."""
    parts = [
        fn.code_sha_256,
        [layer["Arn"] for layer in fn.layers],
        fn.handler,
        sorted((key, _env_string(value)) for key, value in (fn.environment_vars or {}).items()),
        str(fn.memory_size),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
