"""Model bundles: a folder with the symbol, the parameters and a manifest, checked on load.

Layout (format version 2)::

    <bundle>/symbol.json    the training symbol (mx.sym.Symbol.tojson)
    <bundle>/model.params   mx.nd.save of {"arg:NAME": NDArray, "aux:NAME": NDArray}
    <bundle>/manifest.json  heads (attribute, classes in order), the whole preprocessing (store size,
                            resize mode, input size, crop, region, mean/std), base model, vocabulary,
                            metrics, thresholds, MXNet version, the sha256 of every other file of the
                            bundle, and ``manifest_sha256``: the sha256 of the manifest itself

No pickle anywhere: the parameters are MXNet's own NDArray file format, the rest is JSON. The
manifest's types, reading and rewriting are :mod:`softlines_attr.model.manifest`; a loaded
:class:`Bundle` runs through :class:`softlines_attr.model.predictor.Predictor`.
:func:`load_bundle` verifies every checksum before it parses a file and refuses a bundle whose
files are missing or changed, or whose manifest was edited (:class:`BundleIntegrityError`, naming
the file), or whose parameters do not fit its symbol (:class:`BundleError`). The manifest is
rewritten only through :func:`update_manifest` (``evaluate --write-thresholds``), which recomputes its
checksum.

:attr:`Manifest.model_digest` identifies everything that changes an output row of the scoring job:
the symbol and parameters, the heads and their classes, the thresholds, the preprocessing and the
precision; it is the sha256 part of the scoring tables' ``model_version``.

Format 1 bundles (no preprocessing, no manifest checksum) are refused with a clear error; a user who
knows the conf a format 1 bundle was trained with can upgrade it explicitly with
:func:`upgrade_manifest` (docs/MODEL.md, "Bundles").
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mxnet as mx

from softlines_attr.config import ImageConfig
from softlines_attr.model.errors import BundleError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    PARAMS_FILE,
    SYMBOL_FILE,
    Head,
    Manifest,
    Preprocessing,
    VocabularyRef,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest_file,
)

log = logging.getLogger(__name__)

BUNDLE_DIR = "bundle"  # a training run's bundle: <out>/bundle


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: its manifest, symbol and parameters (on CPU)."""

    path: Path
    manifest: Manifest
    symbol: mx.sym.Symbol
    arg_params: dict[str, mx.nd.NDArray]
    aux_params: dict[str, mx.nd.NDArray]

    def inference_symbol(self) -> mx.sym.Symbol:
        """The symbol without loss layers: per head, softmax or sigmoid of ``fc_<head>``, grouped in head order.

        An INT8 bundle's symbol is already an inference symbol (one probability output per head).
        """
        if self.manifest.precision == "int8":
            return self.symbol
        return inference_symbol(self.symbol, self.manifest.heads)


def inference_symbol(symbol: mx.sym.Symbol, heads: Sequence[Head]) -> mx.sym.Symbol:
    """Cut ``symbol`` at each head's ``fc_<name>`` and apply its softmax or sigmoid; grouped in head order."""
    internals = symbol.get_internals()
    names = set(internals.list_outputs())
    outs = []
    for h in heads:
        key = f"fc_{h.name}_output"
        if key not in names:
            raise BundleError(f"head {h.name!r}: expected a layer fc_{h.name} in the symbol, found none")
        fc = internals[key]
        outs.append(
            mx.sym.sigmoid(fc, name=f"{h.name}_prob")
            if h.multi_label
            else mx.sym.softmax(fc, axis=1, name=f"{h.name}_prob")
        )
    return outs[0] if len(outs) == 1 else mx.sym.Group(outs)


