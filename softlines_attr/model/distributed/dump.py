"""The ``--worker-dump`` debug record of one worker (for tests): its final parameters and the labels it read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.model.distributed.kvstore import Workers

if TYPE_CHECKING:  # pragma: no cover
    import mxnet as mx


def label_ids(labels: Any) -> list:
    """A batch's labels as plain ids: class per row (one label) or the positive classes per row (multi-hot)."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.ndim == 1:
        return [int(v) for v in labels]
    return [[int(c) for c in np.flatnonzero(row > 0)] for row in labels]


def write_worker_dump(
    dump_dir: str | Path,
    workers: Workers,
    mod: mx.mod.Module,
    *,
    batches_per_epoch: int,
    train_seen: Sequence[Sequence[list]],
    val_iter: mx.io.DataIter | None,
    metrics: Mapping[str, float],
) -> Path:
    """Debug record of one worker (``--worker-dump DIR``, for tests): its final params and what it read.

    Writes ``worker-<rank>.params`` (``mx.nd.save`` of ``arg:``/``aux:`` params, no pickle) and
    ``worker-<rank>.json``: rank, number of workers, batches per epoch, the label ids of every train
    batch per epoch, the label ids of its val part (padding removed), and its val metrics.

    Returns:
        The JSON file's path.
    """
    import mxnet as mx

    out = Path(dump_dir)
    out.mkdir(parents=True, exist_ok=True)
    arg, aux = mod.get_params()
    mx.nd.save(
        str(out / f"worker-{workers.rank}.params"),
        {**{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}},
    )
    val_ids: list = []
    if val_iter is not None:
        val_iter.reset()
        for batch in val_iter:
            n = batch.data[0].shape[0] - (batch.pad or 0)
            val_ids.extend(label_ids(batch.label[0].asnumpy()[:n]))
    record = {
        "rank": workers.rank,
        "num_workers": workers.num_workers,
        "kv_store": workers.kind,
        "batches_per_epoch": batches_per_epoch,
        "train_batches": [list(epoch) for epoch in train_seen],
        "val_ids": val_ids,
        "metrics": dict(metrics),
    }
    path = out / f"worker-{workers.rank}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path
