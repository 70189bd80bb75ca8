"""The shard job's inputs as one tagged DataFrame: every input row, with a reject reason or none.

Candidates (reason null) have ``asin, parent_asin, image_uri, split, labels (array<int>)``; a refine
candidate's ``labels`` holds its one class index. Rejects have :data:`REJECT_COLUMNS`. Every input
row is exactly one of the two; nothing is counted here (the job counts everything in one pass).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, IntegralType

from softlines_attr.io.tables import join_path, read_table, require_columns
from softlines_attr.labels.contract import check_labels_table
from softlines_attr.row_checks import blank, first_failing
from softlines_attr.shard.errors import ShardInputError

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
REJECT_COLUMNS = ("asin", "image_uri", "split", "stage", "reason", "message")
REJECT_DDL = "asin string, image_uri string, split string, stage string, reason string, message string"
CANDIDATE_COLUMNS = ("asin", "parent_asin", "image_uri", "split", "labels")
TAGGED_COLUMNS = (*CANDIDATE_COLUMNS, "split_source", "stage", "reason", "message")


@dataclass(frozen=True)
class Inputs:
    """What the job shards: every input row once, tagged with its reject reason (null = a candidate).

    Attributes:
        tagged: Columns :data:`TAGGED_COLUMNS`: the candidate columns plus ``split_source``
            (labels / parent / hash), ``stage``, ``reason`` and ``message`` (null reason = a candidate).
        num_classes: Vocabulary size (base) or number of classes (refine).
        extra: Mode-specific facts for the run summary.
    """

    tagged: DataFrame
    num_classes: int
    extra: dict


def candidates_of(tagged: DataFrame) -> DataFrame:
    """The rows to shard: those without a reject reason."""
    return tagged.filter(F.col("reason").isNull())


def rejects_of(tagged: DataFrame) -> DataFrame:
    """The input-level reject rows (columns :data:`REJECT_COLUMNS`)."""
    return tagged.filter(F.col("reason").isNotNull()).select(*REJECT_COLUMNS)


def labels_column(vocab_size: int) -> str:
    """The labels-table column for a vocabulary size: ``labels_<N>``, or ``labels_all`` for 0."""
    return "labels_all" if vocab_size == 0 else f"labels_{vocab_size}"


def triage(df: DataFrame, checks: list[tuple[Column, str, Column]], stage: str, split_source: Column) -> DataFrame:
    """Tag each row with the first failing check's reason and message (null when all pass)."""
    reason, message = first_failing(checks)
    return df.select(
        *CANDIDATE_COLUMNS,
        split_source.alias("split_source"),
        F.lit(stage).alias("stage"),
        reason.alias("reason"),
        message.alias("message"),
    )


def read_labels(spark: SparkSession, labels_dir: str, label_col: str | None) -> DataFrame:
    """The labels table with the columns the shard job uses (``labels`` = ``label_col`` if given).

    Raises:
        InputSchemaError: when a required column is missing or of the wrong type.
    """
    path = join_path(labels_dir, "labels")
    raw = read_table(spark, path)
    check_labels_table(raw, "labels", source=path)  # the label job's contract (softlines_attr.labels.contract)
    cols = {"asin": "string", "parent_asin": "string", "image_uri": "string", "split": "string"}
    df = require_columns(raw, cols, source=path)
    if label_col is None:
        return df
    fields = {f.name: f.dataType for f in raw.schema.fields}
    found = fields.get(label_col)
    if found is None:
        have = sorted(c for c in fields if c.startswith("labels_"))
        raise ShardInputError(
            f"{path}: expected a column {label_col!r} of array<int> label indices, found label columns {have}"
        )
    if not (isinstance(found, ArrayType) and isinstance(found.elementType, IntegralType)):
        raise ShardInputError(f"{path}: column {label_col!r}: expected array<int>, found {found.simpleString()}")
    return require_columns(
        raw.withColumn("labels", F.col(label_col).cast("array<int>")), {**cols, "labels": "array<int>"}, source=path
    )


def vocabulary_classes(spark: SparkSession, labels_dir: str, vocab_size: int) -> int:
    """The number of label indices of vocabulary ``vocab_size`` (max label_index + 1).

    Raises:
        ShardInputError: when the vocabulary table has no rows for ``vocab_size``.
    """
    path = join_path(labels_dir, "vocabulary")
    raw = read_table(spark, path)
    check_labels_table(raw, "vocabulary", source=path)
    vocab = require_columns(raw, {"vocab_size": "int", "label_index": "int"}, source=path)
    row = (
        vocab.filter(F.col("vocab_size") == vocab_size)
        .agg(F.count("*").alias("n"), F.max("label_index").alias("top"))
        .first()
    )
    if row is None or not row["n"]:
        sizes = sorted(r[0] for r in vocab.select("vocab_size").distinct().collect())
        raise ShardInputError(f"{path}: expected words for vocab_size {vocab_size}, found vocab sizes {sizes}")
    return int(row["top"]) + 1


def base_inputs(spark: SparkSession, labels_dir: str, vocab_size: int, label_width: int) -> Inputs:
    """Candidates and rejects for base-model shards (title-word label arrays).

    Rejects: ``no_asin``, ``duplicate_asin`` (all but the first row of an asin), ``no_image_uri``,
    ``bad_split``, ``no_labels`` (empty for this vocabulary), ``bad_label`` (an index outside the
    vocabulary) and ``too_many_labels`` (more than a fixed ``label_width``).
    """
    col = labels_column(vocab_size)
    num_classes = vocabulary_classes(spark, labels_dir, vocab_size)
    df = read_labels(spark, labels_dir, col)
    rank = F.row_number().over(
        Window.partitionBy("asin").orderBy(F.col("image_uri").asc_nulls_last(), "split", "parent_asin")
    )
    df = df.withColumn("_rank", rank)
    checks: list[tuple[Column, str, Column]] = [
        (blank(F.col("asin")), "no_asin", F.lit("expected an asin, found none")),
        (
            F.col("_rank") > 1,
            "duplicate_asin",
            F.format_string("expected one row per asin, found another row for %s", F.col("asin")),
        ),
        (blank(F.col("image_uri")), "no_image_uri", F.lit("expected an image_uri, found none")),
        (
            ~F.coalesce(F.col("split").isin(*SPLITS), F.lit(False)),
            "bad_split",
            F.format_string("expected split train or val, found %s", F.coalesce(F.col("split"), F.lit("null"))),
        ),
        (
            F.coalesce(F.size("labels"), F.lit(-1)) <= 0,
            "no_labels",
            F.lit(f"expected at least one label in {col}, found none (no title word in this vocabulary)"),
        ),
        (
            F.exists("labels", lambda x: x.isNull() | (x < 0) | (x >= num_classes)),
            "bad_label",
            F.format_string(
                f"expected label indices in [0, {num_classes}), found %s",
                F.array_join(F.col("labels").cast("array<string>"), ",", "null"),
            ),
        ),
    ]
    if label_width > 0:
        checks.append(
            (
                F.size("labels") > label_width,
                "too_many_labels",
                F.format_string(
                    f"expected at most {label_width} labels (shard.label_width), found %d", F.size("labels")
                ),
            )
        )
    tagged = triage(df, checks, "labels", F.lit("labels"))
    return Inputs(tagged, num_classes, {"vocab_size": vocab_size, "label_column": col})
