"""The one forward pass of a bundle: :class:`Predictor`, and records of shards through it.

:class:`Predictor` binds a bundle's inference network once at a fixed batch shape (padding a short
batch, splitting a long one; INT8 bundles with their own dtypes) and is what everything that runs
a bundle uses: the scoring job (one per process and model, :mod:`softlines_attr.score.models`),
``evaluate`` and quantize's check (:func:`predict_records` over shard records, each through the
bundle's own preprocessing), and :meth:`Bundle.predict`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mxnet as mx
import numpy as np

from softlines_attr.model.bundle import Bundle
from softlines_attr.model.errors import EvaluateInputError, ModelError
from softlines_attr.model.inception_bn import DATA_NAME

log = logging.getLogger(__name__)

#: Shard records are at most store-size images: a generous pixel limit for decoding them.
RECORD_MAX_PIXELS = 1 << 26


class PredictorError(ModelError):
    """A batch the bound network cannot take (another image shape), or an unusable batch size."""


class Predictor:
    """A bundle's inference network bound once at a fixed batch shape, reused for every batch.

    Args:
        bundle: A loaded bundle.
        batch_size: The bound batch size; :meth:`predict` pads a shorter batch and splits a longer one.
        ctx: MXNet context (CPU by default).

    Example::

        pred = Predictor(load_bundle(path), batch_size=32)
        probs = pred.predict(x)["hemline"]      # (N, classes), as Bundle.predict, without a bind per call
    """

    def __init__(self, bundle: Bundle, batch_size: int, ctx: mx.Context | None = None) -> None:
        if batch_size < 1:
            raise PredictorError(f"Predictor: expected batch_size >= 1, found {batch_size}")
        self.bundle = bundle
        self.batch_size = int(batch_size)
        self.ctx = ctx or mx.cpu()
        self.input_shape = tuple(bundle.manifest.input_shape)
        self.heads = tuple(h.name for h in bundle.manifest.heads)
        sym = bundle.inference_symbol()
        # an INT8 bundle's quantised weights are int8 arrays: bind them with their own dtypes
        types = {name: arr.dtype for name, arr in {**bundle.arg_params, **bundle.aux_params}.items()}
        types[DATA_NAME] = np.float32
        self._exe = sym.simple_bind(self.ctx, grad_req="null", type_dict=types, **{DATA_NAME: (self.batch_size, *self.input_shape)})
        for name, arr in self._exe.arg_dict.items():
            if name != DATA_NAME:
                bundle.arg_params[name].copyto(arr)
        for name, arr in self._exe.aux_dict.items():
            bundle.aux_params[name].copyto(arr)
        self._data = self._exe.arg_dict[DATA_NAME]
        self._pad = np.zeros((self.batch_size, *self.input_shape), dtype=np.float32)

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Class probabilities per head name for a float32 batch (N, 3, H, W), any N >= 0.

        Raises:
            PredictorError: when the batch's image shape is not the bundle's input shape.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise PredictorError(f"Predictor: expected a batch of shape (N, {', '.join(map(str, self.input_shape))}), found {batch.shape}")
        parts: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start:start + self.batch_size]
            n = chunk.shape[0]
            if n == self.batch_size:
                self._data[:] = chunk
            else:
                self._pad[:n] = chunk
                self._pad[n:] = 0.0
                self._data[:] = self._pad
            outputs = self._exe.forward(is_train=False)
            for head, out in zip(self.heads, outputs):
                parts[head].append(out.asnumpy()[:n])
        classes = {h.name: len(h.classes) for h in self.bundle.manifest.heads}
        return {h: np.concatenate(v) if v else np.zeros((0, classes[h]), dtype=np.float32) for h, v in parts.items()}


def read_records(paths: Sequence[Path]) -> Iterator[tuple[np.ndarray, bytes]]:
    """Each record's labels (a 1-D float array: one value for refine shards) and image bytes, in file order."""
    for path in paths:
        reader = mx.recordio.MXRecordIO(str(path), "r")
        try:
            while True:
                item = reader.read()
                if item is None:
                    break
                header, image = mx.recordio.unpack(item)
                yield np.atleast_1d(np.asarray(header.label, dtype=np.float32)), image
        finally:
            reader.close()


def network_input(image: bytes, bundle: Bundle) -> np.ndarray:
    """A shard record's JPEG as the bundle's network input, through the bundle's own preprocessing.

    The record is decoded and resized to the bundle's store size and resize mode (a no-op for shards
    written with that preprocessing, which :func:`check_shard_preprocessing` requires), then cropped
    (region), normalised with the manifest's mean and std: exactly what the scoring job feeds it.
    """
    return bundle.manifest.preprocessing.network_input(image, max_pixels=RECORD_MAX_PIXELS)




def predict_records(
    bundle: Bundle,
    paths: Sequence[Path],
    *,
    batch_size: int = 64,
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and per-head probabilities of every record of ``paths``.

    Returns:
        (labels (N, label columns) float32, head name -> (N, classes) probabilities).

    Raises:
        EvaluateInputError: no records, or records with different label widths.
    """
    predictor = Predictor(bundle, batch_size, ctx)
    labels: list[np.ndarray] = []
    probs: dict[str, list[np.ndarray]] = {h.name: [] for h in bundle.manifest.heads}
    pending: list[tuple[np.ndarray, bytes]] = []

    def flush(pool: ThreadPoolExecutor) -> None:
        batch = np.stack(list(pool.map(lambda item: network_input(item[1], bundle), pending)))
        for name, values in predictor.predict(batch).items():
            probs[name].append(values)
        labels.extend(item[0] for item in pending)
        pending.clear()

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for record in read_records(paths):
            pending.append(record)
            if len(pending) == batch_size:
                flush(pool)
        if pending:
            flush(pool)
    if not labels:
        raise EvaluateInputError(f"no records in {[str(p) for p in paths]}; expected at least one to evaluate on")
    widths = {len(v) for v in labels}
    if len(widths) != 1:
        raise EvaluateInputError(f"records of {[str(p) for p in paths]} carry labels of different widths {sorted(widths)}; expected one")
    return np.stack(labels), {name: np.concatenate(chunks) for name, chunks in probs.items()}
