"""The scoring benchmark's S3 arm: the same catalog with its photos behind a loopback S3 server.

Used by ``bench_score.py --s3-latency-ms``; holds no command of its own. :class:`s3_server.S3Server`
serves the cached catalog's folder as one bucket; this module

* writes the second catalog (:func:`write_s3_catalog`): the same rows, bad rows included, each
  ``image_uri`` rewritten to ``s3://<bucket>/<its path under the catalog folder>`` (the missing
  photo's key names no object, so the job errors it as ``missing`` as it does the missing file);
* gives the Python workers the server's endpoint and dummy credentials (:func:`worker_env`, what
  ``spark.executorEnv.*`` does on a cluster), and the driver the endpoint for the job's arm only
  (:func:`driver_endpoint`: the job reads ``AWS_ENDPOINT_URL_S3`` on the driver into its task spec);
* checks what each arm fetched (:func:`fetched_rows`) and the job's errors against the local run's
  (:func:`error_rows`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUCKET = "bench-photos"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def key_of(uri: str, root: Path) -> str:
    """The object key of a local photo path under the catalog folder ``root``.

    Raises:
        SystemExit: the path is not under ``root`` (the server could not serve it).
    """
    try:
        return Path(uri).resolve().relative_to(root).as_posix()  # resolved: the cache may be a symlink
    except ValueError:
        raise SystemExit(f"expected every image_uri under the catalog folder {root}, found {uri}") from None


def write_s3_catalog(catalog: Path, bucket: str = BUCKET) -> Path:
    """``catalog/catalog-s3.parquet``: ``catalog.parquet`` with every non-blank ``image_uri`` as an S3 URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = catalog.resolve()
    table = pq.read_table(catalog / "catalog.parquet")
    uris = table.column("image_uri").to_pylist()
    s3 = [f"s3://{bucket}/{key_of(u, root)}" if u and u.strip() else u for u in uris]
    out = catalog / "catalog-s3.parquet"
    column = table.schema.get_field_index("image_uri")
    pq.write_table(table.set_column(column, "image_uri", pa.array(s3, pa.string())), out)
    return out


def s3_rows(rows: list[tuple[str, str]], catalog: Path, bucket: str = BUCKET) -> list[tuple[str, str]]:
    """``(asin, image_uri)`` rows with their local paths as the S3 catalog's URIs."""
    root = catalog.resolve()
    return [(asin, f"s3://{bucket}/{key_of(uri, root)}") for asin, uri in rows]


def worker_env(spark, endpoint: str) -> None:
    """The server's endpoint and dummy credentials in the environment of every Python worker started from now on.

    Set once, before the first arm starts a Python worker: Spark keeps one pool of Python workers per
    environment, so every arm (local files or S3) then runs in the same, warm, workers.
    """
    env = spark.sparkContext.environment
    env.update(CREDENTIALS)
    env["AWS_ENDPOINT_URL_S3"] = endpoint


@contextmanager
def driver_endpoint(endpoint: str) -> Iterator[None]:
    """``AWS_ENDPOINT_URL_S3`` in the driver's environment for the block (the job passes it to its tasks)."""
    before = os.environ.get("AWS_ENDPOINT_URL_S3")
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    try:
        yield
    finally:
        if before is None:
            del os.environ["AWS_ENDPOINT_URL_S3"]
        else:
            os.environ["AWS_ENDPOINT_URL_S3"] = before


def fetched_rows(summary: dict) -> int:
    """The rows a scoring run fetched (one GET each when none is retried): scored, or errored while fetched or
    decoded."""
    stages = summary.get("errors_by_stage", {})
    return int(summary["rows_scored"]) + int(stages.get("fetch", 0)) + int(stages.get("decode", 0))


def error_rows(spark, out: Path) -> set[tuple[str, str, str]]:
    """(asin, stage, reason) of every row of a committed scoring run's ``errors`` table."""
    from softlines_attr.io.commit import resolve_current

    rows = spark.read.parquet(f"{resolve_current(str(out))}/errors").select("asin", "stage", "reason").collect()
    return {(r["asin"], r["stage"], r["reason"]) for r in rows}
