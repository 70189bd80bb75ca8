"""The catalog input contract and the label job's output contract (version :data:`LABELS_CONTRACT_VERSION`).

* The **catalog** (read by the label job and the scoring job): text columns ``asin``, ``parent_asin``,
  ``title``, ``image_uri``, ``product_type``. A text column must hold text: an integer ``title`` cast
  to a string would tokenise to nothing (an empty vocabulary committed with exit 0), a float ``asin``
  would become ``"0.0"``. :func:`check_text_columns` refuses such a column with one clear error.
* The **label job's output** tables (:data:`LABELS_TABLES`): the column names and Spark SQL types the
  label job writes (:func:`conform`) and the shard job reads (:func:`check_labels_table`).

Keys are compared after :func:`trim_space`, which removes leading and trailing whitespace of every
kind (Spark's ``trim`` removes only spaces: a URI ending in a newline would be "missing").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from softlines_attr.errors import InputSchemaError

log = logging.getLogger(__name__)

LABELS_CONTRACT_VERSION = 1

#: Catalog column -> type; the label job needs all but the optional ones, the scoring job asin and image_uri.
CATALOG_COLUMNS: dict[str, str] = {
    "asin": "string",
    "parent_asin": "string",
    "title": "string",
    "image_uri": "string",
    "product_type": "string",
}
#: Spark types a text column may arrive as: a string, or a column of nulls only (JSON ``null`` everywhere).
TEXT_TYPES = frozenset({"string", "void"})

#: The label job's tables: name -> (column, Spark SQL type) in order. ``labels_<N>`` columns (one per
#: vocabulary size, ``labels_all`` for 0) follow ``split`` in the labels table.
LABELS_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "labels": (
        ("asin", "string"),
        ("parent_asin", "string"),
        ("image_uri", "string"),
        ("product_type", "string"),
        ("split", "string"),
    ),
    "vocabulary": (
        ("vocab_size", "int"),
        ("word", "string"),
        ("doc_freq", "bigint"),
        ("rank", "int"),
        ("label_index", "int"),
    ),
    "rejects": (
        ("asin", "string"),
        ("parent_asin", "string"),
        ("title", "string"),
        ("image_uri", "string"),
        ("product_type", "string"),
        ("stage", "string"),
        ("reason", "string"),
        ("message", "string"),
    ),
}
LABEL_ARRAY_TYPE = "array<int>"


#: Characters at either end that may let ``^\s+|\s+$`` match: Java's ``\s``, and the line terminators before
#: which ``$`` also matches (``"a \u2028"`` loses its space).
_TRIM_GUARD = " \t\n\x0b\f\r\u0085\u2028\u2029"


def trim_space(col: Column) -> Column:
    """``col`` without leading or trailing whitespace of any kind (spaces, tabs, newlines, carriage returns).

    The regular expression runs only on values whose first or last character is one of
    :data:`_TRIM_GUARD`: the same result, at a fraction of the CPU on clean keys. The guard looks at the
    two end characters only; a ``btrim`` with these characters (the guard before) walks the whole value
    and was 3 % of the 2M-title label job's JVM samples (a Java Flight Recorder profile).
    """
    guard = list(_TRIM_GUARD)
    at_edge = F.substring(col, 1, 1).isin(guard) | F.substring(col, -1, 1).isin(guard)
    return F.when(at_edge, F.regexp_replace(col, r"^\s+|\s+$", "")).otherwise(col)


#: The longest reject / error message kept; longer ones (a 3 MB title quoted whole) are cut, marked.
MESSAGE_MAX_CHARS = 500


def cap_message(col: Column, limit: int = MESSAGE_MAX_CHARS) -> Column:
    """``col`` cut to ``limit`` characters, ending in ``... (N characters)`` when it was longer."""
    keep = limit - 40
    return F.when(
        F.length(col) > limit,
        F.concat(F.substring(col, 1, keep), F.lit("... ("), F.length(col).cast("string"), F.lit(" characters)")),
    ).otherwise(col)


def check_text_columns(df: DataFrame, names: Iterable[str], *, source: str) -> None:
    """Refuse a text column that arrives with another type (a number, a boolean, a nested type).

    Raises:
        InputSchemaError: ``<source>: column 'title': expected string (text), found bigint ...``.
    """
    found = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    for name in names:
        kind = found.get(name)
        if kind is not None and kind not in TEXT_TYPES:
            raise InputSchemaError(
                f"{source}: column {name!r}: expected string (text), found {kind}; a {kind} would be cast to text "
                f"(a float asin becomes '0.0', a number title has no words): write the column as text"
            )


def check_labels_table(df: DataFrame, table: str, *, source: str, label_columns: Iterable[str] = ()) -> None:
    """Check a label-job table read back has the contract's columns and types (and the named ``labels_<N>`` columns).

    Raises:
        InputSchemaError: naming the first missing column or wrong type.
    """
    found = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    want: list[tuple[str, str]] = list(LABELS_TABLES[table]) + [(c, LABEL_ARRAY_TYPE) for c in label_columns]
    for name, kind in want:
        if name not in found:
            raise InputSchemaError(
                f"{source}: table {table}: expected column {name!r} ({kind}), found columns {sorted(found)}"
            )
        if found[name] != kind and not (kind == "string" and found[name] == "void"):
            raise InputSchemaError(f"{source}: table {table}: column {name!r}: expected {kind}, found {found[name]}")


def conform(df: DataFrame, table: str, label_columns: Iterable[str] = ()) -> DataFrame:
    """``df`` with exactly the contract's columns of ``table`` in order, cast to the contract's types (what the
    label job writes)."""
    want: list[tuple[str, str]] = list(LABELS_TABLES[table]) + [(c, LABEL_ARRAY_TYPE) for c in label_columns]
    missing = [n for n, _ in want if n not in df.columns]
    if missing:
        raise InputSchemaError(f"label job table {table}: expected columns {[n for n, _ in want]}, missing {missing}")
    return df.select(*[F.col(n).cast(t).alias(n) for n, t in want])


def describe() -> Mapping[str, object]:
    """The contract as JSON-ready values (for the label job's summary)."""
    return {
        "version": LABELS_CONTRACT_VERSION,
        "tables": {t: [list(c) for c in cols] for t, cols in LABELS_TABLES.items()},
    }
