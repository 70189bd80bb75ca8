"""The one forward pass of a model: :class:`Predictor`, and records of shards through it.

:class:`Predictor` binds a network's inference symbol once at a fixed batch shape (padding a short
batch with zeros, splitting a long one; INT8 bundles with their own dtypes) and is what everything
that runs a model uses: the scoring job (one per process and model, :mod:`softlines_attr.score.models`),
``evaluate`` and quantize's check (:func:`predict_records` over shard records, each through the
bundle's own preprocessing), users of a loaded bundle (``Predictor(bundle, n).predict(x)``), and
training's validation (:meth:`Predictor.for_network` on the module's current parameters, through
:meth:`Predictor.predict_iter`). The network is per head the softmax or sigmoid of ``fc_<head>``
(:func:`~softlines_attr.model.bundle.inference_symbol`; an INT8 bundle's graph as it is) with
inference-mode BN, so each image's output does not depend on the other images of its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mxnet as mx
import numpy as np

from softlines_attr.model.bundle import Bundle, inference_symbol
from softlines_attr.model.errors import EvaluateInputError, PredictorError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.manifest import Head
from softlines_attr.shard.recordio import read_image_records

log = logging.getLogger(__name__)

#: Shard records are at most store-size images: a generous pixel limit for decoding them.
RECORD_MAX_PIXELS = 1 << 26


class Predictor:
    """A network's inference symbol bound once at a fixed batch shape, reused for every batch.

    Args:
        bundle: A loaded bundle.
        batch_size: The bound batch size; :meth:`predict` pads a shorter batch and splits a longer one.
        ctx: MXNet context (CPU by default).

    Raises:
        PredictorError: ``batch_size`` < 1.

    Example::

        pred = Predictor(load_bundle(path), batch_size=32)
        probs = pred.predict(x)["hemline"]      # (N, classes), x: float32 (N, 3, H, W) network inputs
    """

    def __init__(self, bundle: Bundle, batch_size: int, ctx: mx.Context | None = None) -> None:
        m = bundle.manifest
        self._bind(
            bundle.inference_symbol(), m.heads, m.input_shape, bundle.arg_params, bundle.aux_params, batch_size, ctx
        )

    @classmethod
    def for_network(
        cls,
        symbol: mx.sym.Symbol,
        heads: Sequence[Head],
        input_shape: Sequence[int],
        arg_params: Mapping[str, mx.nd.NDArray],
        aux_params: Mapping[str, mx.nd.NDArray],
        *,
        batch_size: int,
        ctx: mx.Context | None = None,
    ) -> Predictor:
        """A predictor of a training symbol and parameters not (yet) saved as a bundle: training's validation.

        The symbol is cut at each head's ``fc_<head>`` (:func:`~softlines_attr.model.bundle.inference_symbol`),
        so it predicts what a bundle saved from them (:func:`~softlines_attr.model.bundle.save_bundle`) would.

        Args:
            symbol: The training symbol (with its loss outputs).
            heads: Its heads, in output order.
            input_shape: (3, H, W).
            arg_params: Parameters by name (``Module.get_params()[0]``); names the cut symbol does not use
                (loss constants) are ignored.
            aux_params: Auxiliary states (BN moving mean and variance).
            batch_size: The bound batch size.
            ctx: MXNet context (CPU by default).
        """
        predictor = cls.__new__(cls)
        predictor._bind(inference_symbol(symbol, heads), heads, input_shape, arg_params, aux_params, batch_size, ctx)
        return predictor

    def _bind(
        self,
        sym: mx.sym.Symbol,
        heads: Sequence[Head],
        input_shape: Sequence[int],
        arg_params: Mapping[str, mx.nd.NDArray],
        aux_params: Mapping[str, mx.nd.NDArray],
        batch_size: int,
        ctx: mx.Context | None,
    ) -> None:
        if batch_size < 1:
            raise PredictorError(f"Predictor: expected batch_size >= 1, found {batch_size}")
        self.batch_size = int(batch_size)
        self.ctx = ctx or mx.cpu()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.heads = tuple(h.name for h in heads)
        self._classes = {h.name: len(h.classes) for h in heads}
        # an INT8 bundle's quantised weights are int8 arrays: bind them with their own dtypes
        names = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
        types = {name: arr.dtype for name, arr in {**arg_params, **aux_params}.items() if name in names}
        types[DATA_NAME] = np.float32
        shape = {DATA_NAME: (self.batch_size, *self.input_shape)}
        self._exe = sym.simple_bind(self.ctx, grad_req="null", type_dict=types, **shape)
        for name, arr in self._exe.arg_dict.items():
            if name != DATA_NAME:
                arg_params[name].copyto(arr)
        for name, arr in self._exe.aux_dict.items():
            aux_params[name].copyto(arr)
        self._data = self._exe.arg_dict[DATA_NAME]
        self._pad = np.zeros((self.batch_size, *self.input_shape), dtype=np.float32)

    def predict(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Class probabilities per head name for a float32 batch (N, 3, H, W), any N >= 0.

        Args:
            batch: Network inputs, as :meth:`softlines_attr.model.manifest.Preprocessing.network_input` makes.

        Returns:
            head name -> array (N, classes), in head order.

        Raises:
            PredictorError: when the batch's image shape is not the network's input shape.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise PredictorError(f"Predictor: expected a batch of shape (N, {expected}), found {batch.shape}")
        parts: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start : start + self.batch_size]
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
        return {h: np.concatenate(v) if v else self._empty(h) for h, v in parts.items()}

    def predict_iter(self, it: mx.io.DataIter) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Every record of ``it`` (reset first; batch padding dropped): its label arrays and per-head probabilities.

        The forward pass gets the images only, so ``it`` may carry labels of another shape than the
        network was trained with (base shards: multi-hot val labels for a model trained on the first word).

        Returns:
            (one array per label of the iterator, head name -> (N, classes) probabilities).
        """
        it.reset()
        labels: list[list[np.ndarray]] = []
        probs: dict[str, list[np.ndarray]] = {h: [] for h in self.heads}
        for batch in it:
            n = batch.data[0].shape[0] - (batch.pad or 0)
            for name, values in self.predict(batch.data[0].asnumpy()[:n]).items():
                probs[name].append(values)
            labels = labels or [[] for _ in batch.label]
            for i, label in enumerate(batch.label):
                labels[i].append(label.asnumpy()[:n])
        return [np.concatenate(x) for x in labels], {
            h: np.concatenate(v) if v else self._empty(h) for h, v in probs.items()
        }

    def _empty(self, head: str) -> np.ndarray:
        return np.zeros((0, self._classes[head]), dtype=np.float32)


def read_records(paths: Sequence[Path]) -> Iterator[tuple[np.ndarray, bytes]]:
    """Each record's labels (a 1-D float array: one value for refine shards) and image bytes, in file order.

    Read by the project's one RecordIO reader (:mod:`softlines_attr.shard.recordio`).

    Raises:
        RecordIOError: a file that is not valid RecordIO.
    """
    for header, image in read_image_records(paths):
        yield header.labels, image


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
        raise EvaluateInputError(
            f"records of {[str(p) for p in paths]} carry labels of different widths {sorted(widths)}; expected one"
        )
    return np.stack(labels), {name: np.concatenate(chunks) for name, chunks in probs.items()}
