"""The scoring job's input: the catalog, every row tagged as a candidate, skipped or an error.

Columns of :func:`tag_catalog`'s result: ``asin``, ``image_uri``, ``product_type``, ``status``
(``candidate`` / ``skipped`` / ``error``), ``stage``, ``reason`` and ``message`` (for errors). Every
catalog row appears exactly once; nothing is counted here (the job counts in one pass).

Checks, in order (a row gets the first that applies):

* ``skipped``: ``product_type`` not in ``score.product_types`` (compared trimmed, case-insensitive;
  an empty list keeps every row). Not an error: the summary counts these rows per product type.
* ``missing_asin``: asin null or blank.
* ``duplicate_asin``: a second row of an asin (the kept row: one with an image_uri, then the first
  by image_uri) -- the label job's rule and reason code.
* ``missing_image_uri``: image_uri null or blank.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from softlines_attr.io.tables import read_table, require_columns
from softlines_attr.labels.contract import check_text_columns, trim_space
from softlines_attr.row_checks import first_failing

log = logging.getLogger(__name__)

STAGE = "catalog"
CATALOG_COLUMNS = {"asin": "string", "image_uri": "string", "product_type": "string"}
OPTIONAL_COLUMNS = frozenset({"product_type"})
REASONS = ("missing_asin", "duplicate_asin", "missing_image_uri")
TAGGED_COLUMNS = ("asin", "image_uri", "product_type", "status", "stage", "reason", "message")


def _blank(col: Column) -> Column:
    return col.isNull() | (trim_space(col) == "")


def read_catalog(spark: SparkSession, path: str, fmt: str | None = None) -> DataFrame:
    """The catalog's ``asin``, ``image_uri`` and ``product_type`` (null when the column is absent).

    Raises:
        InputFormatError: the path does not exist or has an unknown format.
        InputSchemaError: ``asin`` or ``image_uri`` is missing (naming the columns found), or a text
            column holds another type (a number, a boolean).
    """
    raw = read_table(spark, path, fmt)
    check_text_columns(raw, CATALOG_COLUMNS, source=path)  # a float asin would become "0.0": refused, not cast
    return require_columns(raw, CATALOG_COLUMNS, source=path, optional=OPTIONAL_COLUMNS)


def tag_catalog(catalog: DataFrame, product_types: Sequence[str]) -> DataFrame:
    """Tag every catalog row: candidate, skipped (product type) or error (with a reason code)."""
    asin = trim_space(F.col("asin"))
    uri = trim_space(F.col("image_uri"))  # every kind of whitespace: a URI ending in a newline is not "missing"
    df = catalog.select(asin.alias("asin"), uri.alias("image_uri"), F.col("product_type"))
    wanted = [t.strip().upper() for t in product_types]
    keep: Column = (
        F.lit(True) if not wanted else F.coalesce(F.upper(F.trim(F.col("product_type"))).isin(*wanted), F.lit(False))
    )
    # duplicates are ranked among the rows that are scored at all (a skipped row never shadows a dress)
    order = Window.partitionBy("asin", "_keep").orderBy(
        _blank(F.col("image_uri")).asc(), F.col("image_uri").asc_nulls_last()
    )
    df = (
        df.withColumn("_keep", keep)
        .withColumn("_rank", F.row_number().over(order))
        .withColumn("_count", F.count(F.lit(1)).over(Window.partitionBy("asin", "_keep")))
    )
    checks: list[tuple[Column, str, Column]] = [
        (_blank(F.col("asin")), "missing_asin", F.lit("asin is null or blank; expected a product id")),
        (
            F.col("_rank") > 1,
            "duplicate_asin",
            F.format_string(
                "asin %s appears %d times in the catalog; expected one row (the one scored has an image_uri, then "
                "the smallest image_uri)",
                F.col("asin"),
                F.col("_count"),
            ),
        ),
        (
            _blank(F.col("image_uri")),
            "missing_image_uri",
            F.lit("image_uri is null or blank; expected s3://bucket/key or a file path"),
        ),
    ]
    reason, message = first_failing(checks)
    reason = F.when(F.col("_keep"), reason)
    message = F.when(F.col("_keep"), message)
    status = (
        F.when(~F.col("_keep"), F.lit("skipped")).when(reason.isNotNull(), F.lit("error")).otherwise(F.lit("candidate"))
    )
    return df.select(
        "asin",
        "image_uri",
        "product_type",
        status.alias("status"),
        F.when(reason.isNotNull(), F.lit(STAGE)).alias("stage"),
        reason.alias("reason"),
        message.alias("message"),
    )
