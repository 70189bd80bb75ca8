"""The executor side of the scoring models: a bounded, least-recently-used cache of bound predictors per process.

A Python worker (reused between tasks: ``spark.python.worker.reuse``) rebuilds a broadcast
:class:`~softlines_attr.score.models.BundlePayload` once, binds its
:class:`~softlines_attr.model.predictor.Predictor` and keeps both for later tasks and jobs. The cache
is bounded by ``score.model_cache_models`` models and ``score.model_cache_mb`` megabytes per process:
when a task's models are in and the bounds are exceeded, the least recently used models *not used by
that task* are dropped (a task always keeps the models it scores with; the driver refuses a run with
more bundles than the count bound, so the count bound always holds). A model's memory is what the
process's resident memory grew by while it was rebuilt and bound (floored at its parameters' bytes);
MKL-DNN's per-shape buffers made at the first forward pass are not in it (the worker's peak RSS is
in the run summary).

Spark's own ``predict_batch_udf`` keeps at most three predict functions per worker, by count only.

MXNet is imported inside functions only, so the task code can set the thread counts first.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import os
import resource
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.score.errors import ScoreModelError
from softlines_attr.score.models import MANIFEST_FILE, PARAMS_FILE, SYMBOL_FILE, BundlePayload

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx

    from softlines_attr.model.bundle import Bundle
    from softlines_attr.model.predictor import Predictor

log = logging.getLogger(__name__)

_MB = 1 << 20


def set_threads(threads: int) -> None:
    """Limit this process's OpenMP and MXNet engine threads to ``threads``.

    The environment variables take effect when MXNet is first imported in the process; MXNet's
    ``MXSetNumOMPThreads`` changes the OpenMP pool of an already-imported MXNet too.
    """
    threads = max(1, int(threads))
    for key in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = str(threads)
    import mxnet as mx

    mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(threads))


def bundle_from_payload(payload: BundlePayload) -> Bundle:
    """Rebuild a bundle from its bytes: written to a private temporary folder and loaded (checksums verified)."""
    from softlines_attr.model.bundle import load_bundle

    tmp = Path(tempfile.mkdtemp(prefix="score-bundle-"))
    try:
        (tmp / SYMBOL_FILE).write_text(payload.symbol_json, encoding="utf-8")
        (tmp / PARAMS_FILE).write_bytes(payload.params)
        (tmp / MANIFEST_FILE).write_text(payload.manifest_json, encoding="utf-8")
        return load_bundle(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``; the peak ``ru_maxrss`` where there is none)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class _Entry:
    """One cached model: the rebuilt bundle, its bound predictors per (context, batch size), its memory."""

    bundle: Bundle
    nbytes: int
    predictors: dict[tuple[str, int], Predictor] = field(default_factory=dict)


class ModelCache:
    """Bound predictors per model (params sha256), least recently used first out, within a count and a size bound.

    Args:
        max_models: Models kept at most (a task's own models are never dropped).
        max_bytes: Bytes of model memory kept at most (the same exception).
    """

    def __init__(self, max_models: int, max_bytes: int) -> None:
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.loads: dict[str, int] = {}
        self.evictions = 0
        self.hits = 0
        self.peak_models = 0
        self.peak_bytes = 0

    def resize(self, max_models: int, max_bytes: int) -> None:
        """New bounds (a task brings its run's conf); applied at the next :meth:`predictors`."""
        self.max_models, self.max_bytes = max_models, max_bytes

    def bundle(self, payload: BundlePayload) -> Bundle:
        """The rebuilt bundle of ``payload``, loaded on first use (the cache's bounds are applied by
        :meth:`predictors`)."""
        return self._entry(payload).bundle

    def _entry(self, payload: BundlePayload, load: Callable[[], BundlePayload] | None = None) -> _Entry:
        key = payload.params_sha256
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        if load is not None:  # the model's bytes, read only now that they are needed
            payload = load()
            if payload.params_sha256 != key:
                raise ScoreModelError(
                    f"model {key[:12]}: expected its payload to have params sha256 {key}, found {payload.params_sha256}"
                )
        before = resident_bytes()
        bundle = bundle_from_payload(payload)
        entry = _Entry(bundle=bundle, nbytes=max(len(payload.params), resident_bytes() - before))
        self._entries[key] = entry
        self.loads[key] = self.loads.get(key, 0) + 1
        log.info("pid %d: loaded model %s", os.getpid(), payload.model_version)
        return entry

    def predictors(
        self,
        payloads: Sequence[BundlePayload],
        batch_size: int,
        ctx: mx.Context | None = None,
        load: Callable[[int], BundlePayload] | None = None,
    ) -> list[Predictor]:
        """One bound predictor per payload (built on first use), then the bounds applied to the other models.

        Args:
            payloads: The models (their ``params_sha256`` is the key; they may be :meth:`BundlePayload.light`).
            batch_size: The predictors' bound batch size.
            ctx: The MXNet context (CPU by default).
            load: ``load(i)`` gives payload ``i`` whole (with its bytes), called only for a model not in the cache
                (a task's broadcast, unpickled only then); None: the payloads are whole.
        """
        import mxnet as mx

        from softlines_attr.model.predictor import Predictor

        ctx = ctx or mx.cpu()
        out = []
        for i, payload in enumerate(payloads):
            entry = self._entry(payload, None if load is None else functools.partial(load, i))
            key = (str(ctx), int(batch_size))
            pred = entry.predictors.get(key)
            if pred is None:
                before = resident_bytes()
                pred = Predictor(entry.bundle, batch_size, ctx)
                entry.predictors[key] = pred
                entry.nbytes += max(0, resident_bytes() - before)
            out.append(pred)
        self._evict(keep={p.params_sha256 for p in payloads})
        self.peak_models = max(self.peak_models, len(self._entries))
        self.peak_bytes = max(self.peak_bytes, self.nbytes)
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of model memory held now."""
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, params_sha256: object) -> bool:
        return params_sha256 in self._entries

    def _evict(self, keep: set[str]) -> None:
        dropped = 0
        for key in list(self._entries):  # least recently used first
            if len(self._entries) <= self.max_models and self.nbytes <= self.max_bytes:
                break
            if key in keep:
                continue
            del self._entries[key]
            self.evictions += 1
            dropped += 1
            log.info("pid %d: dropped model %s from the cache (least recently used)", os.getpid(), key[:12])
        if dropped:
            gc.collect()  # the executors' NDArrays go now, not at some later collection
        if self.nbytes > self.max_bytes:
            log.warning(
                "pid %d: the task's %d models hold %.0f MB, above score.model_cache_mb (%.0f MB); kept while they "
                "are in use",
                os.getpid(),
                len(keep),
                self.nbytes / _MB,
                self.max_bytes / _MB,
            )

    def stats(self) -> dict[str, Any]:
        """The cache's figures for a task's stats row."""
        return {
            "models": len(self._entries),
            "mb": round(self.nbytes / _MB, 1),
            "peak_models": self.peak_models,
            "peak_mb": round(self.peak_bytes / _MB, 1),
            "max_models": self.max_models,
            "max_mb": round(self.max_bytes / _MB, 1),
            "evictions": self.evictions,
            "hits": self.hits,
        }


#: The process's cache (a Python worker's; each task sets its run's bounds first).
_CACHE = ModelCache(max_models=6, max_bytes=3072 * _MB)


def process_cache(max_models: int | None = None, max_mb: int | None = None) -> ModelCache:
    """The process's model cache, with new bounds when given (``score.model_cache_models`` / ``_mb``)."""
    if max_models is not None and max_mb is not None:
        _CACHE.resize(max_models, max_mb * _MB)
    return _CACHE


def cached_bundle(payload: BundlePayload) -> Bundle:
    """The process's bundle for ``payload``, rebuilt on first use only (keyed by the params sha256)."""
    return _CACHE.bundle(payload)


def cached_predictor(payload: BundlePayload, batch_size: int, ctx: mx.Context | None = None) -> Predictor:
    """The process's bound :class:`Predictor` for (model, context, batch size), built on first use."""
    return _CACHE.predictors([payload], batch_size, ctx)[0]


def process_load_counts() -> dict[str, int]:
    """How many times this process rebuilt each model (params sha256 -> count; 1 with a working cache)."""
    return dict(_CACHE.loads)
