"""Distributed training across nodes: the ps-lite job as one Spark barrier-mode stage (:func:`launch_spark`).

Each of the stage's N tasks starts a worker (and its servers) on its own node, task 0 also the
scheduler (:func:`barrier_task`). With an ``s3://`` ``--out`` the worker writes to a scratch folder
on the node: ``--resume`` downloads the checkpoints there first, and the task of ps-lite rank 0
uploads each checkpoint as it completes (:class:`CheckpointUploader`) and the bundle at the end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.model.distributed.argv import option_value, replace_option
from softlines_attr.model.distributed.launch import (
    Role,
    free_port,
    kill_roles,
    role_env,
    server_argv,
    start_role,
    supervise,
    worker_argv,
)
from softlines_attr.model.errors import DistributedLaunchError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SparkLaunch:
    """A ps-lite job run as one Spark barrier-mode stage (see :func:`launch_spark`).

    Attributes:
        num_workers: Barrier tasks = workers (one per GPU node under the ``emr_gpu`` profile).
        train_argv: The workers' command line (``train ... --kv-store dist_* --out OUT``).
        servers_per_worker: Parameter servers started beside each worker.
        timeout_s: Wall-clock limit of each task's roles (None: none).
        python: Interpreter for the roles on the nodes (default: the executor's own).
        extra_env: Variables added to every role's environment.
    """

    num_workers: int
    train_argv: tuple[str, ...]
    servers_per_worker: int = 1
    timeout_s: float | None = None
    python: str | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _scratch_dir() -> Path:
    """A task-private folder on the node's local disks (YARN's ``LOCAL_DIRS`` when set)."""
    base = (os.environ.get("LOCAL_DIRS") or "").split(",")[0] or None
    return Path(tempfile.mkdtemp(prefix="softlines-train-", dir=base))


def _download_checkpoints(out_uri: str, local_out: Path) -> int:
    """Copy ``<out_uri>/checkpoints/*`` into ``local_out/checkpoints`` (for ``--resume``); returns the file count."""
    from softlines_attr.io.storage import join_uri, storage_for

    storage = storage_for(out_uri)
    root = join_uri(out_uri, "checkpoints")
    files = storage.list_files(root)
    for rel in files:
        target = local_out / "checkpoints" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(join_uri(root, rel)))
    return len(files)


class CheckpointUploader:
    """Uploads each complete checkpoint of a local ``--out`` to ``out_uri`` as it appears (at most every ``every_s``).

    A checkpoint is complete when its ``.states`` file exists (train.py writes it last); the states
    file is uploaded last too, so a checkpoint under ``out_uri`` is complete when its states object
    exists, and ``--resume`` after a lost node continues from the last uploaded epoch.
    """

    def __init__(self, local_out: Path, out_uri: str, every_s: float = 30.0) -> None:
        self.local_out = local_out
        self.out_uri = out_uri
        self.every_s = every_s
        self.done: set[str] = set()
        self._last = 0.0

    def __call__(self, force: bool = False) -> int:
        """Upload the checkpoints completed since the last call; returns how many."""
        if not force and time.monotonic() - self._last < self.every_s:
            return 0
        self._last = time.monotonic()
        from softlines_attr.io.storage import join_uri, storage_for

        folder = self.local_out / "checkpoints"
        new = sorted(p for p in folder.glob("*.states") if p.name not in self.done) if folder.is_dir() else []
        if not new:
            return 0
        storage = storage_for(self.out_uri)
        for states in new:
            for path in (*sorted(folder.glob("*-symbol.json")), states.with_suffix(".params"), states):
                storage.upload_file(str(path), join_uri(self.out_uri, "checkpoints", path.name))
            self.done.add(states.name)
            log.info("uploaded checkpoint %s to %s", states.stem, self.out_uri)
        return len(new)


def _upload_bundle(local_out: Path, out_uri: str) -> int:
    """Upload ``local_out/bundle`` to ``out_uri/bundle`` (its manifest last); returns the file count."""
    from softlines_attr.io.storage import join_uri, storage_for

    storage = storage_for(out_uri)
    files = sorted(p for p in (local_out / "bundle").rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == "manifest.json")
    for path in files:
        storage.upload_file(str(path), join_uri(out_uri, path.relative_to(local_out).as_posix()))
    return len(files)


def barrier_task(spec: SparkLaunch, _rows: Iterator[Any]) -> Iterator[str]:
    """The body of one barrier task: this node's ps-lite roles (run inside a Spark executor).

    Task 0's host is the scheduler (``DMLC_PS_ROOT_URI``); task 0 picks a free port and every task
    learns it through ``allGather`` (hosts are resolved to IPv4 addresses for ps-lite). Each task
    starts ``servers_per_worker`` servers and one worker on its own host, the worker on the task's
    GPU (``TaskContext.resources()['gpu']``, added as ``--gpus`` unless the command line names GPUs).
    With an ``s3://`` ``--out`` the worker writes to a local scratch folder, ``--resume`` first
    downloads ``<out>/checkpoints`` there on every node, the task whose worker is ps-lite rank 0 (the
    one writing checkpoints) uploads each checkpoint as it completes (:class:`CheckpointUploader`),
    and the bundle at the end.

    Yields:
        One JSON line: partition, host, role exit codes, the worker's last stdout line, uploaded files.

    Raises:
        DistributedLaunchError: a role failed or timed out (Spark then fails the whole barrier stage).
    """
    from pyspark import BarrierTaskContext

    from softlines_attr.io.storage import is_s3

    ctx = BarrierTaskContext.get()
    part = ctx.partitionId()
    infos = ctx.getTaskInfos()
    hosts = [_ip(info.address.rsplit(":", 1)[0]) for info in infos]
    host, root = hosts[part], hosts[0]
    port = int(ctx.allGather(str(free_port("0.0.0.0") if part == 0 else 0))[0])
    num_servers = spec.num_workers * spec.servers_per_worker
    python = spec.python or sys.executable
    argv = list(spec.train_argv)
    resources = ctx.resources()
    if "gpu" in resources and option_value(argv, "--gpus") is None:
        argv += ["--gpus", ",".join(resources["gpu"].addresses)]
    scratch = _scratch_dir()
    out_uri = option_value(argv, "--out") or ""
    local_out = scratch / "out" if is_s3(out_uri) else None
    if local_out is not None:
        argv = replace_option(argv, "--out", str(local_out))
        if "--resume" in argv:
            log.info(
                "task %d: %d checkpoint files downloaded from %s",
                part,
                _download_checkpoints(out_uri, local_out),
                out_uri,
            )
    extra = dict(spec.extra_env)
    logs = scratch / "logs"
    roles: list[Role] = []
    try:
        if part == 0:
            roles.append(
                start_role(
                    "scheduler",
                    server_argv(python),
                    {**extra, **role_env("scheduler", root, port, spec.num_workers, num_servers, root)},
                    logs,
                )
            )
        for i in range(spec.servers_per_worker):
            roles.append(
                start_role(
                    f"server {part}.{i}",
                    server_argv(python),
                    {**extra, **role_env("server", root, port, spec.num_workers, num_servers, host)},
                    logs,
                )
            )
        roles.append(
            start_role(
                f"worker {part}",
                worker_argv(argv, python),
                {**extra, **role_env("worker", root, port, spec.num_workers, num_servers, host)},
                logs,
            )
        )
        uploader = None
        if local_out is not None:
            uploader = CheckpointUploader(local_out, out_uri)
            uploader.done.update(
                p.name for p in (local_out / "checkpoints").glob("*.states")
            )  # downloaded for --resume
        codes = supervise(roles, timeout_s=spec.timeout_s, on_poll=uploader)
    except DistributedLaunchError as exc:
        raise DistributedLaunchError(f"barrier task {part} on {host}: {exc}") from exc
    finally:
        kill_roles(roles)
    stdout = roles[-1].stdout.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    uploaded = 0
    if uploader is not None and (local_out / "bundle" / "manifest.json").is_file():
        uploaded = uploader(force=True) + _upload_bundle(local_out, out_uri)
    if local_out is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    yield json.dumps(
        {
            "partition": part,
            "host": host,
            "exit_codes": codes,
            "stdout": stdout[-1] if stdout else "",
            "uploaded": uploaded,
        }
    )


def launch_spark(spark: SparkSession, spec: SparkLaunch) -> list[dict]:
    """Run the ps-lite job as one barrier stage of ``spec.num_workers`` tasks; returns each task's report.

    Raises:
        DistributedLaunchError: bad counts, dynamic allocation on (Spark refuses barrier stages then),
            or the stage failed (the first task error's message).
    """
    if spec.num_workers < 1 or spec.servers_per_worker < 1:
        raise DistributedLaunchError(
            "expected at least 1 worker and 1 server per worker, "
            f"found {spec.num_workers} and {spec.servers_per_worker}"
        )
    if spark.sparkContext.getConf().get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        raise DistributedLaunchError(
            "a barrier stage cannot run with dynamic allocation: "
            "expected spark.dynamicAllocation.enabled=false, found true (EMR's default); "
            f"submit with --conf spark.dynamicAllocation.enabled=false --num-executors {spec.num_workers}"
        )
    rdd = spark.sparkContext.parallelize(range(spec.num_workers), spec.num_workers)
    task: Callable[[Iterator[Any]], Iterator[str]] = partial(barrier_task, spec)
    try:
        reports = rdd.barrier().mapPartitions(task).collect()
    except Exception as exc:  # noqa: BLE001 - Py4J / Spark wrap the task's error; keep its text
        raise DistributedLaunchError(
            f"the training barrier stage of {spec.num_workers} tasks failed: {_short(str(exc))}"
        ) from exc
    return [json.loads(r) for r in reports]


def _ip(host: str) -> str:
    """``host`` as an IPv4 address (ps-lite advertises and connects to addresses), or as given if unresolved."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _short(text: str, limit: int = 4000) -> str:
    """Spark's error text, trimmed to the task's own message where it can be found."""
    marker = "DistributedLaunchError:"
    if marker in text:
        text = text[text.index(marker) :]
    return text[:limit]
