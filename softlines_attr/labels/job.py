"""The label job: catalog -> title-word vocabularies -> weak multi-labels per ASIN, with rejects.

Data flow (one shuffle of the catalog by ASIN; everything per ASIN after it is partition-local)::

    catalog --clean--> repartition(asin) --dedupe, tokens, reject reasons--> rows (persisted)
    rows[ok] --explode distinct words--> doc_freq per word --rank--> vocabulary (every size)
    rows[ok] --each word looked up in one map literal of the vocabulary--> labels_<size> arrays (same partitions)
    labels, vocabulary, rejects --StagedOutput--> <out>/runs/<run_id>/{labels,vocabulary,rejects}, _summary.json,
                                                  then <out>/_current.json names the run (the commit)

Nothing is collected to the driver but counts. Every input row ends in exactly one of ``labels``
or ``rejects``; the summary checks rows in = rows labelled + rows rejected.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from softlines_attr import __version__
from softlines_attr.config import LabelsConfig, PipelineConfig, config_to_dict
from softlines_attr.errors import SoftlinesAttrError
from softlines_attr.io.commit import StagedOutput
from softlines_attr.io.tables import new_run_id, read_table, require_columns
from softlines_attr.labels.contract import CATALOG_COLUMNS as CATALOG_CONTRACT
from softlines_attr.labels.contract import cap_message, check_labels_table, check_text_columns, trim_space
from softlines_attr.labels.tokenize import title_tokens
from softlines_attr.labels.vocabulary import (
    document_frequency,
    has_label_word,
    label_arrays,
    labels_column,
    rank_words,
    vocabularies,
    vocabulary_words,
)
from softlines_attr.row_checks import blank

log = logging.getLogger(__name__)

STAGE = "labels"
CATALOG_COLUMNS = CATALOG_CONTRACT  # softlines_attr.labels.contract: the catalog's text columns
OPTIONAL_CATALOG_COLUMNS = frozenset({"parent_asin", "product_type"})

# Reject reason codes of this stage, in the order they are checked (a row gets the first that applies).
REASONS = (
    "missing_asin",
    "duplicate_asin",
    "empty_title",
    "missing_image_uri",
    "no_title_words",
    "no_vocab_words",
)


class AccountingError(SoftlinesAttrError):
    """Rows in != rows labelled + rows rejected: a bug, never a data problem."""


class EmptyLabelsError(SoftlinesAttrError):
    """A run that labels no row would replace labels that had rows (refused unless ``allow_empty``)."""


@dataclass(frozen=True)
class LabelJobResult:
    """What a label run produced: the output folder, the committed version's folder and its summary."""

    out_dir: str
    summary: dict[str, Any]
    version_dir: str = ""


def clean_catalog(catalog: DataFrame, *, source: str = "catalog") -> DataFrame:
    """Select and type the catalog columns; trim keys; a null/blank parent_asin becomes the asin.

    Raises:
        InputSchemaError: when ``asin``, ``title`` or ``image_uri`` is missing, or a text column is not text.
    """
    check_text_columns(catalog, CATALOG_COLUMNS, source=source)  # an int64 title or a float asin is refused, not cast
    df = require_columns(catalog, CATALOG_COLUMNS, source=source, optional=OPTIONAL_CATALOG_COLUMNS)
    asin = trim_space(F.col("asin"))
    return df.select(
        asin.alias("asin"),
        F.when(blank(F.col("parent_asin")), asin).otherwise(trim_space(F.col("parent_asin"))).alias("parent_asin"),
        F.col("title"),
        trim_space(F.col("image_uri")).alias("image_uri"),
        F.col("product_type"),
    )


def assign_split(parent_asin: Column, val_fraction: float, seed: int) -> Column:
    """``'val'`` for a ``val_fraction`` share of parents by a seeded hash, else ``'train'``.

    Every variant of a parent gets the same split, so colour variants never straddle it.
    """
    bucket = F.pmod(F.xxhash64(F.lit(seed), parent_asin), F.lit(1_000_000))
    return F.when(bucket < F.lit(int(round(val_fraction * 1_000_000))), F.lit("val")).otherwise(F.lit("train"))


