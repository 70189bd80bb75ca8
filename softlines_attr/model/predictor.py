"""The one forward pass of a model: its inference network bound once at a fixed batch shape.

Every prediction of the project goes through :class:`Predictor`: the scoring job (one per process and
bundle, cached by :func:`softlines_attr.score.models.cached_predictor`), ``evaluate``, the INT8 check
against fp32, users of a loaded bundle, and training's validation (:meth:`Predictor.for_network` on
the module's current parameters). The network is the bundle's inference symbol (per head, the softmax
or sigmoid of ``fc_<head>``; an INT8 bundle's quantised graph as it is) with inference-mode BN. A batch
of any length is split into bound-size chunks and the last, short one padded with zeros (each image's
output does not depend on the others', so the padding is dropped unseen). INT8 weights are bound with
their own dtypes.

Example::

    pred = Predictor(load_bundle(path), batch_size=32)
    probs = pred.predict(x)["hemline"]      # (N, classes), x: float32 (N, 3, H, W) network inputs
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mxnet as mx
import numpy as np

from softlines_attr.model.bundle import Bundle, inference_symbol
from softlines_attr.model.errors import PredictInputError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.manifest import Head


class Predictor:
    """A network's inference symbol bound once at a fixed batch shape, reused for every batch.

    Args:
        bundle: A loaded bundle.
        batch_size: The bound batch size; :meth:`predict` pads a shorter batch and splits a longer one.
        ctx: MXNet context (CPU by default).

    Raises:
        PredictInputError: ``batch_size`` < 1.
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
            arg_params: Parameters by name (``Module.get_params()[0]``); extra names (loss constants) are ignored.
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
            raise PredictInputError(f"Predictor: expected batch_size >= 1, found {batch_size}")
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
            PredictInputError: when the batch's image shape is not the network's input shape.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise PredictInputError(f"Predictor: expected a batch of shape (N, {expected}), found {batch.shape}")
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
        return {
            h: np.concatenate(v) if v else np.zeros((0, self._classes[h]), dtype=np.float32) for h, v in parts.items()
        }

    def predict_iter(self, it: mx.io.DataIter) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Every record of ``it`` (reset first; batch padding dropped): its label arrays, and probabilities per head.

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
        empty = {h: np.zeros((0, self._classes[h]), dtype=np.float32) for h in self.heads}
        return [np.concatenate(x) for x in labels], {h: np.concatenate(v) if v else empty[h] for h, v in probs.items()}
