"""The scoring benchmark's peer: what a Spark user would write with ``pyspark.ml.functions.predict_batch_udf``.

Used by ``bench_score.py``; holds no command of its own. Same rows, same partitions (``cores``), same
bundle, same :class:`~softlines_attr.model.predictor.Predictor` (one per Python worker, bound at the
job's batch size, one OpenMP thread per task as the job sets) and the same preprocessing
(:meth:`~softlines_attr.model.manifest.Preprocessing.network_input`: the bundle's own decode, resize,
crop and normalisation). The predict function reads each batch's files, decodes them and runs the
forward pass, in turn; Spark's ``predict_batch_udf`` does the batching and caches the predict function
per worker. The output (per asin, every head's probabilities) is written to Parquet, as a user would.

With ``from_s3`` (``bench_score.py --s3-latency-ms``) the rows' ``image_uri`` are ``s3://`` URIs: each
worker makes one boto3 client in ``make_predict_fn`` (``boto3.client("s3")``: endpoint and credentials
from the worker's environment) and the predict function GETs each row's object in turn
(``get_object(...)["Body"].read()``), then decodes and runs the batch as with local files: what a Spark
user would write. The local-file path is unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def make_predict_fn_factory(
    bundle_dir: str, batch: int, threads: int, max_pixels: int, cpu_dir: str, from_s3: bool = False
):
    """``make_predict_fn`` for ``predict_batch_udf``: binds the bundle's predictor once per Python worker.

    For the benchmark only, each worker also writes its CPU seconds to ``cpu_dir/<pid>.json`` after every
    batch: in all since ``make_predict_fn`` started (model load included) and since its first batch began.
    With ``from_s3``, each worker makes one boto3 S3 client and reads each row's ``s3://bucket/key`` with one
    ``get_object``, in turn; else each row's local file.
    """

    def make_predict_fn():
        import json
        import os

        started = time.process_time()
        from softlines_attr.score.model_cache import set_threads

        set_threads(threads)  # before MXNet's first import in the worker, as the job does: its env vars count then
        from softlines_attr.model.bundle import load_bundle
        from softlines_attr.model.predictor import Predictor

        bundle = load_bundle(Path(bundle_dir))
        prep = bundle.manifest.preprocessing
        predictor = Predictor(bundle, batch)
        seen = {"rows": 0, "first": None}
        if from_s3:  # nested, as everything here: the workers cannot import this module
            import boto3

            client = boto3.client("s3")  # one per worker; endpoint and credentials from its environment

            def read(uri: str) -> bytes:
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        else:

            def read(uri: str) -> bytes:
                return Path(uri).read_bytes()

        def predict(uris: np.ndarray) -> dict[str, np.ndarray]:
            if seen["first"] is None:
                seen["first"] = time.process_time()
            x = np.stack([prep.network_input(read(str(u)), max_pixels) for u in uris])
            out = predictor.predict(x)
            now = time.process_time()
            seen["rows"] += len(uris)
            record = {"rows": seen["rows"], "cpu_all": now - started, "cpu_steady": now - seen["first"]}
            Path(cpu_dir, f"{os.getpid()}.json").write_text(json.dumps(record))
            return out

        return predict

    return make_predict_fn


def peer_run(
    spark,
    bundle_dir: Path,
    catalog_file: Path,
    rows: list[tuple[str, str]],
    batch: int,
    threads: int,
    cores: int,
    out: Path,
    from_s3: bool = False,
):
    """Score ``rows`` ((asin, image_uri), every one decodable) of the catalog Parquet ``catalog_file`` with
    ``predict_batch_udf``; ``from_s3``: the rows' URIs are ``s3://`` ones, read with boto3.

    Counted as the job is, end to end: the clock runs from the bundle's manifest read on the driver and the
    catalog read (the catalog's rows that are not in ``rows``, its few undecodable ones, filtered out: a
    ``predict_batch_udf`` has no way to put a corrupt image aside) to the written Parquet.

    Returns:
        (seconds, output, cpu): the output maps asin -> head -> probabilities (float32 array), read back from the
        written Parquet; cpu is the workers' CPU ms per image, in all and from their first batch on.
    """
    import json
    import shutil

    import pyarrow.parquet as pq
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from softlines_attr.config import load_config
    from softlines_attr.model.bundle import load_bundle

    cpu_dir = out.parent / f"{out.name}-cpu"
    shutil.rmtree(cpu_dir, ignore_errors=True)
    cpu_dir.mkdir(parents=True)
    table = pq.read_table(catalog_file, columns=["asin", "image_uri"])
    keep = set(rows)
    left_out = sorted(
        {u or "" for a, u in zip(table.column("asin").to_pylist(), table.column("image_uri").to_pylist())}
        - {u for _, u in keep}
    )
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    heads = [h.name for h in load_bundle(bundle_dir).manifest.heads]
    udf = predict_batch_udf(
        make_predict_fn_factory(
            str(bundle_dir), batch, threads, load_config().images.max_pixels, str(cpu_dir), from_s3
        ),
        return_type=StructType([StructField(h, ArrayType(FloatType())) for h in heads]),
        batch_size=batch,
    )
    df = (
        spark.read.parquet(str(catalog_file))
        .where(~F.coalesce(F.col("image_uri"), F.lit("")).isin(left_out))
        .select("asin", "image_uri")
        .repartition(cores, "asin")
    )
    df.select("asin", udf("image_uri").alias("p")).write.parquet(str(out))
    seconds = time.perf_counter() - start
    written = spark.read.parquet(str(out)).collect()
    if len(written) != len(rows):
        raise SystemExit(f"the peer scored {len(written)} rows; expected the {len(rows)} decodable ones")
    records = [json.loads(p.read_text()) for p in cpu_dir.glob("*.json")]
    n = max(1, sum(r["rows"] for r in records))
    cpu = {
        "cpu_ms_per_image": 1000 * sum(r["cpu_all"] for r in records) / n,
        "steady_cpu_ms_per_image": 1000 * sum(r["cpu_steady"] for r in records) / n,
    }
    return seconds, {r["asin"]: {h: np.asarray(r["p"][h], dtype=np.float32) for h in heads} for r in written}, cpu


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
