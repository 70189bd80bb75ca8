"""The workers' parts of a split: how many records each holds, and the same number of batches on every worker.

``ImageRecordIter`` with ``num_parts`` / ``part_index`` splits the ``;``-joined shard files by bytes
at record boundaries; :func:`part_record_counts` repeats dmlc-core's arithmetic over the records'
offsets (:func:`softlines_attr.shard.recordio.record_offsets`), :func:`check_train_parts` refuses a
part smaller than one batch, :func:`fixed_batches` makes every worker run the same number of batches
per epoch (unequal counts hang ``dist_sync``) and :func:`trimmed_tail` marks a short last evaluation
batch as padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from softlines_attr.model.distributed.dump import label_ids
from softlines_attr.model.distributed.kvstore import Workers
from softlines_attr.model.errors import TrainInputError
from softlines_attr.shard.recordio import record_offsets

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx


def fixed_batches(it: mx.io.DataIter, count: int, seen: list[list] | None = None) -> Iterator[mx.io.DataBatch]:
    """Exactly ``count`` batches of ``it``, resetting it (another pass over the part) when it runs out.

    Every ``dist_sync`` worker must push the same number of gradients per epoch, or the ones with
    more batches wait forever for the others; a worker whose part of the shards is shorter reads it
    again (with ``round_batch`` the last batch of a pass is filled from the part's start).

    Args:
        it: A fresh (or reset) iterator over this worker's part.
        count: Batches to yield.
        seen: When given, the label ids of every yielded batch are appended (the ``--worker-dump``
            debug record; see :func:`~softlines_attr.model.distributed.dump.label_ids`).

    Raises:
        TrainInputError: the iterator yields no batch at all (an empty part).
    """
    produced = 0
    while produced < count:
        got = False
        for batch in it:
            got = True
            if seen is not None:
                seen.append(label_ids(batch.label[0].asnumpy()))
            yield batch
            produced += 1
            if produced >= count:
                return
        if not got:
            raise TrainInputError(
                f"expected {count} batches from this worker's part of the train split, found an empty part"
            )
        it.reset()


def part_record_counts(paths: Sequence[Path], num_parts: int) -> list[int]:
    """Records in each part when ``ImageRecordIter`` splits ``paths`` (``;``-joined) into ``num_parts``.

    The same arithmetic as dmlc-core's ``InputSplitBase::ResetPartition``: the files are one byte
    stream, part k starts at the first record at or after ``k * step`` (``step`` = ceil(total bytes
    / parts) rounded up to 4 bytes), so a record belongs to part ``start // step``.
    """
    sizes = [Path(p).stat().st_size for p in paths]
    total = sum(sizes)
    counts = [0] * num_parts
    if total == 0:
        return counts
    step = -(-total // num_parts)
    step = -(-step // 4) * 4
    base = 0
    for path, size in zip(paths, sizes):
        for offset in record_offsets(Path(path)):
            counts[min((base + offset) // step, num_parts - 1)] += 1
        base += size
    return counts


def check_train_parts(paths: Sequence[Path], records: int, workers: Workers, batch_size: int) -> None:
    """Refuse a dist run where some worker's part of the train split holds fewer records than one batch.

    ``ImageRecordIter`` (with ``round_batch``) fails on such a part; checked exactly (from the
    ``.idx`` files) only when the split is small enough for it to happen, so big runs skip the reading.

    Raises:
        TrainInputError: a part smaller than the batch size (every worker raises the same).
    """
    if not workers.dist or records >= 4 * workers.num_workers * batch_size:
        return
    counts = part_record_counts(paths, workers.num_workers)
    if min(counts) < batch_size:
        raise TrainInputError(
            f"expected every worker's part of the train split to hold at least one batch ({batch_size} records), "
            f"found parts of {counts} records; use a smaller --batch-size or fewer workers"
        )


def trimmed_tail(inner: mx.io.DataIter, records: int) -> mx.io.DataIter:
    """``inner`` (an ``ImageRecordIter`` without ``round_batch``) with its short last batch marked properly.

    Without ``round_batch`` MXNet 1.9.1 fills the rows after the part's last record with garbage and
    still reports ``pad = 0``. Knowing the part's record count, this sets ``pad`` on the batch that
    passes it and copies row 0's labels into the padded rows (so label mapping never sees garbage);
    consumers drop ``pad`` rows as usual.
    """
    import mxnet as mx

    class _Trimmed(mx.io.DataIter):
        def __init__(self) -> None:
            super().__init__(inner.batch_size)
            self._seen = 0

        @property
        def provide_data(self) -> list:
            return inner.provide_data

        @property
        def provide_label(self) -> list:
            return inner.provide_label

        def reset(self) -> None:
            inner.reset()
            self._seen = 0

        def next(self) -> mx.io.DataBatch:
            if self._seen >= records:
                raise StopIteration
            batch = inner.next()
            n = batch.data[0].shape[0]
            valid = min(n, records - self._seen)
            self._seen += n
            if valid == n:
                return batch
            labels = []
            for label in batch.label:
                fixed = label.asnumpy().copy()
                fixed[valid:] = fixed[0]
                labels.append(mx.nd.array(fixed, dtype=label.dtype))
            return mx.io.DataBatch(
                data=batch.data,
                label=labels,
                pad=n - valid,
                index=batch.index,
                provide_data=self.provide_data,
                provide_label=self.provide_label,
            )

    return _Trimmed()
