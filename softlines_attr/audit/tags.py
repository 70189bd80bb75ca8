"""The later human tags against the scored attributes: every tag row matched with the scored row it checks, or a
reject with a reason. Spark column expressions and joins only (no Python UDF).

Reasons, first failing check wins: ``missing_field`` (a null or blank asin, attribute or label),
``unknown_attribute`` (not in the taxonomy), ``unknown_class`` (not a class of the attribute), ``no_tag_date``
and ``before_since`` (with ``--since``), ``conflicting_tags`` (an asin tagged with different classes of one
attribute: all its rows), ``duplicate_tag`` (the same class again: every row but one), ``unknown_asin`` (the
scored table has no row for the asin), ``attribute_not_scored`` (the asin was scored, not for this attribute).
"""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from softlines_attr.audit.errors import AuditInputError
from softlines_attr.config import Taxonomy
from softlines_attr.io.tables import require_columns
from softlines_attr.row_checks import blank, first_failing

log = logging.getLogger(__name__)

#: The columns of the matched rows table (``matched/``): one row per tag that checks a scored row.
MATCHED_COLUMNS = ("asin", "attribute", "label", "value", "best", "confidence", "model_version")
#: The columns of the rejects table (``rejects/``).
REJECT_COLUMNS = ("asin", "attribute", "label", "reason", "message")
REASONS = (
    "missing_field",
    "unknown_attribute",
    "unknown_class",
    "no_tag_date",
    "before_since",
    "conflicting_tags",
    "duplicate_tag",
    "unknown_asin",
    "attribute_not_scored",
)


def read_tags(raw: DataFrame, source: str, *, date_column: str, since: dt.date | None) -> DataFrame:
    """The tags' ``asin``, ``attribute``, ``label`` (strings) and, with ``since``, ``tag_date`` (a date).

    Raises:
        InputSchemaError: a required column is missing.
        AuditInputError: ``since`` is given and the tags have no ``date_column`` (``audit.tagged_at_column``).
    """
    columns = {"asin": "string", "attribute": "string", "label": "string"}
    if since is None:
        return require_columns(raw, columns, source=source).withColumn("tag_date", F.lit(None).cast("date"))
    if date_column not in raw.columns:
        raise AuditInputError(
            f"--tags {source}: --since needs the tag date column {date_column!r} (conf audit.tagged_at_column); "
            f"found columns {raw.columns}"
        )
    tags = require_columns(raw, {**columns, date_column: "string"}, source=source)  # a date, timestamp or string
    return tags.select(*columns, F.to_date(F.col(date_column)).alias("tag_date"))


def scored_rows(attributes: DataFrame) -> DataFrame:
    """The scored table's ``asin``, ``attribute``, ``value`` (null = abstained), ``best`` (the top class, kept even
    when abstained), ``confidence`` and ``model_version``."""
    return attributes.select(
        "asin",
        "attribute",
        "value",
        F.col("top_k").getItem(0).getField("value").alias("best"),
        F.col("confidence").cast("float").alias("confidence"),
        "model_version",
    )


def match_tags(
    spark: SparkSession, tags: DataFrame, scored: DataFrame, taxonomy: Taxonomy, since: dt.date | None
) -> DataFrame:
    """Every tag row with its scored row's columns (null when none) and its reject ``reason`` / ``message`` (null
    for a row the audit counts)."""
    classes = spark.createDataFrame(
        [(a.name, c) for a in taxonomy.attributes for c in a.classes], "attribute string, _class string"
    ).withColumn("_known_class", F.lit(True))
    known_attributes = [a.name for a in taxonomy.attributes]
    df = tags.join(
        F.broadcast(classes), (tags["attribute"] == classes["attribute"]) & (tags["label"] == classes["_class"]), "left"
    ).drop(classes["attribute"])
    early: list[tuple[Column, str, Column]] = [
        (
            blank(F.col("asin")) | blank(F.col("attribute")) | blank(F.col("label")),
            "missing_field",
            F.lit("expected an asin, an attribute and a label, found a null or blank one"),
        ),
        (
            ~F.col("attribute").isin(*known_attributes),
            "unknown_attribute",
            F.format_string(f"expected one of the taxonomy's attributes {known_attributes}, found %s", "attribute"),
        ),
        (
            F.col("_known_class").isNull(),
            "unknown_class",
            F.format_string("expected a class of %s in the taxonomy, found %s", "attribute", "label"),
        ),
    ]
    if since is not None:
        early += [
            (F.col("tag_date").isNull(), "no_tag_date", F.lit("expected a tag date (for --since), found none")),
            (
                F.col("tag_date") < F.lit(since),
                "before_since",
                F.format_string(f"tagged on %s, before --since {since.isoformat()}", F.col("tag_date").cast("string")),
            ),
        ]
    reason, message = first_failing(early)
    df = df.withColumn("_early", reason).withColumn("_early_message", message)
    ok = F.col("_early").isNull()
    w = Window.partitionBy("asin", "attribute")
    df = df.withColumn("_labels", F.size(F.collect_set(F.when(ok, F.col("label"))).over(w))).withColumn(
        "_rank", F.row_number().over(w.orderBy(ok.desc(), F.col("label").asc_nulls_last()))
    )
    asins = scored.select(F.col("asin").alias("_scored_asin")).distinct()
    df = df.join(scored, ["asin", "attribute"], "left").join(asins, F.col("asin") == F.col("_scored_asin"), "left")
    later: list[tuple[Column, str, Column]] = [
        (~ok, "_early", F.col("_early_message")),
        (
            F.col("_labels") > 1,
            "conflicting_tags",
            F.format_string("expected one class of %s per asin, found %d different ones", "attribute", "_labels"),
        ),
        (
            F.col("_rank") > 1,
            "duplicate_tag",
            F.format_string("expected one %s tag per asin, found %s again", "attribute", "label"),
        ),
        (
            F.col("_scored_asin").isNull(),
            "unknown_asin",
            F.lit("expected an asin of the scored attributes table, found none scored"),
        ),
        (
            F.col("model_version").isNull(),
            "attribute_not_scored",
            F.format_string("expected a scored %s for the asin, found the asin scored without it", "attribute"),
        ),
    ]
    reason, message = first_failing(later)
    reason = F.when(reason == "_early", F.col("_early")).otherwise(reason)
    return df.select(*MATCHED_COLUMNS, reason.alias("reason"), message.alias("message"))
