"""The executor side of the scoring job: one partition of catalog rows in, attribute and error rows out.

Runs inside ``mapInArrow``. Per task:

1. Threads: OpenMP / MXNet engine threads are set to ``threads`` (cores / concurrent tasks) before
   MXNet is used, so the task slots of an executor do not oversubscribe its cores.
2. Models: each broadcast :class:`~softlines_attr.score.models.BundlePayload` is rebuilt once per
   Python worker process and kept in its bounded cache (:mod:`softlines_attr.score.model_cache`; Spark's
   worker reuse keeps the process), on
   the CPU or on the GPU Spark assigned to the task (``TaskContext.resources()["gpu"]``).
3. Images: :func:`softlines_attr.io.fetch.ordered_map` fetches rows on ``fetch_threads`` threads with a
   window of two batches, so batch k+1 is fetched while batch k runs forward. On CPU (``score.decode_overlap``
   ``auto``) the forward loop then decodes each batch itself, in turn with the forward pass: both are CPU work
   on the same cores, so overlapping them buys nothing. On a GPU the fetch threads decode too, beside the
   forward pass, at most ``threads`` of them at once (more would fight for the task's cores).
   Decoding is the shared :func:`~softlines_attr.images.load_image` (once per image) and
   :func:`~softlines_attr.images.crop_pixels` once per distinct preprocessing (input size, mean, std, region)
   among the bundles that score the row; :func:`~softlines_attr.images.normalise` makes a whole batch network
   input at once (bit for bit :func:`~softlines_attr.images.to_network_input` of each image).
4. Forward: per bundle, the rows that need it, through its bound :class:`~softlines_attr.model.predictor.Predictor`.

Output rows have :data:`TASK_DDL`: ``kind`` is ``attr`` (one per asin and attribute), ``error`` (one
per row that could not be scored) or ``stats`` (one per task, JSON in ``message``).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from softlines_attr.config import ImageConfig, ShardConfig
from softlines_attr.images import ImageError
from softlines_attr.io.fetch import Fetcher, FetchError, ordered_map
from softlines_attr.score.errors import ScoreDeviceError
from softlines_attr.score.model_cache import process_cache, set_threads
from softlines_attr.score.models import BundlePayload
from softlines_attr.score.profile import ImageTimes, TaskProfile, process_cpu_seconds

log = logging.getLogger(__name__)

TASK_DDL = (
    "kind string, asin string, image_uri string, attribute string, value string, confidence float, "
    "top_k array<struct<value:string,probability:float>>, model_version string, stage string, reason string, "
    "message string"
)
INPUT_COLUMNS = ("asin", "image_uri", "need")


@dataclass(frozen=True)
class ScoreTaskSpec:
    """Everything a scoring task needs (pickled into the closure; broadcasts by reference).

    Attributes:
        bundles: Broadcast :class:`BundlePayload` per bundle, in the job's model order (read only when the
            worker's cache does not hold the model: a cached model never unpickles its broadcast again).
        models: The same bundles without their files' bytes (:meth:`BundlePayload.light`): what a task needs to
            know about them (cache key, heads, preprocessing, model version).
        batch_size: Images per forward pass (the predictors' bound batch size).
        fetch_threads: Fetch threads per task (at most ``threads`` of them decode at once).
        threads: OpenMP / MXNet engine threads per task.
        top_k: Classes kept in ``top_k`` per row.
        device: ``cpu`` or ``gpu``.
        images: ``[images]``: only its pixel limit (``max_pixels``) is used; every bundle decodes with its own
            preprocessing.
        fetch: Fetch settings (a ``ShardConfig`` carrying the scoring job's fetch threads/limits).
        endpoint_url: S3 endpoint override seen on the driver.
        model_cache_models: ``score.model_cache_models``: models the worker's cache keeps.
        model_cache_mb: ``score.model_cache_mb``: MB of models the worker's cache keeps.
        decode_in_fetch_threads: True: the fetch threads decode too, beside the forward pass (a GPU's layout);
            False: they only fetch and the forward loop decodes each batch before its forward pass (CPU cores,
            which decoding and the forward pass share). ``score.decode_overlap``.
    """

    bundles: tuple[Any, ...]
    models: tuple[BundlePayload, ...]
    batch_size: int
    fetch_threads: int
    threads: int
    top_k: int
    device: str
    images: ImageConfig
    fetch: ShardConfig
    endpoint_url: str | None = None
    model_cache_models: int = 6
    model_cache_mb: int = 3072
    decode_in_fetch_threads: bool = True


@dataclass
class _Prepared:
    """One fetched row (its bytes), then decoded (its cropped pixels per preprocessing key, uint8, normalised per
    batch), or its error; and its stage times."""

    data: bytes | None = None
    tensors: dict[tuple, np.ndarray] | None = None
    error: tuple[str, str, str] | None = None  # stage, reason, message
    times: ImageTimes | None = None


def _task_context() -> tuple[int, int, Any]:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:  # called outside Spark (unit use): partition 0, first attempt
        return 0, 0, None
    return ctx.partitionId(), ctx.attemptNumber(), ctx


def device_context(device: str, task_ctx: Any) -> Any:
    """The MXNet context: CPU, or the GPU Spark assigned to this task.

    Raises:
        ScoreDeviceError: ``gpu`` asked but the task was given no GPU resource (a cluster configuration error).
    """
    import mxnet as mx

    if device != "gpu":
        return mx.cpu()
    resources = task_ctx.resources() if task_ctx is not None else {}
    gpu = resources.get("gpu")
    if gpu is None or not gpu.addresses:
        raise ScoreDeviceError(
            f"score.device = 'gpu': expected a GPU resource for the task (spark.task.resource.gpu.amount = 1 and "
            f"a discovery script), found resources {sorted(resources)}"
        )
    return mx.gpu(int(gpu.addresses[0]))


def top_k_rows(probs: np.ndarray, classes: tuple[str, ...], k: int) -> tuple[np.ndarray, np.ndarray, list[list[dict]]]:
    """Per row: the top class index, its probability, and the k best as [{value, probability}] (descending)."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    best = order[:, 0]
    conf = probs[np.arange(probs.shape[0]), best]
    tops = [[{"value": classes[j], "probability": float(p[j])} for j in row] for p, row in zip(probs, order)]
    return best, conf, tops


def score_partition(spec: ScoreTaskSpec, batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` function: Arrow batches of (asin, image_uri, need) in, Arrow batches of :data:`TASK_DDL` out."""
    import pyarrow as pa

    started = time.monotonic()
    cpu_started = process_cpu_seconds()
    profile = TaskProfile()
    partition, attempt, task_ctx = _task_context()
    set_threads(spec.threads)
    ctx = device_context(spec.device, task_ctx)
    payloads: list[BundlePayload] = list(spec.models)
    cache = process_cache(spec.model_cache_models, spec.model_cache_mb)
    # a broadcast's value (the model's bytes, unpickled) is read only for a model the cache does not hold
    predictors = cache.predictors(payloads, spec.batch_size, ctx, load=lambda i: spec.bundles[i].value)
    profile.model_load = time.monotonic() - started
    profile.model_load_cpu = process_cpu_seconds() - cpu_started
    keys = [p.preprocess_key for p in payloads]
    fetcher = Fetcher(spec.fetch, spec.endpoint_url)
    images = spec.images
    schema = _output_schema()

    # fetches wait on I/O, so fetch_threads of them run at once; decoding is CPU work, so at most the task's cores
    # (threads) decode at once: more would only fight the forward pass and each other for the same cores
    decode_slots = threading.BoundedSemaphore(max(1, spec.threads))

    def fetch(row: tuple[str, str, list[bool]]) -> _Prepared:
        times = ImageTimes()
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return _Prepared(data=fetcher.fetch(row[1]), times=times)
        except FetchError as exc:
            return _Prepared(error=("fetch", exc.reason, str(exc)), times=times)
        finally:
            _lap(times, "fetch", wall, cpu)

    def decode(prepared: _Prepared, need: list[bool]) -> _Prepared:
        if prepared.data is None:  # a fetch error
            return prepared
        return _decode(prepared.data, need, payloads, keys, images.max_pixels, prepared.times or ImageTimes())

    def fetch_and_decode(row: tuple[str, str, list[bool]]) -> _Prepared:
        fetched = fetch(row)
        with decode_slots:
            return decode(fetched, row[2])

    def rows() -> Iterator[tuple[str, str, list[bool]]]:
        for rb in batches:
            cols = [rb.column(rb.schema.get_field_index(c)).to_pylist() for c in INPUT_COLUMNS]
            yield from zip(*cols)

    counts = {"rows": 0, "errors": 0, "attr_rows": 0, "batches": 0}
    # on a GPU the fetch threads decode while the forward pass runs; on CPU cores decoding and the forward pass
    # share the same cores, so the forward loop decodes each batch itself, in turn (the fetch threads only fetch)
    prepare = fetch_and_decode if spec.decode_in_fetch_threads else fetch
    stream = ordered_map(prepare, rows(), threads=spec.fetch_threads, window=2 * spec.batch_size)
    while True:
        t0 = time.perf_counter()
        batch = _next_batch(stream, spec.batch_size)
        profile.wait += time.perf_counter() - t0
        if not batch:
            break
        if not spec.decode_in_fetch_threads:
            batch = [(item, decode(prepared, item[2])) for item, prepared in batch]
        for _, prepared in batch:
            if prepared.times is not None:
                profile.add_image(prepared.times)
        out = _score_batch(batch, payloads, predictors, keys, spec.top_k, profile)
        counts["rows"] += len(batch)
        counts["errors"] += sum(1 for r in out if r[0] == "error")
        counts["attr_rows"] += sum(1 for r in out if r[0] == "attr")
        counts["batches"] += 1
        t0 = time.perf_counter()
        arrow = _to_batch(out, schema, pa)
        profile.arrow_out += time.perf_counter() - t0
        yield arrow
    profile.task_cpu = process_cpu_seconds() - cpu_started
    stats = {
        "partition": partition,
        "attempt": attempt,
        "pid": os.getpid(),
        **counts,
        "seconds": round(time.monotonic() - started, 4),
        "model_seconds": round(profile.model_load, 4),
        "fetch_wait_seconds": round(profile.wait, 4),
        "forward_seconds": round(profile.forward, 4),
        "profile": profile.as_dict(),
        "threads": spec.threads,
        "device": str(ctx),
        "model_loads_in_process": dict(cache.loads),
        "model_cache": cache.stats(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    yield _to_batch(
        [("stats", None, None, None, None, None, None, None, None, None, json.dumps(stats, sort_keys=True))], schema, pa
    )


def _decode(
    data: bytes, need: list[bool], payloads: list[BundlePayload], keys: list[tuple], max_pixels: int, times: ImageTimes
) -> _Prepared:
    """Decode one image for the bundles that need it: once per (store size, resize mode), one crop per
    preprocessing; an :class:`ImageError` (or any surprise) is the row's ``decode`` error, never a failed task."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        # each bundle's own preprocessing (store size, resize mode, crop, region, mean/std), never the
        # conf's [images]: one decode per (store size, resize mode), one tensor per preprocessing
        decoded: dict[tuple, Any] = {}
        tensors: dict[tuple, np.ndarray] = {}
        for b, key in enumerate(keys):
            if need[b] and key not in tensors:
                prep = payloads[b].preprocessing
                if prep.decode_key not in decoded:
                    decoded[prep.decode_key] = prep.load(data, max_pixels)
                    wall, cpu = _lap(times, "decode", wall, cpu)
                tensors[key] = prep.pixels(decoded[prep.decode_key])  # normalised per batch
                wall, cpu = _lap(times, "tensor", wall, cpu)
        return _Prepared(tensors=tensors, times=times)
    except ImageError as exc:
        return _Prepared(error=("decode", exc.reason, str(exc)), times=times)
    except Exception as exc:  # one image's surprise is an error row, never a failed task
        return _Prepared(error=("decode", "decode_error", f"{type(exc).__name__}: {exc}"), times=times)


def _lap(times: ImageTimes, stage: str, wall: float, cpu: float) -> tuple[float, float]:
    """Add the wall and thread-CPU seconds since (``wall``, ``cpu``) to ``stage``; returns the new marks."""
    now_wall, now_cpu = time.perf_counter(), time.thread_time()
    setattr(times, stage, getattr(times, stage) + now_wall - wall)
    setattr(times, f"{stage}_cpu", getattr(times, f"{stage}_cpu") + now_cpu - cpu)
    return now_wall, now_cpu


def _next_batch(stream: Iterator[tuple[tuple, Any]], size: int) -> list[tuple[tuple, _Prepared]]:
    """Up to ``size`` prepared rows from the fetch stream (fewer at its end, none when it is done)."""
    batch: list[tuple[tuple, _Prepared]] = []
    for item, result in stream:
        if not isinstance(result, _Prepared):  # the preparation itself raised: an error row, never a failed task
            result = _Prepared(error=("decode", "decode_error", f"{type(result).__name__}: {result}"))
        batch.append((item, result))
        if len(batch) == size:
            break
    return batch


def _score_batch(
    batch: list[tuple[tuple, _Prepared]],
    payloads: list[BundlePayload],
    predictors: list[Any],
    keys: list[tuple],
    top_k: int,
    profile: TaskProfile,
) -> list[tuple]:
    """Forward one batch through every bundle that some row needs; rows of TASK_DDL (stage times into ``profile``)."""
    out: list[tuple] = []
    for (asin, uri, _), prep in batch:
        if prep.error is not None:
            stage, reason, message = prep.error
            out.append(("error", asin, uri, None, None, None, None, None, stage, reason, message))
    for b, payload in enumerate(payloads):
        idx = [i for i, ((_, _, need), prep) in enumerate(batch) if prep.error is None and need[b]]
        if not idx:
            continue
        t0 = time.perf_counter()
        # rows reaching the forward pass always decoded (errors left earlier); the batch is normalised at once,
        # the same bits as image by image (Preprocessing.tensor) in fewer passes over memory
        x = payload.preprocessing.normalise(np.stack([batch[i][1].tensors[keys[b]] for i in idx]))  # type: ignore[index]
        t1 = time.perf_counter()
        probs = predictors[b].predict(x)
        t2 = time.perf_counter()
        profile.stack += t1 - t0
        profile.forward += t2 - t1
        for head in payload.heads:
            best, conf, tops = top_k_rows(probs[head.name], head.classes, top_k)
            for j, i in enumerate(idx):
                asin, uri, _ = batch[i][0]
                c = float(conf[j])
                value = head.classes[int(best[j])] if c >= head.threshold else None
                out.append(
                    ("attr", asin, uri, head.attribute, value, c, tops[j], payload.model_version, None, None, None)
                )
        profile.rows_out += time.perf_counter() - t2
    return out


def _output_schema() -> Any:
    import pyarrow as pa

    top = pa.list_(pa.struct([("value", pa.string()), ("probability", pa.float32())]))
    return pa.schema(
        [
            ("kind", pa.string()),
            ("asin", pa.string()),
            ("image_uri", pa.string()),
            ("attribute", pa.string()),
            ("value", pa.string()),
            ("confidence", pa.float32()),
            ("top_k", top),
            ("model_version", pa.string()),
            ("stage", pa.string()),
            ("reason", pa.string()),
            ("message", pa.string()),
        ]
    )


def _to_batch(rows: list[tuple], schema: Any, pa: Any) -> Any:
    cols = list(zip(*rows)) if rows else [[] for _ in schema]
    return pa.RecordBatch.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cols, schema)], schema=schema)
