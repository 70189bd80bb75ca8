"""The model stages as one function each: what the commands, the demo and the EMR steps call.

The Spark stages are one library call each already (:func:`softlines_attr.labels.job.run_label_job`,
:func:`softlines_attr.shard.run_shard_job`, :func:`softlines_attr.score.job.run_score_job`); the model
stages below hold the glue around the model library (input checks, the base bundle's input size,
calibration images) so that no caller re-implements it. Each takes the loaded conf and explicit
settings, and returns the manifest of the bundle it wrote.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from softlines_attr.config import PipelineConfig
from softlines_attr.train_config import TrainConfig

if TYPE_CHECKING:
    from softlines_attr.model.manifest import Manifest
    from softlines_attr.model.quantize import CalibMode

log = logging.getLogger(__name__)

NO_BASE = "none"  # refine's --base value for the same network from scratch


def train_stage(
    shards: str | Path, out: str | Path, conf: PipelineConfig, tc: TrainConfig, *, resume: bool = False
) -> Manifest | None:
    """A base model (title words) or a from-scratch model on ``shards``; the bundle goes to ``<out>/bundle``.

    Returns:
        The bundle's manifest; None on a distributed worker other than rank 0 (it writes no bundle).
    """
    from softlines_attr.model.train import train

    return train(shards, out, conf, tc, resume=resume)


def refine_stage(
    shards: str | Path,
    out: str | Path,
    conf: PipelineConfig,
    tc: TrainConfig,
    *,
    base: str | Path | None,
    attribute: str,
    resume: bool = False,
) -> Manifest:
    """The paper's refined model: ``base``'s backbone with new heads for ``attribute`` (``all``: every attribute
    of multi shards).

    Checks that the shards hold ``attribute`` before any training; the loss is softmax (``auto`` or
    ``softmax``; any other is refused); an input
    size of 0 takes the base bundle's. ``base`` None (or ``"none"``) trains the same network from scratch.

    Raises:
        TrainInputError: shards of another attribute or mode, or unusable settings.
    """
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.errors import TrainInputError
    from softlines_attr.model.refine import check_refine_inputs
    from softlines_attr.model.train import train
    from softlines_attr.shard.contract import read_shard_set

    if tc.loss not in ("auto", "softmax"):
        raise TrainInputError(
            f"refine trains softmax heads over an attribute's classes: expected loss softmax, found {tc.loss!r}"
        )
    check_refine_inputs(read_shard_set(shards), attribute, conf.taxonomy)
    bundle = None if base is None or str(base).strip().lower() == NO_BASE else load_bundle(base)
    tc = dataclasses.replace(tc, loss="softmax")
    if bundle is not None and tc.input_size == 0:
        tc = dataclasses.replace(tc, input_size=bundle.manifest.input_shape[1])
    manifest = train(shards, out, conf, tc, resume=resume, base=bundle)
    assert manifest is not None  # refine runs in one process: it always writes its bundle
    return manifest


def quantize_stage(
    model: str | Path,
    shards: str | Path,
    out: str | Path,
    conf: PipelineConfig,
    *,
    split: Literal["train", "val"] = "val",
    num_calib: int = 128,
    calib_mode: CalibMode = "naive",
    overwrite: bool = False,
) -> Manifest:
    """An INT8 copy of bundle ``model`` at ``out``, calibrated on up to ``num_calib`` images of the shards' ``split``.

    Raises:
        QuantizeError: a non-positive ``num_calib``, or a bundle that cannot be quantised.
    """
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.quantize import QuantizeError, calibration_images, quantize_bundle
    from softlines_attr.shard.contract import read_shard_set

    if num_calib < 1:
        raise QuantizeError(f"--num-calib: expected a positive number of images, found {num_calib}")
    bundle = load_bundle(model)
    shard_set = read_shard_set(shards)
    paths = shard_set.val if split == "val" else shard_set.train
    calib = calibration_images(paths, bundle.manifest, conf.images, limit=num_calib)
    return quantize_bundle(
        bundle, calib, out, calib_mode=calib_mode, source=f"{shard_set.root} ({split})", overwrite=overwrite
    )
