"""What the scoring job wrote, from the Parquet footers alone: every file's columns and row count, no Spark job.

After its tables are written the job checks them without reading them back: each data file's footer
gives its schema (as the Arrow types Spark's Parquet reader maps to Spark SQL types) and its row
count, and a partitioned table's folder names give each file's partition value. The schema must be
the contract's (:func:`softlines_attr.score.schema.columns`, names and types in order, the partition
column last as Spark reads it back); the row counts, per partition value and in all, are compared by
the job with what it counted on the rows it wrote (a file too many, e.g. from a second task attempt,
or a file missing, shows as a difference).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from softlines_attr.io.commit import StagedOutput
from softlines_attr.score.errors import ScoreSchemaError
from softlines_attr.score.schema import columns, partition_by

log = logging.getLogger(__name__)

#: Footers read at once (on S3 each is a request or two: threads hide the latency).
FOOTER_THREADS = 16


@dataclass
class WrittenTable:
    """A written table's facts from its footers.

    Attributes:
        files: Data files.
        rows: Rows in all.
        rows_by_partition: Rows per value of the table's partition column (empty for an unpartitioned table).
    """

    files: int = 0
    rows: int = 0
    rows_by_partition: Counter = field(default_factory=Counter)


def spark_type(t: pa.DataType) -> str:
    """The Spark SQL type (``simpleString``) Spark's Parquet reader gives an Arrow type read from a Parquet file;
    a type Spark would not read back as the contract means it (e.g. INT96 or nanosecond timestamps) is named as
    Arrow names it, so it differs from every contract type."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    simple = {
        pa.float32(): "float",
        pa.float64(): "double",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.bool_(): "boolean",
        pa.binary(): "binary",
        pa.date32(): "date",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t) and t.unit == "us":
        return "timestamp" if t.tz is not None else "timestamp_ntz"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{spark_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return (
            "struct<" + ",".join(f"{t.field(i).name}:{spark_type(t.field(i).type)}" for i in range(t.num_fields)) + ">"
        )
    if pa.types.is_map(t):
        return f"map<{spark_type(t.key_type)},{spark_type(t.item_type)}>"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    return str(t)


def _partition_value(rel: str, column: str) -> str | None:
    """The ``column=<value>`` folder's value in a data file's path relative to its table (None: no such folder)."""
    for part in rel.split("/")[:-1]:
        name, sep, value = part.partition("=")
        if sep and name == column:
            return unquote(value)
    return None


def check_written_table(staged: StagedOutput, table: str, attributes: Sequence[str] = ()) -> WrittenTable:
    """Check every data file of staged ``table`` against the contract (names and types in order) from its footer;
    returns its row counts.

    A partitioned table's files hold the columns but the partition column, whose value is their folder's
    (``attribute=<a>/``); a file outside such folders (the job's one empty file when no row reached the table)
    holds every column.

    Raises:
        ScoreSchemaError: a file's columns are not the contract's (naming the file, both column lists), a
            partitioned file without its folder value, or a footer that cannot be read.
    """
    want = [(n, t.replace(" ", "")) for n, t in columns(table, attributes)]
    parts = partition_by(table)
    base = staged.table_path(table)
    files = staged.data_files(table)

    def footer(rel: str) -> tuple[str, pa.Schema, int]:
        try:
            with staged.fs.open_input_file(staged.data_file_path(table, rel)) as fh:
                meta = pq.read_metadata(fh)
        except (OSError, ValueError) as exc:
            raise ScoreSchemaError(
                f"table {table}: expected a readable Parquet file, found {rel} unreadable ({exc})"
            ) from None
        return rel, meta.schema.to_arrow_schema(), meta.num_rows

    with ThreadPoolExecutor(max_workers=max(1, min(FOOTER_THREADS, len(files)))) as pool:
        footers = list(pool.map(footer, files))
    out = WrittenTable(files=len(files))
    for rel, schema, rows in footers:
        got = [(f.name, spark_type(f.type)) for f in schema]
        values = {c: _partition_value(rel, c) for c in parts}
        if parts and all(v is not None for v in values.values()):
            got += [(c, "string") for c in parts]  # Spark reads a partition folder's value back as a string
            out.rows_by_partition[tuple(values[c] for c in parts)] += rows
        if got != want:
            raise ScoreSchemaError(f"table {table}: expected columns {want}, found {got} in {base}/{rel}")
        out.rows += rows
    return out
