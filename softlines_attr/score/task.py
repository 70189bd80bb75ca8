"""The executor side of the scoring job: one partition of catalog rows in, attribute and error rows out.

Runs inside ``mapInArrow``. Per task:

1. Threads: OpenMP / MXNet engine threads are set to ``threads`` (cores / concurrent tasks) before
   MXNet is used, so the task slots of an executor do not oversubscribe its cores.
2. Models: each broadcast :class:`~softlines_attr.score.models.BundlePayload` is rebuilt once per
   Python worker process and kept (``cached_predictor``; Spark's worker reuse keeps the process), on
   the CPU or on the GPU Spark assigned to the task (``TaskContext.resources()["gpu"]``).
3. Images: :func:`softlines_attr.io.fetch.ordered_map` fetches and decodes rows on ``fetch_threads``
   threads with a window of two batches, so batch k+1 is fetched and decoded while batch k runs forward.
   Decoding is the shared :func:`~softlines_attr.images.load_image` (once per image) and
   :func:`~softlines_attr.images.to_network_input` once per distinct preprocessing (input size, mean,
   std, region) among the bundles that score the row.
4. Forward: per bundle, the rows that need it, through its bound :class:`~softlines_attr.model.predictor.Predictor`.

Output rows have :data:`TASK_DDL`: ``kind`` is ``attr`` (one per asin and attribute), ``error`` (one
per row that could not be scored) or ``stats`` (one per task, JSON in ``message``).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from softlines_attr.config import ImageConfig, ShardConfig
from softlines_attr.images import ImageError
from softlines_attr.io.fetch import Fetcher, FetchError, ordered_map
from softlines_attr.score.errors import ScoreDeviceError
from softlines_attr.score.models import BundlePayload, cached_predictor, process_load_counts, set_threads

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
        bundles: Broadcast :class:`BundlePayload` per bundle, in the job's model order.
        batch_size: Images per forward pass (the predictors' bound batch size).
        fetch_threads: Fetch + decode threads per task.
        threads: OpenMP / MXNet engine threads per task.
        top_k: Classes kept in ``top_k`` per row.
        device: ``cpu`` or ``gpu``.
        images: ``[images]``: only its pixel limit (``max_pixels``) is used; every bundle decodes with its own
            preprocessing.
        fetch: Fetch settings (a ``ShardConfig`` carrying the scoring job's fetch threads/limits).
        endpoint_url: S3 endpoint override seen on the driver.
    """

    bundles: tuple[Any, ...]
    batch_size: int
    fetch_threads: int
    threads: int
    top_k: int
    device: str
    images: ImageConfig
    fetch: ShardConfig
    endpoint_url: str | None = None


