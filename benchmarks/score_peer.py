"""The scoring benchmark's peer: what a Spark user would write with ``pyspark.ml.functions.predict_batch_udf``.

Used by ``bench_score.py``; holds no command of its own. Same rows, same partitions (``cores``), same
bundle, same :class:`~softlines_attr.model.predictor.Predictor` (one per Python worker, bound at the
job's batch size, one OpenMP thread per task as the job sets) and the same preprocessing
(:meth:`~softlines_attr.model.manifest.Preprocessing.network_input`: the bundle's own decode, resize,
crop and normalisation). The predict function reads each batch's files, decodes them and runs the
forward pass, in turn; Spark's ``predict_batch_udf`` does the batching and caches the predict function
per worker. The output (per asin, every head's probabilities) is written to Parquet, as a user would.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def make_predict_fn_factory(bundle_dir: str, batch: int, threads: int, max_pixels: int):
    """``make_predict_fn`` for ``predict_batch_udf``: binds the bundle's predictor once per Python worker."""

    def make_predict_fn():
        from softlines_attr.model.bundle import load_bundle
        from softlines_attr.model.predictor import Predictor
        from softlines_attr.score.model_cache import set_threads

        set_threads(threads)
        bundle = load_bundle(Path(bundle_dir))
        prep = bundle.manifest.preprocessing
        predictor = Predictor(bundle, batch)

        def predict(uris: np.ndarray) -> dict[str, np.ndarray]:
            x = np.stack([prep.network_input(Path(str(u)).read_bytes(), max_pixels) for u in uris])
            return predictor.predict(x)

        return predict

    return make_predict_fn


def peer_run(spark, bundle_dir: Path, rows: list[tuple[str, str]], batch: int, threads: int, cores: int, out: Path):
    """Score ``rows`` ((asin, image_uri), every one decodable) with ``predict_batch_udf``; returns (seconds, output).

    The output maps asin -> head -> probabilities (float32 array), read back from the written Parquet.
    """
    import shutil

    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from softlines_attr.config import load_config
    from softlines_attr.model.bundle import load_bundle

    heads = [h.name for h in load_bundle(bundle_dir).manifest.heads]
    udf = predict_batch_udf(
        make_predict_fn_factory(str(bundle_dir), batch, threads, load_config().images.max_pixels),
        return_type=StructType([StructField(h, ArrayType(FloatType())) for h in heads]),
        batch_size=batch,
    )
    df = spark.createDataFrame(rows, "asin string, image_uri string").repartition(cores, "asin").cache()
    df.count()  # the input in memory before the clock starts, as the job's catalog is read before its phase
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    df.select("asin", udf("image_uri").alias("p")).write.parquet(str(out))
    seconds = time.perf_counter() - start
    df.unpersist()
    written = spark.read.parquet(str(out)).collect()
    return seconds, {r["asin"]: {h: np.asarray(r["p"][h], dtype=np.float32) for h in heads} for r in written}


def compare_with_job(job_rows: list, peer: dict, heads: dict[str, tuple[str, ...]]) -> dict:
    """The job's attribute rows against the peer's probabilities: same asins, same top class, same confidence.

    Args:
        job_rows: The job's ``attributes`` rows (asin, attribute, value, confidence, top_k).
        peer: asin -> head -> probabilities.
        heads: attribute -> class names (head names are the attributes in the benchmark's bundles).
    """
    asins = {r["asin"] for r in job_rows}
    worst = 0.0
    top_mismatch = 0
    for r in job_rows:
        probs = peer[r["asin"]][r["attribute"]]
        worst = max(worst, abs(float(probs.max()) - float(r["confidence"])))
        if heads[r["attribute"]][int(np.argmax(probs))] != r["top_k"][0]["value"]:
            top_mismatch += 1
    return {
        "same_asins": asins == set(peer),
        "rows_compared": len(job_rows),
        "top_class_mismatches": top_mismatch,
        "max_abs_confidence_diff": worst,
    }
