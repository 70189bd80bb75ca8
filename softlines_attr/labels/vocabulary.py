"""The vocabularies and the labels: document frequencies, ranked words, top-N vocabularies, label indices per product.

Spark column expressions over the tokenised catalog (one row per product and word); the label
indices are assigned in Arrow (:mod:`softlines_attr.labels.assign`). Called by
:func:`softlines_attr.labels.job.build_labels`.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window


def labels_column(vocab_size: int) -> str:
    """The labels-table column of a vocabulary size: ``labels_500``, ``labels_all`` for 0."""
    return "labels_all" if vocab_size == 0 else f"labels_{vocab_size}"


def document_frequency(rows: DataFrame, *, count_by_parent: bool) -> DataFrame:
    """``word``, ``doc_freq``: in how many ASINs (or parent ASINs) each word appears.

    ``explode_outer`` and a null filter, not ``explode``: for ``explode`` Spark infers a
    ``size(tokens) > 0`` filter and pushes it below the projection, which computes the whole
    tokeniser twice per row when ``tokens`` is not materialised (measured: 51 vs 27 µs a title).
    """
    words = rows.select("parent_asin", F.explode_outer("tokens").alias("word")).filter(F.col("word").isNotNull())
    if count_by_parent:
        words = words.distinct()
    return words.groupBy("word").agg(F.count(F.lit(1)).alias("doc_freq"))


def rank_words(doc_freq: DataFrame, *, min_doc_freq: int) -> DataFrame:
    """``word``, ``doc_freq``, ``rank`` (1-based) by doc_freq descending, then word ascending.

    Ranking runs on the (small) set of distinct words above ``min_doc_freq``, on one executor.
    """
    order = Window.orderBy(F.col("doc_freq").desc(), F.col("word").asc())
    return doc_freq.filter(F.col("doc_freq") >= min_doc_freq).withColumn("rank", F.row_number().over(order))


def vocabularies(ranked: DataFrame, vocab_sizes: tuple[int, ...]) -> DataFrame:
    """The vocabulary table: ``vocab_size``, ``word``, ``doc_freq``, ``rank``, ``label_index`` for every size."""
    parts = []
    for size in vocab_sizes:
        part = ranked if size == 0 else ranked.filter(F.col("rank") <= size)
        parts.append(
            part.select(
                F.lit(size).alias("vocab_size"),
                "word",
                "doc_freq",
                F.col("rank").cast("int").alias("rank"),
                (F.col("rank") - 1).cast("int").alias("label_index"),
            )
        )
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def vocabulary_words(ranked: DataFrame, vocab_sizes: tuple[int, ...]) -> list[str]:
    """The words of the widest vocabulary in rank order (word ``i`` has label index ``i``).

    This is the model's label space (one output unit per word), small enough for the driver; the
    catalog's titles and tokens never come here.
    """
    needed = ranked if 0 in vocab_sizes else ranked.filter(F.col("rank") <= max(vocab_sizes))
    return [r["word"] for r in needed.orderBy("rank").select("word").collect()]


def assign_labels(rows: DataFrame, words: list[str], vocab_sizes: tuple[int, ...]) -> DataFrame:
    """Replace ``tokens`` by one ``array<int>`` of ascending label indices per vocabulary size.

    Runs as ``mapInArrow`` over each partition (see :mod:`softlines_attr.labels.assign`), so the
    rows keep their partitioning and order; the words are broadcast once.
    """
    from softlines_attr.labels.assign import label_batches

    spark = rows.sparkSession
    words_bc = spark.sparkContext.broadcast(words)
    sizes = tuple(vocab_sizes)
    columns = tuple(labels_column(s) for s in sizes)
    keep = [c for c in rows.columns if c != "tokens"]
    schema = ", ".join(
        [f"`{f.name}` {f.dataType.simpleString()}" for f in rows.schema.fields if f.name != "tokens"]
        + [f"`{c}` array<int>" for c in columns]
    )

    def run(batches):  # executed on the executors
        return label_batches(batches, words_bc.value, sizes, columns)

    return rows.select(*keep, "tokens").mapInArrow(run, schema)
