"""The shard job's inputs as one tagged DataFrame: every input row, with a reject reason or none.

Candidates (reason null) have ``asin, parent_asin, image_uri, split, labels (array<int>)``; a refine
candidate's ``labels`` holds its one class index. Rejects have :data:`REJECT_COLUMNS`. Every input
row is exactly one of the two; nothing is counted here (the job counts everything in one pass).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, IntegralType

from softlines_attr.config import Attribute
from softlines_attr.io.tables import join_path, read_table, require_columns
from softlines_attr.labels.contract import check_labels_table
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


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _triage(df: DataFrame, checks: list[tuple[Column, str, Column]], stage: str, split_source: Column) -> DataFrame:
    """Tag each row with the first failing check's reason and message (null when all pass)."""
    reason: Column = F.lit(None).cast("string")
    message: Column = F.lit(None).cast("string")
    for cond, code, text in reversed(checks):
        reason = F.when(cond, F.lit(code)).otherwise(reason)
        message = F.when(cond, text).otherwise(message)
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
        (_blank(F.col("asin")), "no_asin", F.lit("expected an asin, found none")),
        (
            F.col("_rank") > 1,
            "duplicate_asin",
            F.format_string("expected one row per asin, found another row for %s", F.col("asin")),
        ),
        (_blank(F.col("image_uri")), "no_image_uri", F.lit("expected an image_uri, found none")),
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
    tagged = _triage(df, checks, "labels", F.lit("labels"))
    return Inputs(tagged, num_classes, {"vocab_size": vocab_size, "label_column": col})


def _hash_split(key: Column, seed: int, val_fraction: float) -> Column:
    bucket = F.pmod(F.xxhash64(F.lit(seed), key), F.lit(1_000_000)) / F.lit(1_000_000.0)
    return F.when(bucket < F.lit(val_fraction), F.lit("val")).otherwise(F.lit("train"))


def refine_inputs(
    spark: SparkSession,
    labels_dir: str,
    tags_path: str,
    attribute: Attribute,
    *,
    seed: int,
    val_fraction: float,
    catalog_path: str | None = None,
) -> Inputs:
    """Candidates and rejects for refine shards of one attribute (single class labels).

    The image and split come from the labels table by asin; an asin not there takes the split of
    its parent in the labels table, else a hash of its parent (or itself) with ``val_fraction``, so
    colour variants stay together. A tags table may carry its own ``image_uri`` (and ``parent_asin``);
    ``catalog_path`` (the catalog snapshot) supplies both for tagged asins the label job left out
    (e.g. for a title with no vocabulary word).

    Rejects: ``no_asin``, ``conflicting_labels`` (an asin tagged with different classes: all its
    rows), ``duplicate_tag`` (the same class again), ``unknown_label`` (not a class of the
    attribute), ``no_image_uri``.

    Raises:
        ShardInputError: when the tags table has no row for the attribute.
    """
    raw = read_table(spark, tags_path)
    tags = require_columns(
        raw,
        {"asin": "string", "attribute": "string", "label": "string", "image_uri": "string", "parent_asin": "string"},
        source=tags_path,
        optional=frozenset({"image_uri", "parent_asin"}),
    )
    tags = tags.filter(F.col("attribute") == attribute.name)
    if tags.isEmpty():
        found = sorted(r[0] for r in raw.select("attribute").distinct().limit(100).collect() if r[0] is not None)
        raise ShardInputError(
            f"{tags_path}: expected tags for attribute {attribute.name!r}, found none; attributes present: {found}"
        )
    classes = F.array(*[F.lit(c) for c in attribute.classes])
    w = Window.partitionBy("asin")
    df = (
        tags.withColumn("_index", F.array_position(classes, F.col("label")).cast("int") - 1)
        .withColumn("_n_labels", F.size(F.collect_set("label").over(w)))
        .withColumn("_rank", F.row_number().over(w.orderBy(F.col("label").asc_nulls_last())))
        .withColumn("labels", F.array(F.col("_index")))
    )
    df = _with_image_and_split(spark, df, labels_dir, catalog_path, seed=seed, val_fraction=val_fraction)
    checks: list[tuple[Column, str, Column]] = [
        (_blank(F.col("asin")), "no_asin", F.lit("expected an asin, found none")),
        (
            F.col("_n_labels") > 1,
            "conflicting_labels",
            F.format_string(
                f"expected one {attribute.name} class per asin, found %d different ones", F.col("_n_labels")
            ),
        ),
        (
            F.col("_rank") > 1,
            "duplicate_tag",
            F.format_string(f"expected one {attribute.name} tag per asin, found %s again", F.col("label")),
        ),
        (
            F.col("_index") < 0,
            "unknown_label",
            F.format_string(
                f"expected one of {list(attribute.classes)}, found %s", F.coalesce(F.col("label"), F.lit("null"))
            ),
        ),
        (
            _blank(F.col("image_uri")),
            "no_image_uri",
            F.lit("expected an image_uri (in the tags, the labels table or the catalog), found none"),
        ),
    ]
    tagged = _triage(df, checks, "tags", F.col("split_source"))
    return Inputs(tagged, len(attribute.classes), {"attribute": attribute.name, "classes": list(attribute.classes)})


