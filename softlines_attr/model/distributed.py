"""Distributed training with MXNet's parameter server (ps-lite): kvstores, parts, and launching the roles.

Two halves:

* **Inside a worker** (used by :func:`softlines_attr.model.train.train`): :func:`open_kvstore` creates
  the ``dist_sync`` / ``dist_device_sync`` kvstore (or nothing for ``local`` / ``device``) and tells
  the worker its rank and the number of workers; :func:`fixed_batches` makes every worker run the
  same number of batches per epoch (cycling a part that runs short: unequal counts hang
  ``dist_sync``); :func:`broadcast_from_chief` and :func:`average_aux` keep the workers' parameters
  identical (the kvstore only synchronises gradients; BatchNorm's moving statistics are averaged at
  the end of every epoch); :func:`optimizer_on_workers` keeps the optimizer (and so its states, which
  checkpoints save) on the workers rather than on the servers.
* **Launching** without ``mxnet.tools.launch`` (whose ``dmlc_tracker`` calls ``Thread.isAlive``,
  gone since Python 3.9): every ps-lite role is a process given ``DMLC_ROLE`` (scheduler, server,
  worker), ``DMLC_PS_ROOT_URI`` / ``DMLC_PS_ROOT_PORT`` (the scheduler's address),
  ``DMLC_NUM_SERVER`` and ``DMLC_NUM_WORKER``. A scheduler or server is ``python -c "import mxnet"``
  (``mxnet/kvstore/kvstore_server.py`` runs the role on import and exits when the workers finish); a
  worker is ``python -m softlines_attr.cli train ... --kv-store dist_sync``.
  :func:`launch_local` starts them all on loopback (one machine); :func:`launch_spark` runs one
  Spark barrier-mode stage whose N tasks each start a worker (and servers) on their own node, task
  0 also the scheduler. :func:`supervise` watches the roles: the first one to fail (non-zero exit)
  ends the launch, kills the others and raises :class:`DistributedLaunchError` naming the role with
  the tail of its stderr; a timeout does the same.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.model.errors import DistributedLaunchError, TrainInputError

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOCAL_KV_STORES = ("local", "device")
DIST_KV_STORES = ("dist_sync", "dist_device_sync")
KV_STORES = LOCAL_KV_STORES + DIST_KV_STORES
DMLC_ENV = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")
# train command options that belong to the launcher, not to the workers it starts
LAUNCH_OPTIONS = ("launch", "num_workers", "num_servers", "launch_timeout", "launch_logs", "master", "spark_profile")
STDERR_TAIL_LINES = 25


# ----------------------------------------------------------------------------------------------
# inside a worker
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workers:
    """Where this training process stands among the workers.

    Attributes:
        kind: The kvstore type (``local``, ``device``, ``dist_sync``, ``dist_device_sync``).
        kv: The distributed kvstore, or None for the single-process kinds.
        rank: This worker's rank (0 for a single process).
        num_workers: Workers in the run (1 for a single process).
    """

    kind: str
    kv: Any = None
    rank: int = 0
    num_workers: int = 1

    @property
    def dist(self) -> bool:
        """True for a ps-lite run (``dist_*``)."""
        return self.kv is not None

    @property
    def chief(self) -> bool:
        """True on the worker that writes checkpoints and the bundle (rank 0)."""
        return self.rank == 0

    def module_kvstore(self) -> Any:
        """What ``Module.init_optimizer(kvstore=...)`` takes: the kvstore object, or its type name."""
        return self.kv if self.kv is not None else self.kind


def open_kvstore(kind: str) -> Workers:
    """Create the kvstore of ``kind``; for ``dist_*`` this joins the ps-lite job (blocks until all roles registered).

    Args:
        kind: One of :data:`KV_STORES`.

    Returns:
        The worker's rank and the number of workers (rank 0 of 1 for ``local`` / ``device``).

    Raises:
        TrainInputError: an unknown kind.
        DistributedLaunchError: a ``dist_*`` kind in a process that was not started as a ps-lite
            worker (without ``DMLC_ROLE=worker`` and the other ``DMLC_*`` variables MXNet would wait
            for a scheduler forever).
    """
    if kind not in KV_STORES:
        raise TrainInputError(f"expected a kv store among {list(KV_STORES)}, found {kind!r}")
    if kind in LOCAL_KV_STORES:
        return Workers(kind)
    missing = [name for name in DMLC_ENV if not os.environ.get(name)]
    if missing or os.environ.get("DMLC_ROLE") != "worker":
        raise DistributedLaunchError(
            f"--kv-store {kind} runs inside a ps-lite job: expected DMLC_ROLE=worker and {', '.join(DMLC_ENV[1:])} in the "
            f"environment, found DMLC_ROLE={os.environ.get('DMLC_ROLE')!r}, missing {missing}; start it with "
            "`softlines-attr train --launch local|spark --num-workers N ...`"
        )
    import mxnet as mx

    kv = mx.kv.create(kind)
    log.info("joined %s as worker %d of %d (%s servers, scheduler %s:%s)", kind, kv.rank, kv.num_workers,
             os.environ["DMLC_NUM_SERVER"], os.environ["DMLC_PS_ROOT_URI"], os.environ["DMLC_PS_ROOT_PORT"])
    return Workers(kind, kv, int(kv.rank), int(kv.num_workers))


@contextlib.contextmanager
def optimizer_on_workers(workers: Workers) -> Iterator[None]:
    """Around ``Module.init_optimizer``: keep the optimizer on the workers in a dist run.

    MXNet's default for ``dist_*`` (``update_on_kvstore``) pickles the optimizer to the servers and
    updates the weights there: the SGD momentum then lives on the servers (checkpoints cannot save
    it) and ``set_lr_mult`` after ``init_optimizer`` never reaches them. With
    ``MXNET_UPDATE_ON_KVSTORE=0`` (read by ``mxnet.model._create_kvstore``) the servers only sum the
    workers' gradients; every worker applies the same update to the same weights with the same
    optimizer state, which stays local, saveable and restorable.
    """
    if not workers.dist:
        yield
        return
    before = os.environ.get("MXNET_UPDATE_ON_KVSTORE")
    os.environ["MXNET_UPDATE_ON_KVSTORE"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MXNET_UPDATE_ON_KVSTORE", None)
        else:
            os.environ["MXNET_UPDATE_ON_KVSTORE"] = before


def broadcast_from_chief(workers: Workers, arrays: Mapping[str, mx.nd.NDArray], prefix: str) -> dict[str, mx.nd.NDArray]:
    """Rank 0's values of ``arrays`` on every worker (a no-op copy outside a dist run).

    ``kv.init`` stores rank 0's value of each new key ``prefix + name`` on the servers (the others'
    are ignored, and all wait on a barrier); the pull brings it to everyone. Each key can be
    initialised once per run: use a fresh prefix for each broadcast.

    Args:
        workers: From :func:`open_kvstore`.
        arrays: name -> NDArray (same names and shapes on every worker).
        prefix: Key prefix unique to this broadcast.

    Returns:
        name -> rank 0's array (new arrays; ``arrays`` is left as it was).
    """
    import mxnet as mx

    names = sorted(arrays)
    if not workers.dist or not names:
        return {n: arrays[n].copy() for n in names}
    keys = [prefix + n for n in names]
    workers.kv.init(keys, [arrays[n].copy() for n in names])
    outs = [mx.nd.zeros(arrays[n].shape, dtype=arrays[n].dtype) for n in names]
    workers.kv.pull(keys, out=outs)
    return dict(zip(names, outs))


def agree(workers: Workers, key: str, value: int) -> int:
    """Rank 0's ``value``; raises on a worker whose own value differs (e.g. the checkpoint epoch to resume from).

    Raises:
        DistributedLaunchError: this worker's value is not rank 0's.
    """
    import mxnet as mx

    chief = int(broadcast_from_chief(workers, {key: mx.nd.array([value], dtype="float64")}, "agree:")[key].asnumpy()[0])
    if chief != value:
        raise DistributedLaunchError(f"worker {workers.rank}: expected {key} = {chief} as on worker 0, found {value}")
    return chief


def sync_module_params(workers: Workers, mod: mx.mod.Module) -> None:
    """Give every worker rank 0's arg and aux params (after ``init_optimizer``, before training).

    The aux (BatchNorm moving statistics) keys ``aux:<name>`` stay on the servers for :func:`average_aux`.
    """
    if not workers.dist:
        return
    arg, aux = mod.get_params()
    mod.set_params(broadcast_from_chief(workers, arg, "start:arg:"), broadcast_from_chief(workers, aux, "aux:"))


def average_aux(workers: Workers, mod: mx.mod.Module) -> None:
    """Average the aux params (BatchNorm moving mean/variance) over the workers, in place.

    The kvstore synchronises gradients only, so each worker's moving statistics follow its own part
    of the data; averaging them at every epoch end (before the checkpoint) leaves all workers with
    identical parameters. Needs :func:`sync_module_params` first (it creates the ``aux:`` keys).
    """
    if not workers.dist:
        return
    import mxnet as mx

    arg, aux = mod.get_params()
    names = sorted(aux)
    if not names:
        return
    keys = ["aux:" + n for n in names]
    # push copies and pull into fresh arrays: on CPU, KVStoreDist sends and receives through one buffer
    workers.kv.push(keys, [aux[n].copy() for n in names])
    outs = [mx.nd.zeros(aux[n].shape, dtype=aux[n].dtype) for n in names]
    workers.kv.pull(keys, out=outs)
    mod.set_params(arg, {n: out / workers.num_workers for n, out in zip(names, outs)})


def fixed_batches(it: mx.io.DataIter, count: int, seen: list[list] | None = None) -> Iterator[mx.io.DataBatch]:
    """Exactly ``count`` batches of ``it``, resetting it (another pass over the part) when it runs out.

    Every ``dist_sync`` worker must push the same number of gradients per epoch, or the ones with
    more batches wait forever for the others; a worker whose part of the shards is shorter reads it
    again (with ``round_batch`` the last batch of a pass is filled from the part's start).

    Args:
        it: A fresh (or reset) iterator over this worker's part.
        count: Batches to yield.
        seen: When given, the label ids of every yielded batch (see :func:`label_ids`) are appended
            (the ``--worker-dump`` debug record).

    Raises:
        TrainInputError: the iterator yields no batch at all (an empty part).
    """
    produced = 0
    while produced < count:
        got = False
        for batch in it:
            got = True
            if seen is not None:
                seen.append(label_ids(batch.label[0].asnumpy()))
            yield batch
            produced += 1
            if produced >= count:
                return
        if not got:
            raise TrainInputError(f"expected {count} batches from this worker's part of the train split, found an empty part")
        it.reset()


RECORDIO_MAGIC = 0xCED7230A


def record_offsets(rec: Path) -> list[int]:
    """Byte offsets of the records of a ``.rec`` file: from its ``.idx`` (``key\\toffset`` lines) when
    present, else by walking the RecordIO headers (magic, length with continuation flag)."""
    import struct

    idx = rec.with_suffix(".idx")
    if idx.is_file():
        with open(idx, encoding="ascii") as fh:
            return sorted(int(line.split("\t")[1]) for line in fh if line.strip())
    offsets: list[int] = []
    with open(rec, "rb") as fh:
        pos = 0
        while True:
            header = fh.read(8)
            if len(header) < 8:
                return offsets
            magic, lrec = struct.unpack("<II", header)
            if magic != RECORDIO_MAGIC:
                raise TrainInputError(f"{rec}: expected a RecordIO header at byte {pos}, found magic {magic:#x}")
            if lrec >> 29 in (0, 1):  # a whole record or the first part of a split one
                offsets.append(pos)
            length = lrec & ((1 << 29) - 1)
            pos += 8 + ((length + 3) // 4) * 4
            fh.seek(pos)


def part_record_counts(paths: Sequence[Path], num_parts: int) -> list[int]:
    """Records in each part when ``ImageRecordIter`` splits ``paths`` (``;``-joined) into ``num_parts``.

    The same arithmetic as dmlc-core's ``InputSplitBase::ResetPartition``: the files are one byte
    stream, part k starts at the first record at or after ``k * step`` (``step`` = ceil(total bytes
    / parts) rounded up to 4 bytes), so a record belongs to part ``start // step``.
    """
    sizes = [Path(p).stat().st_size for p in paths]
    total = sum(sizes)
    counts = [0] * num_parts
    if total == 0:
        return counts
    step = -(-total // num_parts)
    step = -(-step // 4) * 4
    base = 0
    for path, size in zip(paths, sizes):
        for offset in record_offsets(Path(path)):
            counts[min((base + offset) // step, num_parts - 1)] += 1
        base += size
    return counts


def check_train_parts(paths: Sequence[Path], records: int, workers: Workers, batch_size: int) -> None:
    """Refuse a dist run where some worker's part of the train split holds fewer records than one batch.

    ``ImageRecordIter`` (with ``round_batch``) fails on such a part; checked exactly (from the
    ``.idx`` files) only when the split is small enough for it to happen, so big runs skip the reading.

    Raises:
        TrainInputError: a part smaller than the batch size (every worker raises the same).
    """
    if not workers.dist or records >= 4 * workers.num_workers * batch_size:
        return
    counts = part_record_counts(paths, workers.num_workers)
    if min(counts) < batch_size:
        raise TrainInputError(
            f"expected every worker's part of the train split to hold at least one batch ({batch_size} records), "
            f"found parts of {counts} records; use a smaller --batch-size or fewer workers"
        )


def trimmed_tail(inner: mx.io.DataIter, records: int) -> mx.io.DataIter:
    """``inner`` (an ``ImageRecordIter`` without ``round_batch``) with its short last batch marked properly.

    Without ``round_batch`` MXNet 1.9.1 fills the rows after the part's last record with garbage and
    still reports ``pad = 0``. Knowing the part's record count, this sets ``pad`` on the batch that
    passes it and copies row 0's labels into the padded rows (so label mapping never sees garbage);
    consumers drop ``pad`` rows as usual.
    """
    import mxnet as mx

    class _Trimmed(mx.io.DataIter):
        def __init__(self) -> None:
            super().__init__(inner.batch_size)
            self._seen = 0

        @property
        def provide_data(self) -> list:
            return inner.provide_data

        @property
        def provide_label(self) -> list:
            return inner.provide_label

        def reset(self) -> None:
            inner.reset()
            self._seen = 0

        def next(self) -> mx.io.DataBatch:
            if self._seen >= records:
                raise StopIteration
            batch = inner.next()
            n = batch.data[0].shape[0]
            valid = min(n, records - self._seen)
            self._seen += n
            if valid == n:
                return batch
            labels = []
            for label in batch.label:
                fixed = label.asnumpy().copy()
                fixed[valid:] = fixed[0]
                labels.append(mx.nd.array(fixed, dtype=label.dtype))
            return mx.io.DataBatch(data=batch.data, label=labels, pad=n - valid, index=batch.index,
                                   provide_data=self.provide_data, provide_label=self.provide_label)

    return _Trimmed()


def label_ids(labels: Any) -> list:
    """A batch's labels as plain ids: class per row (one label) or the positive classes per row (multi-hot)."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.ndim == 1:
        return [int(v) for v in labels]
    return [[int(c) for c in np.flatnonzero(row > 0)] for row in labels]


def write_worker_dump(
    dump_dir: str | Path,
    workers: Workers,
    mod: mx.mod.Module,
    *,
    batches_per_epoch: int,
    train_seen: Sequence[Sequence[list]],
    val_iter: mx.io.DataIter | None,
    metrics: Mapping[str, float],
) -> Path:
    """Debug record of one worker (``--worker-dump DIR``, for tests): its final params and what it read.

    Writes ``worker-<rank>.params`` (``mx.nd.save`` of ``arg:``/``aux:`` params, no pickle) and
    ``worker-<rank>.json``: rank, number of workers, batches per epoch, the label ids of every train
    batch per epoch, the label ids of its val part (padding removed), and its val metrics.

    Returns:
        The JSON file's path.
    """
    import mxnet as mx

    out = Path(dump_dir)
    out.mkdir(parents=True, exist_ok=True)
    arg, aux = mod.get_params()
    mx.nd.save(str(out / f"worker-{workers.rank}.params"), {**{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}})
    val_ids: list = []
    if val_iter is not None:
        val_iter.reset()
        for batch in val_iter:
            n = batch.data[0].shape[0] - (batch.pad or 0)
            val_ids.extend(label_ids(batch.label[0].asnumpy()[:n]))
    record = {
        "rank": workers.rank,
        "num_workers": workers.num_workers,
        "kv_store": workers.kind,
        "batches_per_epoch": batches_per_epoch,
        "train_batches": [list(epoch) for epoch in train_seen],
        "val_ids": val_ids,
        "metrics": dict(metrics),
    }
    path = out / f"worker-{workers.rank}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# launching the roles
# ----------------------------------------------------------------------------------------------


@dataclass
class Role:
    """One started ps-lite process.

    Attributes:
        name: ``scheduler``, ``server <i>`` or ``worker <i>`` (the launch order, not the ps-lite rank).
        proc: The process.
        stdout: File holding its standard output.
        stderr: File holding its standard error.
    """

    name: str
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    @property
    def worker(self) -> bool:
        """True for a worker (the roles whose exit ends the run)."""
        return self.name.startswith("worker")

    def tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """The last ``lines`` lines of its stderr."""
        try:
            text = self.stderr.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no stderr file)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class LaunchResult:
    """What a finished launch left: each role's exit code and each worker's standard output.

    Attributes:
        exit_codes: role name -> exit code.
        worker_stdout: worker name -> its whole standard output.
        log_dir: Folder with every role's ``<role>.stdout`` / ``<role>.stderr``.
    """

    exit_codes: dict[str, int]
    worker_stdout: dict[str, str]
    log_dir: Path

    def chief_output(self) -> dict | None:
        """The JSON line printed by the worker that wrote the bundle (``"bundle"`` not null), if any."""
        for text in self.worker_stdout.values():
            for line in reversed(text.strip().splitlines()):
                try:
                    printed = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(printed, dict) and printed.get("bundle"):
                    return printed
        return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the scheduler's ``DMLC_PS_ROOT_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def role_env(role: str, root_uri: str, root_port: int, num_workers: int, num_servers: int, node_host: str | None = None) -> dict[str, str]:
    """The ``DMLC_*`` variables of one ps-lite role.

    Args:
        role: ``scheduler``, ``server`` or ``worker``.
        root_uri: The scheduler's host (IP or name every node can reach).
        root_port: The scheduler's port.
        num_workers: Workers in the job.
        num_servers: Servers in the job.
        node_host: The address this process advertises to the others (``DMLC_NODE_HOST``); None: ps-lite picks.
    """
    env = {
        "DMLC_ROLE": role,
        "DMLC_PS_ROOT_URI": root_uri,
        "DMLC_PS_ROOT_PORT": str(root_port),
        "DMLC_NUM_WORKER": str(num_workers),
        "DMLC_NUM_SERVER": str(num_servers),
    }
    if node_host:
        env["DMLC_NODE_HOST"] = node_host
    return env


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies (no orphaned roles), or None off Linux.

    libc is loaded here, in the parent: the hook itself, run between fork and exec, only calls prctl.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

    return hook