@dataclass
class _Prepared:
    """One fetched, decoded row: its network inputs per preprocessing key, or the error."""

    tensors: dict[tuple, np.ndarray] | None = None
    error: tuple[str, str, str] | None = None  # stage, reason, message


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
    partition, attempt, task_ctx = _task_context()
    set_threads(spec.threads)
    ctx = device_context(spec.device, task_ctx)
    payloads: list[BundlePayload] = [b.value for b in spec.bundles]
    predictors = [cached_predictor(p, spec.batch_size, ctx) for p in payloads]
    model_seconds = time.monotonic() - started
    keys = [p.preprocess_key for p in payloads]
    fetcher = Fetcher(spec.fetch, spec.endpoint_url)
    images = spec.images
    schema = _output_schema()

    def prepare(row: tuple[str, str, list[bool]]) -> _Prepared:
        _, uri, need = row
        try:
            data = fetcher.fetch(uri)
        except FetchError as exc:
            return _Prepared(error=("fetch", exc.reason, str(exc)))
        try:
            # each bundle's own preprocessing (store size, resize mode, crop, region, mean/std), never the
            # conf's [images]: one decode per (store size, resize mode), one tensor per preprocessing
            decoded: dict[tuple, Any] = {}
            tensors: dict[tuple, np.ndarray] = {}
            for b, key in enumerate(keys):
                if need[b] and key not in tensors:
                    prep = payloads[b].preprocessing
                    if prep.decode_key not in decoded:
                        decoded[prep.decode_key] = prep.load(data, images.max_pixels)
                    tensors[key] = prep.tensor(decoded[prep.decode_key])
            return _Prepared(tensors=tensors)
        except ImageError as exc:
            return _Prepared(error=("decode", exc.reason, str(exc)))
        except Exception as exc:  # one image's surprise is an error row, never a failed task
            return _Prepared(error=("decode", "decode_error", f"{type(exc).__name__}: {exc}"))

    def rows() -> Iterator[tuple[str, str, list[bool]]]:
        for rb in batches:
            cols = [rb.column(rb.schema.get_field_index(c)).to_pylist() for c in INPUT_COLUMNS]
            yield from zip(*cols)

    counts = {"rows": 0, "errors": 0, "attr_rows": 0, "batches": 0}
    wait_s = forward_s = 0.0
    batch: list[tuple[tuple, _Prepared]] = []
    window = 2 * spec.batch_size
    stream = ordered_map(prepare, rows(), threads=spec.fetch_threads, window=window)
    done = False
    while not done:
        t0 = time.monotonic()
        batch = []
        for item, result in stream:
            batch.append(
                (
                    item,
                    result
                    if isinstance(result, _Prepared)
                    else _Prepared(error=("decode", "decode_error", f"{type(result).__name__}: {result}")),
                )
            )
            if len(batch) == spec.batch_size:
                break
        else:
            done = True
        wait_s += time.monotonic() - t0
        if not batch:
            break
        t1 = time.monotonic()
        out = _score_batch(batch, payloads, predictors, keys, spec.top_k)
        forward_s += time.monotonic() - t1
        counts["rows"] += len(batch)
        counts["errors"] += sum(1 for r in out if r[0] == "error")
        counts["attr_rows"] += sum(1 for r in out if r[0] == "attr")
        counts["batches"] += 1
        yield _to_batch(out, schema, pa)
    stats = {
        "partition": partition,
        "attempt": attempt,
        "pid": os.getpid(),
        **counts,
        "seconds": round(time.monotonic() - started, 4),
        "model_seconds": round(model_seconds, 4),
        "fetch_wait_seconds": round(wait_s, 4),
        "forward_seconds": round(forward_s, 4),
        "threads": spec.threads,
        "device": str(ctx),
        "model_loads_in_process": process_load_counts(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    yield _to_batch(
        [("stats", None, None, None, None, None, None, None, None, None, json.dumps(stats, sort_keys=True))], schema, pa
    )


def _score_batch(
    batch: list[tuple[tuple, _Prepared]],
    payloads: list[BundlePayload],
    predictors: list[Any],
    keys: list[tuple],
    top_k: int,
) -> list[tuple]:
    """Forward one batch through every bundle that some row needs; rows of TASK_DDL."""
    out: list[tuple] = []
    for (asin, uri, _), prep in batch:
        if prep.error is not None:
            stage, reason, message = prep.error
            out.append(("error", asin, uri, None, None, None, None, None, stage, reason, message))
    for b, payload in enumerate(payloads):
        idx = [i for i, ((_, _, need), prep) in enumerate(batch) if prep.error is None and need[b]]
        if not idx:
            continue
        # rows reaching the forward pass always decoded (errors left earlier)
        x = np.stack([batch[i][1].tensors[keys[b]] for i in idx])  # type: ignore[index]
        probs = predictors[b].predict(x)
        for head in payload.heads:
            best, conf, tops = top_k_rows(probs[head.name], head.classes, top_k)
            for j, i in enumerate(idx):
                asin, uri, _ = batch[i][0]
                c = float(conf[j])
                value = head.classes[int(best[j])] if c >= head.threshold else None
                out.append(
                    ("attr", asin, uri, head.attribute, value, c, tops[j], payload.model_version, None, None, None)
                )
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
