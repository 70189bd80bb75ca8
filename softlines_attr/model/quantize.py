"""INT8 quantisation of a model bundle for scoring (MXNet's oneDNN quantisation, calibrated).

An fp32 bundle's inference symbol (per head, the softmax or sigmoid of ``fc_<head>``) is fused and
quantised by :func:`mxnet.contrib.quantization.quantize_model_mkldnn`: convolutions and fully
connected layers run in int8 with scales calibrated on real images (``naive``: the min/max of each
layer's outputs; ``entropy``: KL-optimal thresholds). The result is written as a bundle of its own
with ``precision = "int8"``: its symbol is already an inference symbol, so
:class:`~softlines_attr.model.predictor.Predictor` (scoring, the check against fp32) runs it like any
other bundle.

Calibration images go through the bundle's own preprocessing (decode, resize to its store size,
:func:`to_network_input`), as scoring does, from the records of a shard split (the validation split
by default): the images the model never trained on. The INT8 bundle carries the fp32 bundle's
preprocessing unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import mxnet as mx
import numpy as np

from softlines_attr.config import ImageConfig
from softlines_attr.images import ImageError
from softlines_attr.model.bundle import Bundle, save_bundle
from softlines_attr.model.errors import ModelError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.manifest import PARAMS_FILE, Manifest
from softlines_attr.shard.recordio import read_image_records

log = logging.getLogger(__name__)

CalibMode = Literal["naive", "entropy"]

# The first convolution sees the raw (normalised) pixels with 3 channels: little to gain in int8
# and the layer most sensitive to quantisation error, so it stays fp32 by default.
DEFAULT_EXCLUDED = ("conv_1",)


class QuantizeError(ModelError):
    """A bundle cannot be quantised as asked (already int8, no calibration images, no oneDNN)."""


def calibration_images(
    shard_paths: Sequence[Path], manifest: Manifest, images: ImageConfig | None = None, *, limit: int
) -> np.ndarray:
    """Up to ``limit`` network inputs decoded from shard records, as scoring would preprocess them.

    Every image goes through the bundle's own preprocessing (its manifest's store size, resize mode,
    input size, region, mean and std), never the conf's.

    Args:
        shard_paths: ``.rec`` files to read in order (e.g. a shard set's val split).
        manifest: The bundle's manifest (its preprocessing).
        images: ``conf.images``: only its ``max_pixels`` (the decoding safety limit) is used.
        limit: The most images to return.

    Returns:
        Float32 array (N, 3, input_size, input_size), N <= limit.

    Raises:
        QuantizeError: if no record could be decoded.
        RecordIOError: a shard file that is not valid RecordIO (read by :mod:`softlines_attr.shard.recordio`).
    """
    prep = manifest.preprocessing
    max_pixels = images.max_pixels if images is not None else 1 << 26
    out: list[np.ndarray] = []
    skipped = 0
    records = read_image_records(shard_paths)  # lazily: no record is read past the limit
    while len(out) < limit:
        record = next(records, None)
        if record is None:
            break
        try:
            out.append(prep.network_input(record[1], max_pixels))
        except ImageError:
            skipped += 1
    if skipped:
        log.warning("calibration: %d records could not be decoded and were skipped", skipped)
    if not out:
        raise QuantizeError(
            f"calibration: expected at least one decodable image in {len(shard_paths)} shard files, found none"
        )
    return np.stack(out)


def quantize_bundle(
    bundle: Bundle,
    calib: np.ndarray,
    out: str | Path,
    *,
    calib_mode: CalibMode = "naive",
    excluded_layers: Sequence[str] = DEFAULT_EXCLUDED,
    batch_size: int = 16,
    source: str = "",
    overwrite: bool = False,
) -> Manifest:
    """Quantise an fp32 bundle to int8, calibrated on ``calib``, and write it as a new bundle.

    Args:
        bundle: A loaded fp32 bundle.
        calib: Calibration inputs (N, 3, H, W), preprocessed like scoring's.
        out: The int8 bundle folder to write.
        calib_mode: ``naive`` (min/max) or ``entropy`` (KL thresholds; slower, often more accurate).
        excluded_layers: Layer names kept in fp32 (by default the first convolution).
        batch_size: Calibration batch size.
        source: Where the calibration images came from (recorded in the manifest).
        overwrite: Replace an existing bundle at ``out``.

    Returns:
        The int8 bundle's manifest (heads, thresholds, input shape and normalisation as the fp32 one's).

    Raises:
        QuantizeError: if the bundle is already int8, ``calib`` is empty or of the wrong shape.
    """
    from mxnet.contrib import quantization

    m = bundle.manifest
    if m.precision != "fp32":
        raise QuantizeError(
            f"bundle {bundle.path}: expected an fp32 bundle to quantise, found precision {m.precision!r}"
        )
    calib = np.asarray(calib, dtype=np.float32)
    if calib.ndim != 4 or calib.shape[1:] != m.input_shape or len(calib) == 0:
        raise QuantizeError(
            f"calibration: expected images of shape (N>0, {', '.join(map(str, m.input_shape))}), found {calib.shape}"
        )
    batch = min(batch_size, len(calib))
    usable = len(calib) // batch * batch
    calib_iter = mx.io.NDArrayIter(calib[:usable], batch_size=batch, data_name=DATA_NAME)
    sym = bundle.inference_symbol()
    present = {n.rsplit("_output", 1)[0] for n in sym.get_internals().list_outputs()}
    excluded = [name for name in excluded_layers if name in present]
    log.info("quantising %s: %s calibration on %d images, fp32 layers %s", bundle.path, calib_mode, usable, excluded)
    qsym, qarg, qaux = quantization.quantize_model_mkldnn(
        sym=sym,
        arg_params={k: v for k, v in bundle.arg_params.items() if k in sym.list_arguments()},
        aux_params=dict(bundle.aux_params),
        data_names=(DATA_NAME,),
        label_names=(),
        ctx=mx.cpu(),
        excluded_sym_names=excluded,
        calib_mode=calib_mode,
        calib_data=calib_iter,
        num_calib_examples=usable,
        quantized_dtype="auto",
        quantize_mode="smart",
    )
    qaux = {k: v for k, v in qaux.items() if k in qsym.list_auxiliary_states()}
    return save_bundle(
        out,
        qsym,
        qarg,
        qaux,
        heads=m.heads,
        preprocessing=m.preprocessing,  # the fp32 bundle's whole preprocessing, unchanged
        base_model=f"{bundle.path}@sha256:{m.files[PARAMS_FILE]}",
        vocabulary=m.vocabulary,
        metrics={f"fp32_{k}": v for k, v in m.metrics.items()},
        thresholds=m.thresholds,
        precision="int8",
        calibration={"mode": calib_mode, "examples": usable, "excluded_layers": excluded, "source": source},
        overwrite=overwrite,
    )
