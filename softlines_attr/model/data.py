"""Training data: RecordIO shards as MXNet iterators, and the label mappings each shard mode needs.

:func:`record_iter` reads a split with ``mx.io.ImageRecordIter`` (random crop, mirror and optional
colour jitter in training; a centre crop and an exact record count otherwise). Base shards carry
``label_width`` title-word indices padded with -1: :func:`multi_hot` turns them into 0/1 rows (or
:func:`first_label` keeps the first, most frequent word); multi shards' one-class-per-attribute
rows are split into one label per head (:class:`ColumnLabelIter`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import mxnet as mx
import numpy as np

from softlines_attr.config import PipelineConfig
from softlines_attr.model.distributed.parts import part_record_counts, trimmed_tail
from softlines_attr.model.errors import TrainInputError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.shard.contract import ShardSet
from softlines_attr.shard.recordio import read_image_records

if TYPE_CHECKING:
    from softlines_attr.train_config import TrainConfig

# ImageRecordIter's random HSL shifts for TrainConfig.color_jitter (hue in [0, 180], s and l in [0, 255])
COLOR_JITTER = {"random_h": 36, "random_s": 60, "random_l": 40}


class LabelMapIter(mx.io.DataIter):
    """Wraps a record iterator and maps each batch's label array (N, label_width) with ``fn``.

    Args:
        inner: An ``ImageRecordIter`` reading ``label_width`` labels per record.
        fn: (N, label_width) float32 -> the network's label array for the batch.
        label_desc: Name and shape of the mapped label (the network's ``<head>_label``).
    """

    def __init__(
        self, inner: mx.io.DataIter, fn: Callable[[np.ndarray], np.ndarray], label_desc: mx.io.DataDesc
    ) -> None:
        super().__init__(inner.batch_size)
        self._inner = inner
        self._fn = fn
        self._label_desc = label_desc

    @property
    def provide_data(self) -> list[mx.io.DataDesc]:
        return self._inner.provide_data

    @property
    def provide_label(self) -> list[mx.io.DataDesc]:
        return [self._label_desc]

    def reset(self) -> None:
        self._inner.reset()

    def next(self) -> mx.io.DataBatch:
        batch = self._inner.next()
        return mx.io.DataBatch(
            data=batch.data,
            label=[mx.nd.array(self._fn(batch.label[0].asnumpy()))],
            pad=batch.pad,
            index=batch.index,
            provide_data=self.provide_data,
            provide_label=self.provide_label,
        )


class ColumnLabelIter(mx.io.DataIter):
    """Wraps a record iterator reading (N, A) labels and gives one (N,) label per column (multi shards).

    Args:
        inner: An ``ImageRecordIter`` with ``label_width`` = A.
        label_names: The A label names (``<attribute>_label``), in column order.
    """

    def __init__(self, inner: mx.io.DataIter, label_names: Sequence[str]) -> None:
        super().__init__(inner.batch_size)
        self._inner = inner
        self._descs = [mx.io.DataDesc(name, (inner.batch_size,)) for name in label_names]

    @property
    def provide_data(self) -> list[mx.io.DataDesc]:
        return self._inner.provide_data

    @property
    def provide_label(self) -> list[mx.io.DataDesc]:
        return self._descs

    def reset(self) -> None:
        self._inner.reset()

    def next(self) -> mx.io.DataBatch:
        batch = self._inner.next()
        labels = batch.label[0].asnumpy().reshape(batch.data[0].shape[0], -1)
        if labels.shape[1] != len(self._descs):
            raise TrainInputError(
                f"multi shards: records carry {labels.shape[1]} labels; expected one per attribute ({len(self._descs)})"
            )
        return mx.io.DataBatch(
            data=batch.data,
            label=[mx.nd.array(labels[:, i]) for i in range(labels.shape[1])],
            pad=batch.pad,
            index=batch.index,
            provide_data=self.provide_data,
            provide_label=self.provide_label,
        )


def first_label(indices: np.ndarray) -> np.ndarray:
    """(N, W) title-word indices -> (N,) the first (most frequent word's) index, for softmax on base shards.

    Raises:
        TrainInputError: a record with no label at all.
    """
    first = np.asarray(indices).reshape(len(indices), -1)[:, 0]
    if (first < 0).any():
        raise TrainInputError("a base record has no label (only -1 padding); expected at least one title-word index")
    return first


def multi_hot(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, W) class indices padded with negative values -> (N, num_classes) float32 0/1 rows.

    Raises:
        TrainInputError: an index at or past ``num_classes``.
    """
    indices = np.asarray(indices).reshape(len(indices), -1)
    rows, cols = np.nonzero(indices >= 0)
    classes = indices[rows, cols].astype(np.int64)
    if classes.size and classes.max() >= num_classes:
        raise TrainInputError(
            f"a record has label index {int(classes.max())}; expected indices below the vocabulary size {num_classes}"
        )
    out = np.zeros((indices.shape[0], num_classes), dtype=np.float32)
    out[rows, classes] = 1.0
    return out


def training_region(shards: ShardSet, conf: PipelineConfig) -> str:
    """The region a model of these shards should look at: the taxonomy's region of a refine shard set's attribute.

    A multi-head model (multi shards) shares one input for all its heads, so it looks at the full
    image; base (title-word) models too. Only a single-attribute (refine) model of an attribute whose
    taxonomy ``region`` is ``upper`` (neck style) gets the upper view.
    """
    if shards.mode != "refine" or not shards.attribute:
        return "full"
    return conf.taxonomy.attribute(shards.attribute).region


class RegionRecordIter(mx.io.DataIter):
    """Refine records through the region view, as evaluation and scoring preprocess them.

    ``mx.io.ImageRecordIter`` crops the whole stored image only; for the ``upper`` region each
    record (read with :func:`~softlines_attr.shard.recordio.read_image_records`) is decoded with Pillow, turned into
    :func:`softlines_attr.images.tensor.region_view` and cropped: at random positions and randomly
    mirrored for training, the centre otherwise (exactly :func:`to_network_input`). Records are held
    in memory (refine data: thousands of images), shuffled per epoch from ``seed``; a short last batch
    is filled from the start in training (``pad = 0``, like ``round_batch``) and zero-padded with
    ``pad`` set otherwise. Colour jitter is not applied on this path.

    Args:
        paths: ``.rec`` files.
        batch_size: Images per batch.
        input_size: The square crop side.
        mean: Per-channel RGB mean.
        std: Per-channel RGB std.
        region: ``upper`` (or ``full``, for tests).
        train: Random crop, mirror and shuffle.
        label_name: The network's label name.
        seed: Shuffle and augmentation seed.
        threads: Decoding threads.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        batch_size: int,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        region: str,
        train: bool,
        label_name: str,
        seed: int = 0,
        threads: int = 2,
    ) -> None:
        super().__init__(batch_size)
        self._records: list[tuple[float, bytes]] = [(float(h.labels[0]), jpeg) for h, jpeg in read_image_records(paths)]
        if not self._records:
            raise StopIteration
        self._size, self._region, self._train = input_size, region, train
        self._seed, self._threads = seed, max(1, threads)
        self._mean = np.asarray(mean, dtype=np.float32)
        self._std = np.asarray(std, dtype=np.float32)
        self._data_desc = mx.io.DataDesc(DATA_NAME, (batch_size, 3, input_size, input_size))
        self._label_desc = mx.io.DataDesc(label_name, (batch_size,))
        self._epoch = 0
        self.reset()

    @property
    def provide_data(self) -> list[mx.io.DataDesc]:
        return [self._data_desc]

    @property
    def provide_label(self) -> list[mx.io.DataDesc]:
        return [self._label_desc]

    def reset(self) -> None:
        self._rng = np.random.default_rng(self._seed + 1000 * self._epoch)
        self._order = self._rng.permutation(len(self._records)) if self._train else np.arange(len(self._records))
        self._cursor = 0
        self._epoch += 1

    def _tensor(self, index: int, flip: bool, top: float, left: float) -> np.ndarray:
        import io

        from PIL import Image

        from softlines_attr.images.tensor import region_view, to_network_input

        with Image.open(io.BytesIO(self._records[index][1])) as img:
            rgb = img.convert("RGB")
        if not self._train:
            region = self._region  # checked against the Literal when the iterator is built
            return to_network_input(rgb, input_size=self._size, mean=self._mean, std=self._std, region=region)  # type: ignore[arg-type]
        # the region is checked against the Literal when the iterator is built
        view = region_view(rgb, self._region)  # type: ignore[arg-type]
        if min(view.size) < self._size:
            scale = self._size / min(view.size)
            width, height = max(self._size, round(view.width * scale)), max(self._size, round(view.height * scale))
            view = view.resize((width, height), Image.Resampling.BILINEAR)
        x0, y0 = int(left * (view.width - self._size + 1)), int(top * (view.height - self._size + 1))
        crop = view.crop((x0, y0, x0 + self._size, y0 + self._size))
        if flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = (np.asarray(crop, dtype=np.float32) - self._mean) / self._std
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def next(self) -> mx.io.DataBatch:
        from concurrent.futures import ThreadPoolExecutor

        n = len(self._records)
        if self._cursor >= n:
            raise StopIteration
        take = list(self._order[self._cursor : self._cursor + self.batch_size])
        self._cursor += self.batch_size
        pad = self.batch_size - len(take)
        if pad and self._train:  # fill from the start, as ImageRecordIter's round_batch
            take += list(self._order[:pad])
            pad = 0
        draws = [(bool(self._rng.random() < 0.5), float(self._rng.random()), float(self._rng.random())) for _ in take]
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            tensors = list(pool.map(lambda a: self._tensor(a[0], *a[1]), zip(take, draws)))
        data = np.zeros((self.batch_size, 3, self._size, self._size), dtype=np.float32)
        data[: len(tensors)] = np.stack(tensors)
        labels = np.zeros(self.batch_size, dtype=np.float32)
        labels[: len(take)] = [self._records[i][0] for i in take]
        if pad:
            labels[len(take) :] = labels[0]
        return mx.io.DataBatch(
            data=[mx.nd.array(data)],
            label=[mx.nd.array(labels)],
            pad=pad,
            provide_data=self.provide_data,
            provide_label=self.provide_label,
        )


def record_iter(
    paths: Sequence[Path],
    shards: ShardSet,
    conf: PipelineConfig,
    tc: TrainConfig,
    *,
    train: bool,
    label_name: str | Sequence[str],
    multi_label: bool,
    num_parts: int = 1,
    part_index: int = 0,
    records: int | None = None,
    region: str = "full",
) -> mx.io.DataIter:
    """An iterator over ``paths`` (part ``part_index`` of ``num_parts``): random crop and mirror, or a centre crop.

    ``label_name``: the network's label name, or (multi shards) one per attribute column.
    ``records`` (not training): the records in this part (default: counted, see
    :func:`~softlines_attr.model.distributed.parts.part_record_counts`); the last batch's rows past them
    are marked as ``pad``. Raises StopIteration (MXNet's) for an empty part.
    ``region``: ``full`` (ImageRecordIter, the whole stored image), or ``upper`` for refine shards
    (:class:`RegionRecordIter`, the neck-style view; :func:`training_region` says which); the bundle
    must then record the same region (``save_bundle(..., region=...)``).
    """
    label_names = [label_name] if isinstance(label_name, str) else list(label_name)
    label_name = label_names[0]
    size = tc.input_size or conf.images.input_size
    img = conf.images
    if region != "full":
        if shards.mode != "refine":
            raise TrainInputError(
                f"region {region!r}: expected refine shards (one attribute; a multi-head model shares one input), "
                f"found {shards.mode!r} shards"
            )
        if num_parts > 1:
            raise TrainInputError(
                f"region {region!r}: expected one worker (the region iterator does not split parts), found {num_parts}"
            )
        return RegionRecordIter(
            paths,
            batch_size=tc.batch_size,
            input_size=size,
            mean=img.mean,
            std=img.std,
            region=region,
            train=train,
            label_name=label_name,
            seed=tc.seed,
            threads=tc.threads,
        )
    inner = mx.io.ImageRecordIter(
        path_imgrec=";".join(str(p) for p in paths),
        data_shape=(3, size, size),
        batch_size=tc.batch_size,
        label_width=shards.label_width if shards.mode in ("base", "multi") else 1,
        data_name=DATA_NAME,
        label_name=label_name,
        mean_r=img.mean[0],
        mean_g=img.mean[1],
        mean_b=img.mean[2],
        std_r=img.std[0],
        std_g=img.std[1],
        std_b=img.std[2],
        rand_crop=train,
        rand_mirror=train,
        shuffle=train,
        # training: a short last batch is filled from the part's start (and the next pass starts after
        # those records). Not for evaluation: after reset() MXNet 1.9.1 then skips records and
        # miscounts pad; without it a short last batch holds garbage rows with pad 0, which
        # trimmed_tail marks as pad from the part's record count (below).
        round_batch=train,
        preprocess_threads=tc.threads,
        seed=tc.seed,
        resize=size if shards.image_size < size else -1,
        num_parts=num_parts,
        part_index=part_index,
        **(COLOR_JITTER if train and tc.color_jitter else {}),
    )
    if not train:
        if records is None:
            whole = num_parts == 1 and tuple(paths) == tuple(shards.val)
            records = shards.val_records if whole else part_record_counts(paths, num_parts)[part_index]
        inner = trimmed_tail(inner, records)
    if shards.mode == "refine":
        return inner
    if shards.mode == "multi":
        return ColumnLabelIter(inner, label_names)
    if multi_label:
        desc = mx.io.DataDesc(label_name, (tc.batch_size, shards.num_classes))
        return LabelMapIter(inner, lambda labels: multi_hot(labels, shards.num_classes), desc)
    return LabelMapIter(inner, first_label, mx.io.DataDesc(label_name, (tc.batch_size,)))