def _with_image_and_split(
    spark: SparkSession, df: DataFrame, labels_dir: str, catalog_path: str | None, *, seed: int, val_fraction: float
) -> DataFrame:
    """Give rows of tagged asins (``asin``, ``image_uri``, ``parent_asin``, may be null) their image, parent and split.

    The image and split come from the labels table by asin; an asin not there takes the split of
    its parent in the labels table, else a hash of its parent (or itself) with ``val_fraction``, so
    colour variants stay together. The catalog (if given) supplies image and parent of asins the
    labels table lacks. Adds ``split`` and ``split_source`` (labels / parent / hash).
    """
    labels = read_labels(spark, labels_dir, None)
    by_asin = labels.groupBy("asin").agg(F.min(F.struct("image_uri", "parent_asin", "split")).alias("_l"))
    if catalog_path is not None:
        catalog = require_columns(
            read_table(spark, catalog_path),
            {"asin": "string", "parent_asin": "string", "image_uri": "string"},
            source=catalog_path,
            optional=frozenset({"parent_asin"}),
        ).filter(~_blank(F.col("image_uri")))
        by_catalog = catalog.groupBy("asin").agg(F.min(F.struct("image_uri", "parent_asin")).alias("_c"))
    else:
        by_catalog = spark.createDataFrame([], "asin string, _c struct<image_uri: string, parent_asin: string>")
    by_parent = (
        labels.filter(F.col("split").isin(*SPLITS))
        .groupBy(F.col("parent_asin").alias("_p"))
        .agg(F.min("split").alias("_p_split"))
    )
    return (
        df.join(by_asin, "asin", "left")
        .join(by_catalog, "asin", "left")
        .withColumn(
            "parent_asin",
            F.coalesce(
                F.nullif(F.col("parent_asin"), F.lit("")),
                F.col("_l.parent_asin"),
                F.col("_c.parent_asin"),
                F.col("asin"),
            ),
        )
        .join(by_parent, F.col("parent_asin") == F.col("_p"), "left")
        .withColumn(
            "split_source",
            F.when(F.col("_l.split").isin(*SPLITS), F.lit("labels"))
            .when(F.col("_p_split").isNotNull(), F.lit("parent"))
            .otherwise(F.lit("hash")),
        )
        .withColumn(
            "split",
            F.when(F.col("split_source") == "labels", F.col("_l.split"))
            .when(F.col("split_source") == "parent", F.col("_p_split"))
            .otherwise(_hash_split(F.col("parent_asin"), seed, val_fraction)),
        )
        .withColumn(
            "image_uri",
            F.coalesce(F.nullif(F.trim(F.col("image_uri")), F.lit("")), F.col("_l.image_uri"), F.col("_c.image_uri")),
        )
    )