def check_params(
    symbol: mx.sym.Symbol,
    arg_params: Mapping[str, mx.nd.NDArray],
    aux_params: Mapping[str, mx.nd.NDArray],
    heads: Sequence[Head],
    input_shape: Sequence[int],
    precision: str = "fp32",
) -> None:
    """Check that the parameters fit the symbol at ``input_shape`` and each head's class count.

    An fp32 bundle's heads are checked by their ``fc_<head>`` weights; an INT8 bundle's symbol is a
    quantized inference graph, so its heads are checked by the shapes of its outputs instead.

    Raises:
        BundleError: naming the first missing, extra or wrongly shaped parameter, or head.
    """
    data_shape = (1, *(int(v) for v in input_shape))
    try:
        arg_shapes, out_shapes, aux_shapes = symbol.infer_shape_partial(**{DATA_NAME: data_shape})
    except mx.base.MXNetError as exc:
        raise BundleError(f"the symbol does not accept input {data_shape}: {str(exc).splitlines()[0]}") from exc
    expected_args = {
        n: tuple(s) for n, s in zip(symbol.list_arguments(), arg_shapes) if n != DATA_NAME and not n.endswith("_label")
    }
    expected_aux = {n: tuple(s) for n, s in zip(symbol.list_auxiliary_states(), aux_shapes)}
    for kind, expected, found in (("arg", expected_args, arg_params), ("aux", expected_aux, aux_params)):
        missing = sorted(set(expected) - set(found))
        if missing:
            raise BundleError(
                f"{kind} parameter {missing[0]!r} of the symbol is missing from the parameters ({len(missing)} missing)"
            )
        extra = sorted(set(found) - set(expected))
        if extra:
            raise BundleError(f"{kind} parameter {extra[0]!r} is not used by the symbol ({len(extra)} unused)")
        for name, shape in expected.items():
            if tuple(found[name].shape) != shape:
                raise BundleError(
                    f"{kind} parameter {name!r}: expected shape {shape}, found {tuple(found[name].shape)}"
                )
    if precision == "int8":
        if len(out_shapes) != len(heads):
            raise BundleError(f"the INT8 symbol has {len(out_shapes)} outputs; expected one per head ({len(heads)})")
        for h, shape in zip(heads, out_shapes):
            if tuple(shape) != (1, len(h.classes)):
                raise BundleError(
                    f"head {h.name!r}: the INT8 output has shape {tuple(shape)}; "
                    f"expected (1, {len(h.classes)}) for its classes"
                )
        return
    for h in heads:
        weight = arg_params.get(f"fc_{h.name}_weight")
        if weight is None:
            raise BundleError(f"head {h.name!r}: expected parameter fc_{h.name}_weight, found none")
        if weight.shape[0] != len(h.classes):
            raise BundleError(
                f"head {h.name!r}: fc_{h.name} has {weight.shape[0]} outputs "
                f"but the head lists {len(h.classes)} classes"
            )


