"""The scoring tables' versioned contract: ``contract/score_tables.json``, shipped with the package.

The job writes every table through :func:`conform`, which selects exactly the contract's columns, in
its order, cast to its types; :func:`fingerprint` is what the schema test pins per version (recorded in
``contract/schema_versions.json``), so the contract cannot change without its version changing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from softlines_attr.score.errors import ScoreSchemaError

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).resolve().parent / "contract"
SCHEMA_FILE = SCHEMA_DIR / "score_tables.json"
VERSIONS_FILE = SCHEMA_DIR / "schema_versions.json"
TABLES = ("attributes", "wide", "errors")
ATTRIBUTE_COLUMNS_MARK = "*"


@lru_cache(maxsize=1)
def load_contract() -> dict[str, Any]:
    """The parsed contract file (``version`` and ``tables``)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def schema_version() -> int:
    """The contract's version number (written to every run summary)."""
    return int(load_contract()["version"])


def fingerprint(contract: dict[str, Any] | None = None) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of the contract's ``tables``; a change of any
    column, type or doc changes it."""
    tables = (contract or load_contract())["tables"]
    return hashlib.sha256(json.dumps(tables, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def columns(table: str, attributes: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(name, Spark SQL type) of ``table``'s columns in order; wide's ``*`` expands to ``attributes``.

    Raises:
        ScoreSchemaError: for a table the contract does not define.
    """
    tables = load_contract()["tables"]
    if table not in tables:
        raise ScoreSchemaError(f"expected a table of {sorted(tables)}, found {table!r}")
    out: list[tuple[str, str]] = []
    for col in tables[table]["columns"]:
        if col["name"] == ATTRIBUTE_COLUMNS_MARK:
            out += [(a, col["type"]) for a in attributes]
        else:
            out.append((col["name"], col["type"]))
    return out


def ddl(table: str, attributes: Sequence[str] = ()) -> str:
    """The table's Spark DDL string (``name type, ...``)."""
    return ", ".join(f"`{n}` {t}" for n, t in columns(table, attributes))


def partition_by(table: str) -> list[str]:
    """The table's partition columns."""
    return list(load_contract()["tables"][table]["partition_by"])


def conform(df: DataFrame, table: str, attributes: Sequence[str] = ()) -> DataFrame:
    """``df`` with exactly the contract's columns of ``table``, in order, cast to the contract's types.

    Raises:
        ScoreSchemaError: when ``df`` lacks a contract column (naming the missing and found columns).
    """
    want = columns(table, attributes)
    found = set(df.columns)
    missing = [n for n, _ in want if n not in found]
    if missing:
        raise ScoreSchemaError(
            f"table {table}: expected columns {[n for n, _ in want]}, missing {missing}; found {sorted(found)}"
        )
    return df.select(*[F.col(f"`{n}`").cast(t).alias(n) for n, t in want])


def check_written(df: DataFrame, table: str, attributes: Sequence[str] = ()) -> None:
    """Check a written (read back) table has the contract's names and types, in order.

    Raises:
        ScoreSchemaError: naming the first difference.
    """
    want = [(n, t.replace(" ", "")) for n, t in columns(table, attributes)]
    got = [(f.name, f.dataType.simpleString().replace(" ", "")) for f in df.schema.fields]
    if got != want:
        raise ScoreSchemaError(f"table {table}: expected columns {want}, found {got}")