def tokenize_catalog(catalog: DataFrame, conf: LabelsConfig, *, seed: int, partitions: int) -> DataFrame:
    """Clean rows -> one row per input row with ``tokens``, ``split`` and a reject ``reason`` (or null).

    The catalog is hash-partitioned by ASIN once here; the duplicate check and every later per-ASIN
    step reuse that partitioning without another shuffle.
    """
    # the kept duplicate is the most usable row, then the first by image_uri/title/parent: deterministic
    order = Window.partitionBy("asin").orderBy(
        blank(F.col("title")).asc(),
        blank(F.col("image_uri")).asc(),
        F.col("image_uri").asc_nulls_last(),
        F.col("title").asc_nulls_last(),
        F.col("parent_asin").asc_nulls_last(),
    )
    df = (
        catalog.repartition(partitions, "asin")
        # the rank and the group's size over the same ordered window: one Window operator, one pass over each group
        .select(
            "*",
            F.row_number().over(order).alias("_dup_rank"),
            F.count(F.lit(1))
            .over(order.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing))
            .alias("_dup_count"),
        )
        .withColumn("tokens", title_tokens(F.col("title"), conf))
        .withColumn("split", assign_split(F.col("parent_asin"), conf.val_fraction, seed))
    )
    reason = (
        F.when(blank(F.col("asin")), F.lit("missing_asin"))
        .when(F.col("_dup_rank") > 1, F.lit("duplicate_asin"))
        .when(blank(F.col("title")), F.lit("empty_title"))
        .when(blank(F.col("image_uri")), F.lit("missing_image_uri"))
        .when(F.size("tokens") == 0, F.lit("no_title_words"))
    )
    message = (
        F.when(blank(F.col("asin")), F.lit("asin is null or blank; expected a product id"))
        .when(
            F.col("_dup_rank") > 1,
            F.format_string(
                "asin %s appears %d times in the catalog; one row is kept", F.col("asin"), F.col("_dup_count")
            ),
        )
        .when(blank(F.col("title")), F.lit("title is null or blank; expected the product title"))
        .when(blank(F.col("image_uri")), F.lit("image_uri is null or blank; expected s3://bucket/key or a file path"))
        .when(
            F.size("tokens") == 0,
            F.format_string(
                "title %s has no label word after tokenisation (only numbers, sizes or stop words)",
                F.to_json(F.array(F.substring(F.col("title"), 1, 200))),
            ),
        )
    )
    return df.withColumn("reason", reason).withColumn("message", message).drop("_dup_rank", "_dup_count")


def _rejects_frame(df: DataFrame) -> DataFrame:
    return df.select(
        "asin",
        "parent_asin",
        "title",
        "image_uri",
        "product_type",
        F.lit(STAGE).alias("stage"),
        "reason",
        cap_message(F.col("message")).alias("message"),
    )


@dataclass(frozen=True)
class LabelFrames:
    """The label job's output frames, plus the persisted intermediates to release after writing."""

    labels: DataFrame
    vocabulary: DataFrame
    rejects: DataFrame
    rows: DataFrame
    cached: tuple[DataFrame, ...]

    def unpersist(self) -> None:
        for df in self.cached:
            df.unpersist()