def save_bundle(
    path: str | Path,
    symbol: mx.sym.Symbol,
    arg_params: Mapping[str, mx.nd.NDArray],
    aux_params: Mapping[str, mx.nd.NDArray],
    *,
    heads: Sequence[Head],
    images: ImageConfig | None = None,
    region: Literal["full", "upper"] = "full",
    preprocessing: Preprocessing | None = None,
    base_model: str | None = None,
    vocabulary: VocabularyRef | None = None,
    metrics: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
    precision: Literal["fp32", "int8"] = "fp32",
    calibration: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Write a bundle folder atomically (a sibling staging folder renamed into place).

    Args:
        path: The bundle folder to create.
        symbol: The training symbol (with its loss outputs).
        arg_params: Learned parameters by name (as ``Module.get_params()[0]``).
        aux_params: Auxiliary states (BN moving mean/var) by name.
        heads: The network's heads, in output order.
        images: The ``[images]`` config the model was trained with: the bundle's preprocessing is its
            store size, resize mode, input size, mean and std, with ``region``.
        region: ``full`` or ``upper`` (the view :func:`to_network_input` must crop for this model).
        preprocessing: The whole preprocessing instead of ``images`` and ``region`` (exactly one of
            ``images`` / ``preprocessing``; an INT8 copy passes its fp32 bundle's).
        base_model: The base bundle a refined model started from (its path and params sha256).
        vocabulary: The title-word vocabulary the (base) model was trained on.
        metrics: Validation metrics by name.
        thresholds: Abstain thresholds by head name.
        precision: ``fp32``, or ``int8`` for a quantized inference symbol (:mod:`softlines_attr.model.quantize`).
        calibration: How an INT8 bundle was calibrated (mode, examples, source).
        overwrite: Replace an existing bundle at ``path``.

    Returns:
        The manifest written.

    Raises:
        BundleError: if ``path`` exists (without ``overwrite``) or the parameters do not fit the symbol.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise BundleError(f"bundle folder {path} already exists; expected a new path (or overwrite=True)")
    if not heads:
        raise BundleError("save_bundle: expected at least one head, found none")
    prep = Preprocessing.from_images(images, region) if images is not None else preprocessing
    if prep is None or (images is not None and preprocessing is not None):
        raise BundleError(
            "save_bundle: expected exactly one of images= (an ImageConfig) or preprocessing=, found "
            + ("both" if images is not None else "neither")
        )
    prep.check("save_bundle")
    input_shape = prep.input_shape
    arg = {k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    aux = {k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()}
    check_params(symbol, arg, aux, heads, input_shape, precision)

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / SYMBOL_FILE).write_text(symbol.tojson(), encoding="utf-8")
        mx.nd.save(
            str(staging / PARAMS_FILE),
            {**{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}},
        )
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            heads=tuple(heads),
            input_shape=input_shape,
            mean=tuple(prep.mean),
            std=tuple(prep.std),
            mxnet_version=mx.__version__,
            created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            files={name: sha256_file(staging / name) for name in (SYMBOL_FILE, PARAMS_FILE)},
            preprocessing=prep,
            region=prep.region,
            base_model=base_model,
            vocabulary=vocabulary,
            metrics=dict(metrics or {}),
            thresholds=dict(thresholds or {}),
            precision=precision,
            calibration=dict(calibration or {}),
        )
        manifest = write_manifest_file(staging / MANIFEST_FILE, manifest)
        _move_into_place(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("wrote bundle %s (%d heads, %d parameter arrays)", path, len(heads), len(arg) + len(aux))
    return manifest


def _move_into_place(staging: Path, path: Path) -> None:
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
    os.replace(staging, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle after verifying every file's sha256 and that the parameters fit the symbol.

    Args:
        path: The bundle folder.

    Returns:
        The bundle, parameters on CPU.

    Raises:
        BundleIntegrityError: a file is missing or its checksum differs (the message names the file).
        BundleError: the manifest is malformed, or the parameters do not fit the symbol or heads.
    """
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    try:
        symbol = mx.sym.load_json((path / SYMBOL_FILE).read_text(encoding="utf-8"))
    except mx.base.MXNetError as exc:
        raise BundleError(
            f"bundle {path}: file {SYMBOL_FILE} is not an MXNet symbol: {str(exc).splitlines()[0]}"
        ) from exc
    try:
        loaded = mx.nd.load(str(path / PARAMS_FILE))
    except mx.base.MXNetError as exc:
        raise BundleError(
            f"bundle {path}: file {PARAMS_FILE} is not an MXNet parameter file: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(loaded, dict):
        raise BundleError(
            f"bundle {path}: file {PARAMS_FILE}: expected named arrays (arg:NAME, aux:NAME), found a list"
        )
    arg_params = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
    aux_params = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
    odd = sorted(k for k in loaded if not k.startswith(("arg:", "aux:")))
    if odd:
        raise BundleError(f"bundle {path}: file {PARAMS_FILE}: expected names prefixed arg: or aux:, found {odd[0]!r}")
    try:
        check_params(symbol, arg_params, aux_params, manifest.heads, manifest.input_shape, manifest.precision)
    except BundleError as exc:
        raise BundleError(f"bundle {path}: {exc}") from exc
    if manifest.mxnet_version != mx.__version__:
        log.warning("bundle %s was written by MXNet %s; this is MXNet %s", path, manifest.mxnet_version, mx.__version__)
    return Bundle(path=path, manifest=manifest, symbol=symbol, arg_params=arg_params, aux_params=aux_params)
