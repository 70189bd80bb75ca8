"""Reading input tables: format detection, readers, required columns.

Writing and committing outputs is :mod:`softlines_attr.io.commit` (immutable run folders and one
pointer); a reader of a job's output first calls :func:`softlines_attr.io.commit.resolve_current`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from softlines_attr.errors import InputFormatError, InputSchemaError

log = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"

_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
}


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def is_local(path: str) -> bool:
    """True for a plain path or a ``file://`` URI."""
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def detect_format(path: str, fmt: str | None = None) -> str:
    """The reader for ``path``: ``fmt`` if given, else by suffix; a local folder of ``.parquet`` files is Parquet.

    Raises:
        InputFormatError: when the path does not exist (locally) or no reader handles its suffix.
    """
    if fmt:
        fmt = {"jsonl": "json", "ndjson": "json"}.get(fmt, fmt)
        if fmt not in ("parquet", "json", "csv"):
            raise InputFormatError(f"input format {fmt!r} is not supported; expected parquet, jsonl or csv")
        return fmt
    suffix = Path(urlparse(path).path.rstrip("/")).suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        if is_local(path) and not _local(path).exists():
            raise InputFormatError(f"input {path} does not exist")
        return _SUFFIX_FORMATS[suffix]
    if is_local(path):
        local = _local(path)
        if not local.exists():
            raise InputFormatError(f"input {path} does not exist")
        if local.is_dir():
            suffixes = {p.suffix.lower() for p in local.iterdir() if p.is_file() and not p.name.startswith(("_", "."))}
            for suf in (".parquet", ".jsonl", ".json", ".csv"):
                if suf in suffixes:
                    return _SUFFIX_FORMATS[suf]
            raise InputFormatError(
                f"input folder {path} holds no .parquet, .jsonl or .csv files; found {sorted(suffixes)}"
            )
        raise InputFormatError(
            f"input {path} has suffix {suffix!r}; expected .parquet, .jsonl, .json or .csv (or --input-format)"
        )
    return "parquet"  # a remote folder without a suffix: Parquet, as every table this project writes


def read_table(spark: SparkSession, path: str, fmt: str | None = None) -> DataFrame:
    """Read a Parquet, JSON Lines or CSV table (CSV with a header row; every column a string).

    Args:
        spark: The active session.
        path: A file or folder, local or a Hadoop URI.
        fmt: ``parquet``, ``jsonl``/``json`` or ``csv``; by default from the suffix.

    Returns:
        The DataFrame as read (column checks are the caller's, see :func:`require_columns`).
    """
    kind = detect_format(path, fmt)
    log.info("reading %s as %s", path, kind)
    if kind == "parquet":
        return read_parquet(spark, path, what="input")
    if kind == "json":
        return spark.read.option("mode", "PERMISSIVE").json(path)
    return spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(path)


def spark_error_line(exc: BaseException, limit: int = 300) -> str:
    """The innermost cause of a Spark / Py4J error as one line of at most ``limit`` characters."""
    java = getattr(exc, "java_exception", None)
    text = ""
    while java is not None:
        try:
            text = str(java.toString())
            java = java.getCause()
        except Exception:  # noqa: BLE001 - a broken Py4J handle: keep what we have
            break
    text = text or str(exc)
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_parquet(spark: SparkSession, path: str, *, what: str = "input") -> DataFrame:
    """``spark.read.parquet(path)``, with a missing or unreadable (corrupt, not Parquet) input as one clear error.

    Spark reads the footers (the schema) here; a file whose footer is fine but whose pages are broken
    fails later, in the task that reads it.

    Raises:
        InputFormatError: ``<what> <path>: expected ...`` naming what was found.
    """
    from py4j.protocol import Py4JError
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc).lower():
            raise InputFormatError(f"{what} {path}: expected a Parquet file or folder, found nothing there") from None
        raise InputFormatError(
            f"{what} {path}: expected a readable Parquet table, found: {spark_error_line(exc)}"
        ) from None
    except Py4JError as exc:
        raise InputFormatError(
            f"{what} {path}: expected a readable Parquet table, found an unreadable file: {spark_error_line(exc)}"
        ) from None


def require_columns(
    df: DataFrame, columns: dict[str, str], *, source: str, optional: frozenset[str] = frozenset()
) -> DataFrame:
    """Select ``columns`` (name -> Spark SQL type) from ``df``, casting where the type differs.

    A column in ``optional`` that is missing becomes a null column.

    Raises:
        InputSchemaError: naming the missing columns and the columns found.
    """
    found = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    missing = [c for c in columns if c not in found and c not in optional]
    if missing:
        raise InputSchemaError(
            f"{source}: missing column(s) {missing}; expected columns {list(columns)}, found {sorted(found)}"
        )
    cols = []
    for name, sql_type in columns.items():
        if name not in found:
            cols.append(F.lit(None).cast(sql_type).alias(name))
        elif found[name] == sql_type:
            cols.append(F.col(name))
        elif found[name].startswith(("struct", "array", "map")):
            raise InputSchemaError(f"{source}: column {name!r}: expected {sql_type}, found {found[name]}")
        else:
            cols.append(F.col(name).cast(sql_type).alias(name))
    return df.select(*cols)


def join_path(root: str, *parts: str) -> str:
    """Join path parts onto a local path or a URI with ``/``."""
    return "/".join([root.rstrip("/"), *parts])