def build_labels(catalog: DataFrame, conf: PipelineConfig, *, partitions: int) -> LabelFrames:
    """The label job's logic without I/O.

    ``rows`` holds every input row, tokenised, with its first reject reason (null when it goes on to
    label assignment); ``labels`` and ``rejects`` partition the input rows between them.
    """
    lab = conf.labels
    tokenized = tokenize_catalog(clean_catalog(catalog), lab, seed=conf.seed, partitions=partitions)
    tokenized = tokenized.persist(StorageLevel.MEMORY_AND_DISK)
    ok = tokenized.filter(F.col("reason").isNull())
    ranked = rank_words(document_frequency(ok, count_by_parent=lab.count_by_parent), min_doc_freq=lab.min_doc_freq)
    ranked = ranked.persist(StorageLevel.MEMORY_AND_DISK)
    vocab = vocabularies(ranked, lab.vocab_sizes)

    # the labels: column expressions on the cached rows (one map literal of the words, no Python, no second cache);
    # a row with no vocabulary word is found by a lookup that stops at its first hit, and becomes a reject
    words = vocabulary_words(ranked, lab.vocab_sizes)
    has_words = has_label_word(F.col("tokens"), words)
    arrays = label_arrays(F.col("tokens"), words, lab.vocab_sizes)
    labels = ok.filter(has_words).select(
        "asin",
        "parent_asin",
        "image_uri",
        "product_type",
        "split",
        *[a.alias(labels_column(s)) for a, s in zip(arrays, lab.vocab_sizes)],
    )
    no_words = ok.filter(~has_words).select(
        "asin",
        "parent_asin",
        "title",
        "image_uri",
        "product_type",
        F.lit("no_vocab_words").alias("reason"),
        F.format_string(
            "no word of title %s is in the vocabulary (doc_freq >= %d)",
            F.to_json(F.array(F.col("title"))),
            F.lit(lab.min_doc_freq),
        ).alias("message"),
    )
    rejects = _rejects_frame(tokenized.filter(F.col("reason").isNotNull())).unionByName(_rejects_frame(no_words))
    rows = tokenized
    return LabelFrames(labels=labels, vocabulary=vocab, rejects=rejects, rows=rows, cached=(tokenized, ranked))


