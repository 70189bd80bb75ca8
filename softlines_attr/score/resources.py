"""What a scoring run runs with: its models (resolved, verified, checked together), task slots, threads, partitions."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

from pyspark.sql import SparkSession

from softlines_attr.config import PipelineConfig
from softlines_attr.score.errors import ScoreModelError
from softlines_attr.score.models import BundlePayload, check_payloads, read_payload, resolve_model_dirs

log = logging.getLogger(__name__)


def load_models(model_dirs: tuple[str, ...], conf: PipelineConfig) -> tuple[list[BundlePayload], list[str]]:
    """Resolve, load and verify every bundle once on the driver; returns the payloads and the attributes in order.

    Raises:
        ScoreInputError, ScoreModelError, BundleError, BundleIntegrityError: unusable model folders.
    """
    payloads = [read_payload(path) for path in resolve_model_dirs(model_dirs)]
    attributes = check_payloads(payloads)
    check_cache_bound(payloads, conf)
    for p in payloads:
        log.info("model %s: %s (%.1f MB)", p.model_version, [h.attribute for h in p.heads], len(p.params) / 1e6)
    return payloads, attributes


def check_cache_bound(payloads: Sequence[BundlePayload], conf: PipelineConfig) -> None:
    """A run scores every row with all of its bundles: they must fit the workers' model cache together.

    Raises:
        ScoreModelError: more bundles than ``score.model_cache_models``.
    """
    limit = conf.score.model_cache_models
    if len(payloads) > limit:
        raise ScoreModelError(
            f"expected at most {limit} model bundles per run (score.model_cache_models, the models a Python worker "
            f"keeps), found {len(payloads)}: {[p.source for p in payloads]}"
        )


def task_slots(spark: SparkSession) -> int:
    """Concurrent tasks: the cores of a ``local[N]`` master, else executors' cores / task cpus (default parallelism)."""
    from softlines_attr.shard.job import task_slots as slots

    return slots(spark)


def threads_per_task(spark: SparkSession, conf: PipelineConfig) -> int:
    """``score.threads_per_task``, or the cores per concurrent task: cores / ``local[N]`` slots, or
    ``spark.task.cpus`` on a cluster."""
    if conf.score.threads_per_task > 0:
        return conf.score.threads_per_task
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return max(1, (os.cpu_count() or 1) // task_slots(spark))
    # on a cluster an executor runs executor.cores / task.cpus tasks at once: each gets task.cpus cores
    return max(1, int(sc.getConf().get("spark.task.cpus", "1")))


def decode_in_fetch_threads(conf: PipelineConfig) -> bool:
    """Whether the tasks' fetch threads decode beside the forward pass (``score.decode_overlap``): ``on`` / ``off``,
    or ``auto``: on a GPU (the overlap hides the decode behind the GPU's forward pass), not on CPU (decoding and the
    forward pass share the same cores: the overlap buys no time and costs CPU, the threads fighting for the cores and
    their caches)."""
    mode = conf.score.decode_overlap
    return mode == "on" or (mode == "auto" and conf.score.device == "gpu")


def partitions_for(n_rows: int, slots: int, conf: PipelineConfig) -> int:
    if n_rows == 0:
        return 1  # everything carried over: one (empty) task
    if conf.score.partitions > 0:
        return conf.score.partitions
    parts = max(slots, math.ceil(n_rows / conf.score.rows_per_task))
    return int(math.ceil(parts / slots) * slots)  # whole waves
