"""The shard job's Parquet tables: their DDLs, and writing them with Spark (local) or from the tasks (S3).

``manifest/`` has one row per shard (:data:`MANIFEST_DDL`), ``record_index/`` one per record
(:data:`INDEX_DDL`); ``rejects/`` one per rejected input row (:data:`softlines_attr.shard.inputs.REJECT_DDL`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from pyspark.sql import DataFrame, SparkSession

from softlines_attr.config import PipelineConfig
from softlines_attr.io.commit import StagedOutput
from softlines_attr.io.storage import join_uri, storage_for

INDEX_DDL = (
    "asin string, split string, shard string, record_id long, offset long, width int, height int, "
    "passed_through boolean"
)
TASK_SHARD_DDL = (
    "shard string, idx string, split string, part int, seq int, records long, bytes long, sha256 string, "
    "idx_bytes long, idx_sha256 string, first_record_id long, last_record_id long"
)
MANIFEST_DDL = (
    TASK_SHARD_DDL
    + ", label_width int, label_pad float, image_size int, resize_mode string, mode string, num_classes int"
)


def schema_names(ddl: str) -> list[str]:
    """The column names of a DDL string, in order."""
    return [part.strip().split(" ")[0] for part in ddl.split(",")]


def to_arrow_parquet(rows: list[tuple], ddl: str) -> bytes:
    """Rows as a Parquet file (pyarrow), with the types of ``ddl``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(), "float": pa.float32()}
    fields = [pa.field(name, types[kind]) for name, kind in (p.strip().split(" ") for p in ddl.split(","))]
    schema = pa.schema(fields)
    columns = list(zip(*rows)) if rows else [[] for _ in fields]
    table = pa.Table.from_arrays([pa.array(list(col), type=f.type) for col, f in zip(columns, fields)], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_table(spark: SparkSession, staged: StagedOutput, name: str, rows_df: DataFrame, order: list[str]) -> None:
    """Stage table ``name`` with Spark (local and Hadoop outputs; S3 outputs use :func:`write_parts`)."""
    rows_df.coalesce(1).sortWithinPartitions(*order).write.mode("overwrite").parquet(staged.table_path(name))


def write_parts(rdd, table_uri: str, ddl: str, order: list[str], conf: PipelineConfig) -> None:
    """Write an RDD of row tuples as Parquet files ``part-NNNNN.parquet`` from the tasks (S3 outputs).

    Each task sorts and writes its own partition, so driver memory does not grow with the catalog; a
    retried task rewrites the same name. Part 0 is always written, so an empty table is readable.
    """
    names = schema_names(ddl)
    keys = [names.index(c) for c in order]
    shard = conf.shard
    options = {
        "threads": 1,
        "retries": shard.fetch_retries,
        "timeout_s": shard.fetch_timeout_s,
        "multipart_chunk_bytes": shard.multipart_chunk_bytes,
    }

    def write(index: int, rows: Iterable[tuple]) -> Iterator[int]:
        ordered = sorted((tuple(r) for r in rows), key=lambda r: tuple("" if r[k] is None else r[k] for k in keys))
        if ordered or index == 0:
            storage_for(table_uri, **options).write_bytes(
                join_uri(table_uri, f"part-{index:05d}.parquet"), to_arrow_parquet(ordered, ddl)
            )
        yield len(ordered)

    rdd.mapPartitionsWithIndex(write).sum()