def multi_inputs(
    spark: SparkSession,
    labels_dir: str,
    tags_path: str,
    attributes: Sequence[Attribute],
    *,
    seed: int,
    val_fraction: float,
    catalog_path: str | None = None,
) -> Inputs:
    """Candidates and rejects for multi shards: one row per tagged asin, one class index per attribute.

    The tags table is pivoted per asin: ``labels`` holds, for each of ``attributes`` in order, the
    asin's class index, or -1 when it has no usable tag for that attribute. A tag row is unusable
    (and counted in ``extra["tag_rows_dropped"]`` by reason, ``tag_rows_in = used + dropped``) when
    its attribute is not in the taxonomy (``unknown_attribute``), its label is not a class of the
    attribute (``unknown_label``), the asin has different classes for the attribute
    (``conflicting_labels``: all those rows) or repeats one (``duplicate_tag``), or it has no asin
    (``no_asin``). Image and split are found as for refine shards (:func:`refine_inputs`).

    The job's rows are asins: rows in = tagged asins (with an asin); rejects: ``no_usable_tag``
    (every tag of the asin dropped), ``no_image_uri``.

    Raises:
        ShardInputError: when the tags table has no row for any of the attributes.
    """
    raw = read_table(spark, tags_path)
    tags = require_columns(
        raw,
        {"asin": "string", "attribute": "string", "label": "string", "image_uri": "string", "parent_asin": "string"},
        source=tags_path,
        optional=frozenset({"image_uri", "parent_asin"}),
    )
    names = [a.name for a in attributes]
    if tags.filter(F.col("attribute").isin(*names)).isEmpty():
        found = sorted(r[0] for r in raw.select("attribute").distinct().limit(100).collect() if r[0] is not None)
        raise ShardInputError(
            f"{tags_path}: expected tags for at least one of the attributes {names}, found none; attributes "
            f"present: {found}"
        )
    index_of = F.create_map(
        *[v for a in attributes for i, c in enumerate(a.classes) for v in (F.lit(f"{a.name}/{c}"), F.lit(i))]
    )
    w = Window.partitionBy("asin", "attribute")
    reason = (
        F.when(_blank(F.col("asin")), F.lit("no_asin"))
        .when(~F.coalesce(F.col("attribute").isin(*names), F.lit(False)), F.lit("unknown_attribute"))
        .when(F.col("_index").isNull(), F.lit("unknown_label"))
        .when(F.col("_n_labels") > 1, F.lit("conflicting_labels"))
        .when(F.col("_rank") > 1, F.lit("duplicate_tag"))
    )
    rows = (
        tags.withColumn("_index", index_of[F.concat_ws("/", F.col("attribute"), F.col("label"))].cast("int"))
        .withColumn("_n_labels", F.size(F.collect_set("label").over(w)))
        .withColumn("_rank", F.row_number().over(w.orderBy(F.col("label").asc_nulls_last())))
        .withColumn("_reason", reason)
    )
    tally = {r["_reason"]: r["n"] for r in rows.groupBy("_reason").agg(F.count("*").alias("n")).collect()}
    usable = F.col("_reason").isNull()
    per_asin = (
        rows.filter(~_blank(F.col("asin")))
        .groupBy("asin")
        .agg(
            *[
                F.max(F.when(usable & (F.col("attribute") == name), F.col("_index"))).alias(f"_c{i}")
                for i, name in enumerate(names)
            ],
            F.min(F.nullif(F.trim(F.col("image_uri")), F.lit(""))).alias("image_uri"),
            F.min(F.nullif(F.col("parent_asin"), F.lit(""))).alias("parent_asin"),
            F.sum(usable.cast("int")).alias("_usable"),
        )
        .withColumn("labels", F.array(*[F.coalesce(F.col(f"_c{i}"), F.lit(-1)) for i in range(len(names))]))
    )
    df = _with_image_and_split(spark, per_asin, labels_dir, catalog_path, seed=seed, val_fraction=val_fraction)
    checks: list[tuple[Column, str, Column]] = [
        (
            F.col("_usable") == 0,
            "no_usable_tag",
            F.lit(f"expected at least one usable tag of {names}, found none (unknown labels, conflicts)"),
        ),
        (
            _blank(F.col("image_uri")),
            "no_image_uri",
            F.lit("expected an image_uri (in the tags, the labels table or the catalog), found none"),
        ),
    ]
    tagged = _triage(df, checks, "tags", F.col("split_source"))
    dropped = {k: int(v) for k, v in sorted((k, v) for k, v in tally.items() if k is not None)}
    extra = {
        "attributes": names,
        "classes": {a.name: list(a.classes) for a in attributes},
        "tag_rows_in": int(sum(tally.values())),
        "tag_rows_used": int(tally.get(None, 0)),
        "tag_rows_dropped": dropped,
    }
    return Inputs(tagged, sum(len(a.classes) for a in attributes), extra)