def start_role(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Role:
    """Start one role with ``env`` laid over this process's environment; stdout/stderr to ``log_dir/<name>.*``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "-")
    out, err = log_dir / f"{slug}.stdout", log_dir / f"{slug}.stderr"
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen(
            list(argv), env={**os.environ, **env}, stdout=fout, stderr=ferr, stdin=subprocess.DEVNULL,
            preexec_fn=_pdeathsig_hook(),
        )
    log.info("started %s (pid %d): %s", name, proc.pid, " ".join(argv[:4]) + (" ..." if len(argv) > 4 else ""))
    return Role(name, proc, out, err)


def kill_roles(roles: Sequence[Role], grace_s: float = 5.0) -> None:
    """Terminate every still-running role (SIGTERM, then SIGKILL after ``grace_s``)."""
    running = [r for r in roles if r.proc.poll() is None]
    for r in running:
        with contextlib.suppress(ProcessLookupError):
            r.proc.terminate()
    deadline = time.monotonic() + grace_s
    for r in running:
        try:
            r.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                r.proc.kill()
            r.proc.wait()


def supervise(
    roles: Sequence[Role],
    *,
    timeout_s: float | None = None,
    shutdown_s: float = 60.0,
    poll_s: float = 0.2,
    on_poll: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Wait for the workers to finish, then for the scheduler and servers to exit on their own.

    Args:
        roles: Every started role.
        timeout_s: Wall-clock limit for the whole run (None: none).
        shutdown_s: How long the scheduler and servers get to exit after the last worker (they stop
            when the workers leave); past it they are killed, with a warning (the run succeeded).
        poll_s: Polling interval.
        on_poll: Called at every poll while the workers run (e.g. uploading new checkpoints).

    Returns:
        role name -> exit code.

    Raises:
        DistributedLaunchError: a role exited non-zero (the others are killed; the message names
            the role, its exit code and the tail of its stderr), or the timeout passed.
    """
    started = time.monotonic()
    try:
        while True:
            failed = [r for r in roles if r.proc.poll() not in (None, 0)]
            if failed:
                first = failed[0]
                kill_roles(roles)
                raise DistributedLaunchError(
                    f"{first.name} failed: expected exit code 0, found {first.proc.returncode}; the other roles were stopped. "
                    f"Last lines of its stderr ({first.stderr}):\n{first.tail()}"
                )
            if all(r.proc.poll() == 0 for r in roles if r.worker):
                break
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                running = [r for r in roles if r.proc.poll() is None]
                kill_roles(roles)
                tails = "\n".join(f"--- {r.name} ({r.stderr}):\n{r.tail(10)}" for r in running)
                raise DistributedLaunchError(
                    f"distributed training timed out: expected the workers to finish within {timeout_s:.0f} s, found "
                    f"{', '.join(r.name for r in running)} still running (stopped). Last lines of their stderr:\n{tails}"
                )
            if on_poll is not None:
                on_poll()
            time.sleep(poll_s)
    except BaseException:
        kill_roles(roles)
        raise
    deadline = time.monotonic() + shutdown_s
    for r in roles:
        try:
            r.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s still running %.0f s after the workers finished; stopping it", r.name, shutdown_s)
            kill_roles([r])
    return {r.name: int(r.proc.returncode) for r in roles}


def split_gpus(gpus: Sequence[int], num_workers: int) -> list[str] | None:
    """The machine's GPUs dealt to the local workers: worker i gets the i-th consecutive group (``--gpus`` values).

    Returns:
        None for no GPUs (CPU workers).

    Raises:
        DistributedLaunchError: the GPUs cannot be split evenly.
    """
    if not gpus:
        return None
    if len(gpus) % num_workers:
        raise DistributedLaunchError(f"expected a number of --gpus divisible by --num-workers {num_workers}, found {len(gpus)} ({list(gpus)})")
    k = len(gpus) // num_workers
    return [",".join(str(g) for g in gpus[i * k:(i + 1) * k]) for i in range(num_workers)]


def server_argv(python: str = sys.executable) -> list[str]:
    """A scheduler or server: importing mxnet with ``DMLC_ROLE`` set runs the role (kvstore_server.py) and exits after."""
    return [python, "-c", "import mxnet"]


def worker_argv(train_argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """A worker: the train command (``train_argv`` starts with ``train``) in a fresh interpreter."""
    return [python, "-m", "softlines_attr.cli", *train_argv]


def launch_local(
    num_workers: int,
    num_servers: int,
    train_argv: Sequence[str],
    *,
    timeout_s: float | None = None,
    log_dir: str | Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    worker_gpus: Sequence[str] | None = None,
) -> LaunchResult:
    """Run a ``dist_*`` training on this machine: scheduler, servers and workers as processes on loopback.

    Args:
        num_workers: Workers (each reads its part of the shards).
        num_servers: Parameter servers.
        train_argv: The workers' command line, starting with ``train`` and holding ``--kv-store dist_*``.
        timeout_s: Wall-clock limit (None: none).
        log_dir: Where every role's stdout/stderr go (default: a new temporary folder).
        extra_env: Variables added to every role's environment (e.g. ``OMP_NUM_THREADS``).
        python: The interpreter for the roles.
        worker_gpus: Per worker, its ``--gpus`` value (see :func:`split_gpus`); None: the command line's for all.

    Returns:
        Exit codes, the workers' standard output and the log folder.

    Raises:
        DistributedLaunchError: bad counts, a role failed, or the timeout passed.
    """
    if num_workers < 1 or num_servers < 1:
        raise DistributedLaunchError(f"expected at least 1 worker and 1 server, found {num_workers} workers and {num_servers} servers")
    if worker_gpus is not None and len(worker_gpus) != num_workers:
        raise DistributedLaunchError(f"expected a --gpus value per worker ({num_workers}), found {len(worker_gpus)}")
    if not train_argv or train_argv[0] != "train" or not any(a in DIST_KV_STORES for a in train_argv):
        raise DistributedLaunchError(f"expected a worker command line 'train ... --kv-store dist_sync|dist_device_sync', found {list(train_argv)[:6]}")
    logs = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="softlines-dist-"))
    port = free_port("127.0.0.1")
    extra = dict(extra_env or {})
    roles: list[Role] = []
    try:
        roles.append(start_role("scheduler", server_argv(python), {**extra, **role_env("scheduler", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")}, logs))
        for i in range(num_servers):
            roles.append(start_role(f"server {i}", server_argv(python), {**extra, **role_env("server", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")}, logs))
        for i in range(num_workers):
            argv = replace_option(train_argv, "--gpus", worker_gpus[i]) if worker_gpus is not None else list(train_argv)
            roles.append(start_role(f"worker {i}", worker_argv(argv, python), {**extra, **role_env("worker", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")}, logs))
    except BaseException:
        kill_roles(roles)
        raise
    log.info("local ps-lite job: scheduler 127.0.0.1:%d, %d servers, %d workers; logs in %s", port, num_servers, num_workers, logs)
    codes = supervise(roles, timeout_s=timeout_s)
    outputs = {r.name: r.stdout.read_text(encoding="utf-8", errors="replace") for r in roles if r.worker}
    return LaunchResult(codes, outputs, logs)


# ----------------------------------------------------------------------------------------------
# the worker command line from the launcher's parsed arguments
# ----------------------------------------------------------------------------------------------


def argv_from_namespace(parser: argparse.ArgumentParser, args: argparse.Namespace, drop: Sequence[str] = LAUNCH_OPTIONS) -> list[str]:
    """Turn parsed options back into a command line for ``parser`` (options left at their default are omitted).

    Values are written back as the parser reads them: flags for ``store_true``/``store_false``,
    tuples and lists joined with commas (the train command's integer lists), everything else with
    ``str``. ``tests/test_model_distributed.py`` checks that parsing the result gives the same
    namespace, so an option added later that does not round-trip fails there.

    Args:
        parser: The (sub)command's parser.
        args: Its parsed arguments.
        drop: Destinations to leave out (the launcher's own options).
    """
    argv: list[str] = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
        if not action.option_strings or action.dest in drop or action.dest == "help" or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
            argv.append(flag)
        elif isinstance(value, (tuple, list)):
            argv += [flag, ",".join(str(v) for v in value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def replace_option(argv: Sequence[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option``'s value set to ``value`` (appended when absent; ``--opt=v`` form handled)."""
    out: list[str] = []
    found = False
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == option and i + 1 < len(argv):
            out += [option, value]
            found, skip = True, True
        elif arg.startswith(option + "="):
            out.append(f"{option}={value}")
            found = True
        else:
            out.append(arg)
    return out if found else [*out, option, value]


def option_value(argv: Sequence[str], option: str) -> str | None:
    """The value of ``option`` in ``argv`` (last one wins), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


# ----------------------------------------------------------------------------------------------
# across nodes: one Spark barrier stage
# ----------------------------------------------------------------------------------------------


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
    """Uploads each complete checkpoint of a local ``--out`` to ``out_uri`` as soon as it appears (at most every ``every_s``).

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
    learns it through ``allGather`` (hosts are resolved to IPv4 addresses for ps-lite). Each task starts ``servers_per_worker`` servers and one worker
    on its own host, the worker on the task's GPU (``TaskContext.resources()['gpu']``, added as
    ``--gpus`` unless the command line names GPUs). With an ``s3://`` ``--out`` the worker writes to
    a local scratch folder, ``--resume`` first downloads ``<out>/checkpoints`` there on every node,
    the task whose worker is ps-lite rank 0 (the one writing checkpoints) uploads each checkpoint
    as it completes (:class:`CheckpointUploader`), and the bundle at the end.

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
            log.info("task %d: %d checkpoint files downloaded from %s", part, _download_checkpoints(out_uri, local_out), out_uri)
    extra = dict(spec.extra_env)
    logs = scratch / "logs"
    roles: list[Role] = []
    try:
        if part == 0:
            roles.append(start_role("scheduler", server_argv(python), {**extra, **role_env("scheduler", root, port, spec.num_workers, num_servers, root)}, logs))
        for i in range(spec.servers_per_worker):
            roles.append(start_role(f"server {part}.{i}", server_argv(python), {**extra, **role_env("server", root, port, spec.num_workers, num_servers, host)}, logs))
        roles.append(start_role(f"worker {part}", worker_argv(argv, python), {**extra, **role_env("worker", root, port, spec.num_workers, num_servers, host)}, logs))
        uploader = None
        if local_out is not None:
            uploader = CheckpointUploader(local_out, out_uri)
            uploader.done.update(p.name for p in (local_out / "checkpoints").glob("*.states"))  # downloaded for --resume
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
    yield json.dumps({"partition": part, "host": host, "exit_codes": codes, "stdout": stdout[-1] if stdout else "", "uploaded": uploaded})


def launch_spark(spark: SparkSession, spec: SparkLaunch) -> list[dict]:
    """Run the ps-lite job as one barrier stage of ``spec.num_workers`` tasks; returns each task's report.

    Raises:
        DistributedLaunchError: bad counts, dynamic allocation on (Spark refuses barrier stages then),
            or the stage failed (the first task error's message).
    """
    if spec.num_workers < 1 or spec.servers_per_worker < 1:
        raise DistributedLaunchError(f"expected at least 1 worker and 1 server per worker, found {spec.num_workers} and {spec.servers_per_worker}")
    if spark.sparkContext.getConf().get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        raise DistributedLaunchError(
            "a barrier stage cannot run with dynamic allocation: expected spark.dynamicAllocation.enabled=false, found true "
            f"(EMR's default); submit with --conf spark.dynamicAllocation.enabled=false --num-executors {spec.num_workers}"
        )
    rdd = spark.sparkContext.parallelize(range(spec.num_workers), spec.num_workers)
    task: Callable[[Iterator[Any]], Iterator[str]] = partial(barrier_task, spec)
    try:
        reports = rdd.barrier().mapPartitions(task).collect()
    except Exception as exc:  # noqa: BLE001 - Py4J / Spark wrap the task's error; keep its text
        raise DistributedLaunchError(f"the training barrier stage of {spec.num_workers} tasks failed: {_short(str(exc))}") from exc
    return [json.loads(r) for r in reports]


def _ip(host: str) -> str:
    """``host`` as an IPv4 address (ps-lite advertises and connects to addresses), or as given if it does not resolve."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _short(text: str, limit: int = 4000) -> str:
    """Spark's error text, trimmed to the task's own message where it can be found."""
    marker = "DistributedLaunchError:"
    if marker in text:
        text = text[text.index(marker):]
    return text[:limit]
