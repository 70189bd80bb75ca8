"""Label assignment: title tokens -> sorted label indices per vocabulary, vectorised with Arrow.

Each Spark task gets Arrow record batches of its rows (``mapInArrow``); a batch's token lists are
looked up in the vocabulary with one hash lookup over all its tokens (``pyarrow.compute.index_in``)
and regrouped per row with numpy. No Python loop runs per row, and the rows keep the ASIN
partitioning they came with (no shuffle). The vocabulary (the label space of the base model, so a
few thousand to a few hundred thousand words) is the only thing broadcast; titles and tokens never
leave the executors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _list_array(row_ids: np.ndarray, values: np.ndarray, n_rows: int) -> pa.ListArray:
    counts = np.bincount(row_ids, minlength=n_rows)
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values.astype(np.int32), pa.int32()))


def label_indices(tokens: pa.ListArray, vocabulary: pa.Array, sizes: Sequence[int]) -> list[pa.ListArray]:
    """For each vocabulary size, every row's label indices (ascending ``int32``; ``0`` = all words).

    Args:
        tokens: One list of distinct words per row (nulls count as empty).
        vocabulary: The words in rank order: word ``vocabulary[i]`` has label index ``i``.
        sizes: Vocabulary sizes; a word is a label of size ``s`` when its index is below ``s``.
    """
    n_rows = len(tokens)
    lengths = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(tokens)
    index = pc.fill_null(pc.index_in(flat, value_set=vocabulary), -1).to_numpy(zero_copy_only=False)
    row_ids = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    hit = index >= 0
    row_ids, index = row_ids[hit], index[hit]
    order = np.lexsort((index, row_ids))
    row_ids, index = row_ids[order], index[order]
    out = []
    for size in sizes:
        keep = np.ones(len(index), dtype=bool) if size == 0 else index < size
        out.append(_list_array(row_ids[keep], index[keep], n_rows))
    return out


def _rebatch(batches: Iterator[pa.RecordBatch], min_rows: int) -> Iterator[pa.RecordBatch]:
    """Merge Spark's small Arrow batches into batches of at least ``min_rows`` rows (fewer numpy calls)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= min_rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, rows = [], 0
    if rows:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def label_batches(
    batches: Iterator[pa.RecordBatch],
    vocabulary_words: Sequence[str],
    sizes: Sequence[int],
    columns: Sequence[str],
    min_rows: int = 65536,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: drop ``tokens``, append one label column per size (named ``columns``)."""
    vocabulary = pa.array(list(vocabulary_words), pa.string())
    for batch in _rebatch(batches, min_rows):
        tokens_at = batch.schema.get_field_index("tokens")
        labels = label_indices(batch.column(tokens_at), vocabulary, sizes)
        kept = [batch.column(i) for i in range(batch.num_columns) if i != tokens_at]
        names = [batch.schema.names[i] for i in range(batch.num_columns) if i != tokens_at]
        yield pa.RecordBatch.from_arrays(kept + labels, names=names + list(columns))
