"""Reading input tables and committing output tables whole.

Every job writes its tables to ``<out>/_staging/<run_id>/<name>`` first and only then moves them
into ``<out>/<name>``; the run summary ``<out>/_summary.json`` is removed before the first move and
written after the last, so a reader that checks for it never sees a half-replaced output, and a run
that fails before the commit leaves the previous outputs as they were. Paths starting with ``_`` are
ignored by Spark's readers, so a crashed run's staging folder is invisible to them.

Local paths use ``os``/``shutil``; other URIs (``hdfs://``, ``s3://`` on EMR) use the Hadoop
FileSystem of the running Spark session.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from softlines_attr.errors import InputFormatError, InputSchemaError, OutputCommitError

log = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"
STAGING_DIR = "_staging"

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
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


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
            raise InputFormatError(f"input folder {path} holds no .parquet, .jsonl or .csv files; found {sorted(suffixes)}")
        raise InputFormatError(f"input {path} has suffix {suffix!r}; expected .parquet, .jsonl, .json or .csv (or --input-format)")
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
        return spark.read.parquet(path)
    if kind == "json":
        return spark.read.option("mode", "PERMISSIVE").json(path)
    return spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(path)


def require_columns(df: DataFrame, columns: dict[str, str], *, source: str, optional: frozenset[str] = frozenset()) -> DataFrame:
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


class _Fs:
    """The few file operations a commit needs, on local paths or through Hadoop's FileSystem."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.local = is_local(root)
        if not self.local:
            jvm = spark.sparkContext._jvm
            self._Path = jvm.org.apache.hadoop.fs.Path
            self._fs = self._Path(root).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return _local(path).exists() if self.local else bool(self._fs.exists(self._Path(path)))

    def delete(self, path: str) -> None:
        if self.local:
            p = _local(path)
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        else:
            self._fs.delete(self._Path(path), True)

    def rename(self, src: str, dst: str) -> None:
        if self.local:
            os.replace(_local(src), _local(dst))
        elif not self._fs.rename(self._Path(src), self._Path(dst)):
            raise OutputCommitError(f"could not rename {src} to {dst}")

    def write_text(self, path: str, text: str) -> None:
        if self.local:
            _local(path).parent.mkdir(parents=True, exist_ok=True)
            _local(path).write_text(text, encoding="utf-8")
        else:
            stream = self._fs.create(self._Path(path), True)
            try:
                stream.write(bytearray(text.encode("utf-8")))
            finally:
                stream.close()

    def is_empty_dir(self, path: str) -> bool:
        if self.local:
            p = _local(path)
            return p.is_dir() and not any(p.iterdir())
        return len(self._fs.listStatus(self._Path(path))) == 0


def join_path(root: str, *parts: str) -> str:
    """Join path parts onto a local path or a URI with ``/``."""
    return "/".join([root.rstrip("/"), *parts])


class StagedOutput:
    """Stage a job's tables under ``<out>/_staging/<run_id>/`` and commit them together.

    Usage::

        staged = StagedOutput(spark, out_dir, run_id)
        df.write.parquet(staged.table_path("labels"))
        staged.commit(summary)   # replaces <out>/labels, then writes <out>/_summary.json
    """

    def __init__(self, spark: SparkSession, out_dir: str, run_id: str) -> None:
        self.out_dir = out_dir.rstrip("/")
        self.run_id = run_id
        self.staging = join_path(self.out_dir, STAGING_DIR, run_id)
        self._fs = _Fs(spark, self.out_dir)
        self._tables: list[str] = []

    def table_path(self, name: str) -> str:
        """Where to write table ``name`` for this run (registers it for the commit)."""
        if "/" in name or name.startswith(("_", ".")):
            raise ValueError(f"table name {name!r}: expected a plain name not starting with '_' or '.'")
        if name not in self._tables:
            self._tables.append(name)
        return join_path(self.staging, name)

    def commit(self, summary: dict[str, Any]) -> str:
        """Move every staged table into place, then write the summary; returns the summary's path.

        Raises:
            OutputCommitError: when a staged table is missing or a move fails.
        """
        for name in self._tables:
            if not self._fs.exists(join_path(self.staging, name)):
                raise OutputCommitError(f"staged table {name!r} was not written to {join_path(self.staging, name)}")
        summary_path = join_path(self.out_dir, SUMMARY_FILE)
        self._fs.delete(summary_path)  # from here on the output does not look complete
        for name in self._tables:
            final = join_path(self.out_dir, name)
            if self._fs.exists(final):
                old = join_path(self.staging, f"_old_{name}")
                self._fs.rename(final, old)
            self._fs.rename(join_path(self.staging, name), final)
        tmp = join_path(self.staging, "_summary.json.tmp")
        self._fs.write_text(tmp, json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        self._fs.rename(tmp, summary_path)
        self._fs.delete(self.staging)
        staging_root = join_path(self.out_dir, STAGING_DIR)
        if self._fs.is_empty_dir(staging_root):
            self._fs.delete(staging_root)
        log.info("committed %s to %s", self._tables, self.out_dir)
        return summary_path

    def abort(self) -> None:
        """Remove this run's staging folder (the previous outputs are untouched)."""
        self._fs.delete(self.staging)