def run_label_job(
    spark: SparkSession,
    conf: PipelineConfig,
    *,
    catalog_path: str,
    out_dir: str,
    input_format: str | None = None,
    run_id: str | None = None,
    allow_empty: bool = False,
) -> LabelJobResult:
    """Read the catalog, build vocabularies, labels and rejects, and commit them to ``out_dir``.

    Args:
        spark: The active session.
        conf: The pipeline configuration (``labels``, ``seed``).
        catalog_path: Parquet, JSON Lines or CSV catalog.
        out_dir: Output folder; the run's ``labels/``, ``vocabulary/``, ``rejects/`` and
            ``_summary.json`` go to ``<out>/runs/<run_id>/``, made current by ``<out>/_current.json``.
        input_format: Overrides the format detected from the path's suffix.
        run_id: The run id (default: a new one).
        allow_empty: Commit a run that labels no row over a current version that had labelled rows.

    Returns:
        The output folder and the run summary.

    Raises:
        InputSchemaError, InputFormatError: for an unreadable catalog (a job-level failure).
        AccountingError: if rows in != rows labelled + rows rejected (a bug).
        RunIdError, OutputLocationError: an unsafe run id; an ``--out`` that is a file, read-only or
            another job's output (found before any work).
        EmptyLabelsError: no row labelled, over labels that had rows, without ``allow_empty``.
    """
    started = time.time()
    run_id = run_id or new_run_id()
    staged = StagedOutput(out_dir, run_id, job=STAGE, keep_versions=conf.output.keep_versions)
    previous = staged.prepare()  # before the work: a bad --out fails now, a dead run's folder is removed
    lab = conf.labels
    partitions = lab.shuffle_partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    t0 = time.time()
    try:
        catalog = read_table(spark, catalog_path, input_format)
        frames = build_labels(catalog, conf, partitions=partitions)  # runs tokens, counting and ranking
    except BaseException:
        staged.abort()
        raise
    build_seconds = round(time.time() - t0, 2)
    log.info("labels: tokens, document frequency and ranking took %.1fs", build_seconds)
    labels, vocab, rejects, rows = frames.labels, frames.vocabulary, frames.rejects, frames.rows

    phases: dict[str, float] = {"tokens_and_vocabulary": build_seconds}

    def phase(name: str, fn) -> None:
        t0 = time.time()
        fn()
        phases[name] = round(time.time() - t0, 2)
        log.info("labels: %s took %.1fs", name, phases[name])

    try:
        phase(
            "vocabulary",
            lambda: (
                # one small file, sorted in its one partition: the same rows in the same order as a global
                # orderBy, without the range partitioner's sampling job
                vocab.coalesce(1)
                .sortWithinPartitions("vocab_size", "rank")
                .write.mode("overwrite")
                .parquet(staged.table_path("vocabulary"))
            ),
        )
        phase(
            "labels",
            lambda: labels.sortWithinPartitions("asin").write.mode("overwrite").parquet(staged.table_path("labels")),
        )
        phase(
            "rejects",
            lambda: (
                rejects.sortWithinPartitions("reason", "asin")
                .write.mode("overwrite")
                .parquet(staged.table_path("rejects"))
            ),
        )

        written_labels = spark.read.parquet(staged.table_path("labels"))
        written_rejects = spark.read.parquet(staged.table_path("rejects"))
        written_vocab = spark.read.parquet(staged.table_path("vocabulary"))
        label_cols = [labels_column(v) for v in lab.vocab_sizes]
        for table, written, extra_cols in (
            ("labels", written_labels, label_cols),
            ("rejects", written_rejects, ()),
            ("vocabulary", written_vocab, ()),
        ):
            check_labels_table(
                written, table, source="label job output", label_columns=extra_cols
            )  # the contract the shard job reads
        rows_in = rows.count()
        # the labels table's figures in one pass: rows, rows per split, rows without labels per vocabulary
        label_facts = written_labels.agg(
            F.count(F.lit(1)).alias("_rows"),
            F.sum(F.when(F.col("split") == "train", 1).otherwise(0)).alias("_train"),
            F.sum(F.when(F.col("split") == "val", 1).otherwise(0)).alias("_val"),
            *[
                F.sum(F.when(F.size(labels_column(s)) == 0, 1).otherwise(0)).alias(labels_column(s))
                for s in lab.vocab_sizes
            ],
        ).first()
        n_labelled = int(label_facts["_rows"])
        by_reason = {
            r["reason"]: r["n"] for r in written_rejects.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()
        }
        n_rejected = sum(by_reason.values())
        if rows_in != n_labelled + n_rejected:
            raise AccountingError(
                f"rows in {rows_in} != labelled {n_labelled} + rejected {n_rejected}; expected equality"
            )
        previous_labelled = int(previous.summary.get("rows_labelled") or 0) if previous.job == STAGE else 0
        if n_labelled == 0 and previous_labelled > 0 and not allow_empty:
            raise EmptyLabelsError(
                f"catalog {catalog_path}: expected at least one labelled row to replace run {previous.run_id} of "
                f"{out_dir} "
                f"({previous_labelled} labelled rows), found none ({rows_in} rows in, {n_rejected} rejected); "
                f"pass --allow-empty to commit it"
            )
        by_split = {k: int(label_facts[f"_{k}"]) for k in ("train", "val") if label_facts[f"_{k}"]}
        vocab_words = {
            int(r["vocab_size"]): r["n"]
            for r in written_vocab.groupBy("vocab_size").agg(F.count(F.lit(1)).alias("n")).collect()
        }
        summary = {
            "job": STAGE,
            "stage": STAGE,
            "run_id": run_id,
            "version": __version__,
            "catalog": catalog_path,
            "out": out_dir,
            "rows_in": rows_in,
            "rows_labelled": n_labelled,
            "rows_rejected": n_rejected,
            "rejects_by_reason": {r: by_reason.get(r, 0) for r in REASONS},
            "labelled_by_split": by_split,
            "vocabulary_words": {str(k): v for k, v in sorted(vocab_words.items())},
            "labelled_without_labels": {
                labels_column(s): int(label_facts[labels_column(s)] or 0) for s in lab.vocab_sizes
            },
            "label_columns": {str(s): labels_column(s) for s in lab.vocab_sizes},
            "parameters": {"seed": conf.seed, "labels": config_to_dict(lab), "partitions": partitions},
            "seconds": round(time.time() - started, 2),
        }
        summary["phase_seconds"] = phases
        version_dir = staged.commit(summary)
    except BaseException:
        staged.abort()
        raise
    finally:
        frames.unpersist()
    log.info(
        "labels: %d rows in = %d labelled + %d rejected (%s)",
        summary["rows_in"],
        n_labelled,
        n_rejected,
        {k: v for k, v in summary["rejects_by_reason"].items() if v},
    )
    return LabelJobResult(out_dir=staged.out_dir, summary=summary, version_dir=version_dir)
