"""The shard job's inputs from human tags: refine (one attribute) and multi (every attribute, pivoted per asin).

Tags are joined to the labels table (image and split); a tagged product the labels table lacks gets
its image from the catalog and a split hashed from its parent; every tag row dropped (conflicting,
duplicate, unknown label or attribute) is counted and every unusable row is a reject. The base
(title-word) inputs are :func:`softlines_attr.shard.inputs.base_inputs`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from softlines_attr.config import Attribute
from softlines_attr.io.tables import read_table, require_columns
from softlines_attr.row_checks import blank
from softlines_attr.shard.errors import ShardInputError
from softlines_attr.shard.inputs import SPLITS, Inputs, read_labels, triage

log = logging.getLogger(__name__)


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
        (blank(F.col("asin")), "no_asin", F.lit("expected an asin, found none")),
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
            blank(F.col("image_uri")),
            "no_image_uri",
            F.lit("expected an image_uri (in the tags, the labels table or the catalog), found none"),
        ),
    ]
    tagged = triage(df, checks, "tags", F.col("split_source"))
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
        ).filter(~blank(F.col("image_uri")))
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
        F.when(blank(F.col("asin")), F.lit("no_asin"))
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
        rows.filter(~blank(F.col("asin")))
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
            blank(F.col("image_uri")),
            "no_image_uri",
            F.lit("expected an image_uri (in the tags, the labels table or the catalog), found none"),
        ),
    ]
    tagged = triage(df, checks, "tags", F.col("split_source"))
    dropped = {k: int(v) for k, v in sorted((k, v) for k, v in tally.items() if k is not None)}
    extra = {
        "attributes": names,
        "classes": {a.name: list(a.classes) for a in attributes},
        "tag_rows_in": int(sum(tally.values())),
        "tag_rows_used": int(tally.get(None, 0)),
        "tag_rows_dropped": dropped,
    }
    return Inputs(tagged, sum(len(a.classes) for a in attributes), extra)
