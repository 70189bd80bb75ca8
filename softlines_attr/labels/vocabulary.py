"""The vocabularies and the labels: document frequencies, ranked words, top-N vocabularies, label indices per product.

Spark column expressions over the tokenised catalog (one row per product and word); the label
indices are looked up in one map literal of the vocabulary (:func:`label_arrays`). Called by
:func:`softlines_attr.labels.job.build_labels`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from softlines_attr.errors import SoftlinesAttrError


class VocabularyWordError(SoftlinesAttrError):
    """A vocabulary word the label lookup cannot hold (empty, or with a space): a tokeniser bug, never data."""


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


def label_lookup(words: Sequence[str]) -> Column:
    """``map<string, int>`` from each word to its label index (its position in ``words``), as one literal.

    Built from two foldable expressions (the words joined by spaces, split again; ``sequence(0, n - 1)``),
    which the optimizer folds into one map literal: no per-word expression in the plan and no per-word
    call from Python to the JVM. Tokens never hold whitespace (``TOKEN_RE`` of
    :mod:`softlines_attr.labels.tokenize`), so the split gives the words back exactly (checked). A map
    literal of at least ``spark.sql.optimizer.mapLookupHashThreshold`` entries (default 1,000) is looked
    up through a hash index built once (SPARK-55959; in the Spark 4.3 installed here), a smaller one by
    a scan of its keys.

    Raises:
        VocabularyWordError: when a word is empty or holds a space (it would not split back into itself).
    """
    bad = [w for w in words if not w or " " in w]
    if bad:
        raise VocabularyWordError(
            f"label lookup: expected vocabulary words without spaces, found {len(bad)} like {bad[:3]!r}"
        )
    if not words:
        return F.create_map().cast("map<string,int>")
    return F.map_from_arrays(F.split(F.lit(" ".join(words)), " "), F.sequence(F.lit(0), F.lit(len(words) - 1)))


def label_arrays(tokens: Column, words: Sequence[str], vocab_sizes: Sequence[int]) -> list[Column]:
    """Per vocabulary size, the row's label indices: ``array<int>``, ascending, ``0`` = every word of ``words``.

    Args:
        tokens: The row's distinct words (``array<string>``; null counts as empty).
        words: The widest vocabulary in rank order (:func:`vocabulary_words`): word ``i`` has label index ``i``.
        vocab_sizes: Sizes; a word is a label of size ``s`` when its index is below ``s``.
    """
    lookup = label_lookup(words)
    indices = F.transform(F.coalesce(tokens, F.array().cast("array<string>")), lambda t: F.element_at(lookup, t))
    # sort_array, not array_sort: array_sort's default comparator is an interpreted lambda (about 1.7x the CPU here)
    widest = F.sort_array(F.array_compact(indices))
    return [widest if size == 0 else _below(widest, size) for size in vocab_sizes]


def _below(indices: Column, size: int) -> Column:
    return F.filter(indices, lambda i: i < F.lit(size))


def has_label_word(tokens: Column, words: Sequence[str]) -> Column:
    """True when one of the row's ``tokens`` is in ``words`` (stops at the first hit; cheaper than the label arrays)."""
    lookup = label_lookup(words)
    return F.exists(F.coalesce(tokens, F.array().cast("array<string>")), lambda t: F.element_at(lookup, t).isNotNull())
