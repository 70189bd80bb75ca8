"""The kvstore of one training process: which worker it is, and keeping the workers' parameters identical.

:func:`open_kvstore` creates the ``dist_sync`` / ``dist_device_sync`` kvstore (or nothing for
``local`` / ``device``) and tells the worker its rank and the number of workers;
:func:`broadcast_from_chief`, :func:`sync_module_params` and :func:`average_aux` keep the workers'
parameters identical (the kvstore only synchronises gradients; BatchNorm's moving statistics are
averaged at the end of every epoch); :func:`optimizer_on_workers` keeps the optimizer (and so its
states, which checkpoints save) on the workers rather than on the servers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from softlines_attr.model.errors import DistributedLaunchError, TrainInputError

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx

log = logging.getLogger(__name__)

LOCAL_KV_STORES = ("local", "device")
DIST_KV_STORES = ("dist_sync", "dist_device_sync")
KV_STORES = LOCAL_KV_STORES + DIST_KV_STORES
DMLC_ENV = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")


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
            f"--kv-store {kind} runs inside a ps-lite job: "
            f"expected DMLC_ROLE=worker and {', '.join(DMLC_ENV[1:])} in the environment, "
            f"found DMLC_ROLE={os.environ.get('DMLC_ROLE')!r}, missing {missing}; start it with "
            "`softlines-attr train --launch local|spark --num-workers N ...`"
        )
    import mxnet as mx

    kv = mx.kv.create(kind)
    log.info(
        "joined %s as worker %d of %d (%s servers, scheduler %s:%s)",
        kind,
        kv.rank,
        kv.num_workers,
        os.environ["DMLC_NUM_SERVER"],
        os.environ["DMLC_PS_ROOT_URI"],
        os.environ["DMLC_PS_ROOT_PORT"],
    )
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


def broadcast_from_chief(
    workers: Workers, arrays: Mapping[str, mx.nd.NDArray], prefix: str
) -> dict[str, mx.nd.NDArray]:
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
    # One pushpull, as Module sends gradients: the server answers it with the merged sum once every worker has
    # pushed. A push followed by a separate pull raced: ps-lite's server may answer the pull from its stored
    # value before its asynchronous copy of the new sum lands, so a worker sometimes got the previous epoch's sum
    # (a resumed run's BN moving means then differed by a few per cent). Copies in, fresh arrays out: on CPU,
    # KVStoreDist sends and receives through one buffer.
    outs = [mx.nd.zeros(aux[n].shape, dtype=aux[n].dtype) for n in names]
    workers.kv.pushpull(keys, [aux[n].copy() for n in names], out=outs)
    mod.set_params(arg, {n: out / workers.num_workers for n, out in zip(names, outs)})
