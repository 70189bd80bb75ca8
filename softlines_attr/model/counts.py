"""Label statistics of a shard split, from the records' headers only (no image decoded).

:func:`label_counts` counts each class per label column (refine and multi shards),
:func:`title_word_counts` how many records carry each title word (base shards): the heads' prior
biases, class weights and the priors-only baseline come from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from pathlib import Path

import numpy as np

from softlines_attr.model.errors import TrainInputError
from softlines_attr.shard.recordio import read_image_records


def label_counts(paths: Sequence[Path], label_width: int, num_classes: Sequence[int]) -> list[np.ndarray]:
    """Per label column, how many records of ``paths`` carry each class (a -1 / missing label counts nowhere).

    Reads the records (:func:`~softlines_attr.shard.recordio.read_image_records`), not the images' pixels.

    Args:
        paths: ``.rec`` files.
        label_width: Label values per record (1 for refine shards).
        num_classes: Class count of each label column.

    Returns:
        One int64 array of counts per label column.

    Raises:
        TrainInputError: a label at or past its column's class count, or records of another label width.
    """
    counts = [np.zeros(n, dtype=np.int64) for n in num_classes]
    for path in paths:
        for header, _ in read_image_records([path]):
            labels = header.labels
            if labels.size != label_width:
                raise TrainInputError(f"{path}: record {header.id} has {labels.size} labels; expected {label_width}")
            for column, value in enumerate(labels):
                if value < 0:
                    continue
                if value >= num_classes[column]:
                    raise TrainInputError(
                        f"{path}: record {header.id} has label {int(value)} in column {column}; "
                        f"expected below {num_classes[column]}"
                    )
                counts[column][int(value)] += 1
    return counts


def title_word_counts(
    paths: Sequence[Path], num_classes: int, *, max_records: int | None = None
) -> tuple[np.ndarray, int]:
    """How many records of ``paths`` carry each title word (base shards: word indices padded with -1), and records read.

    Reads only the records' headers (:func:`~softlines_attr.shard.recordio.read_image_records`). With
    ``max_records``, at most that many records in all, spread evenly over the files (the label priors
    need a sample, not a full pass).

    Raises:
        TrainInputError: a word index at or past ``num_classes``.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    total = 0
    per_file = None if max_records is None or not paths else max(1, max_records // len(paths))
    for path in paths:
        read = 0
        for header, _ in islice(read_image_records([path]), per_file):
            words = np.unique(header.labels[header.labels >= 0]).astype(np.int64)
            if words.size and words.max() >= num_classes:
                raise TrainInputError(
                    f"{path}: record {header.id} has label index {int(words.max())}; "
                    f"expected indices below the vocabulary size {num_classes}"
                )
            counts[words] += 1
            read += 1
        total += read
    return counts, total
