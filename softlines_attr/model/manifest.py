"""The bundle manifest: heads, preprocessing, checksums; read, verified, rewritten only through here.

``manifest.json`` holds the heads (attribute, classes in order), the whole preprocessing (store size,
resize mode, input size, crop, region, mean/std), base model, vocabulary, metrics, thresholds, the
MXNet version, the sha256 of every other file of the bundle, and ``manifest_sha256``, the sha256 of
the manifest itself. :func:`read_manifest` refuses an edited or malformed manifest,
:func:`verify_files` a bundle file that is missing or changed; :func:`update_manifest` is the one
way to change a manifest (it recomputes the checksum), :func:`upgrade_manifest` the explicit way to
bring a format 1 manifest to format 2. The bundle as a whole (symbol, parameters, loading) is
:mod:`softlines_attr.model.bundle`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from softlines_attr.config import ImageConfig, parse_dataclass
from softlines_attr.errors import ConfigError
from softlines_attr.model.errors import BundleError, BundleIntegrityError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
SYMBOL_FILE = "symbol.json"
PARAMS_FILE = "model.params"
MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Head:
    """One output of a bundle's network.

    Attributes:
        name: The head name: FC layer ``fc_<name>``, training output ``<name>``.
        classes: Class names in output order (title words for the base model).
        attribute: The taxonomy attribute it predicts; None for a title-word (base) head.
        multi_label: True for independent sigmoids (title words), False for a softmax.
    """

    name: str
    classes: tuple[str, ...]
    attribute: str | None = None
    multi_label: bool = False


@dataclass(frozen=True)
class VocabularyRef:
    """The title-word vocabulary a model was trained on.

    Attributes:
        vocab_size: The vocabulary size asked of the label job (500, 2000, 0 = all words).
        source: Where it came from (the label job's output folder or shards folder).
    """

    vocab_size: int
    source: str = ""


@dataclass(frozen=True)
class Preprocessing:
    """Everything between an image file's bytes and the network input, as the model was trained.

    Attributes:
        store_size: The image is resized to this (shorter side, or the side of a padded square).
        resize_mode: ``shorter_side`` or ``pad_square``.
        input_size: The side of the square network input cropped from the stored image.
        mean: Per-channel RGB mean subtracted.
        std: Per-channel RGB standard deviation divided by.
        region: ``full`` (the whole stored image) or ``upper`` (its top part: the neck-style view,
            :func:`softlines_attr.images.tensor.region_view`).
        crop: ``center``: the centre ``input_size`` square of the (region) view at inference; training
            crops at random positions of the same view.
    """

    store_size: int
    resize_mode: Literal["shorter_side", "pad_square"]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    region: Literal["full", "upper"] = "full"
    crop: Literal["center"] = "center"

    @classmethod
    def from_images(cls, images: ImageConfig, region: Literal["full", "upper"] = "full") -> Preprocessing:
        """The preprocessing of ``conf.images`` (store size, resize mode, input size, mean, std) with ``region``."""
        return cls(
            store_size=int(images.store_size),
            resize_mode=images.resize_mode,
            input_size=int(images.input_size),
            mean=tuple(float(v) for v in images.mean),  # type: ignore[arg-type]  # three channels in, three out
            std=tuple(float(v) for v in images.std),  # type: ignore[arg-type]  # three channels in, three out
            region=region,
        )

    def check(self, where: str) -> None:
        """Raise BundleError when the values cannot be a preprocessing (sizes, std)."""
        if self.store_size < 1 or self.input_size < 1 or self.input_size > self.store_size:
            raise BundleError(
                f"{where}: expected 1 <= input_size <= store_size, found input_size {self.input_size}, store_size "
                f"{self.store_size}"
            )
        if any(v <= 0 for v in self.std):
            raise BundleError(f"{where}: expected a positive std per channel, found {list(self.std)}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(3, input_size, input_size)."""
        return (3, self.input_size, self.input_size)

    @property
    def decode_key(self) -> tuple[int, str]:
        """Preprocessings with equal keys decode (and resize) an image once."""
        return (self.store_size, self.resize_mode)

    def load(self, data: bytes, max_pixels: int) -> Any:
        """Decode and resize image bytes to the stored size (a PIL image): :func:`softlines_attr.images.load_image`."""
        from softlines_attr.images.decode import load_image

        return load_image(data, size=self.store_size, mode=self.resize_mode, max_pixels=max_pixels)

    def tensor(self, img: Any) -> np.ndarray:
        """A stored-size RGB image as the float32 (3, input_size, input_size) network input."""
        from softlines_attr.images.tensor import to_network_input

        return to_network_input(img, input_size=self.input_size, mean=self.mean, std=self.std, region=self.region)

    def pixels(self, img: Any) -> np.ndarray:
        """A stored-size RGB image's crop as uint8 (input_size, input_size, 3): :meth:`tensor` before the
        normalisation, which :meth:`normalise` does for a whole batch at once (the scoring job)."""
        from softlines_attr.images.tensor import crop_pixels

        return crop_pixels(img, self.input_size, self.region)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """:meth:`pixels` (one, or stacked) as float32 network input, channels first; the same bits as :meth:`tensor`
        image by image."""
        from softlines_attr.images.tensor import normalise

        return normalise(pixels, self.mean, self.std)

    def network_input(self, data: bytes, max_pixels: int) -> np.ndarray:
        """Image file bytes (an original or a shard record's JPEG) as the network input."""
        return self.tensor(self.load(data, max_pixels))


@dataclass(frozen=True)
class Manifest:
    """The contents of ``manifest.json``.

    ``input_shape``, ``mean``, ``std`` and ``region`` repeat ``preprocessing`` (for readers of format 1
    fields); :func:`read_manifest` refuses a manifest where they disagree.
    """

    format_version: int
    heads: tuple[Head, ...]
    input_shape: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mxnet_version: str
    created_at: str
    files: dict[str, str]
    preprocessing: Preprocessing
    manifest_sha256: str = ""
    region: Literal["full", "upper"] = "full"
    base_model: str | None = None
    vocabulary: VocabularyRef | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    precision: Literal["fp32", "int8"] = "fp32"
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The taxonomy attributes the bundle predicts (empty for a base model)."""
        return tuple(h.attribute for h in self.heads if h.attribute is not None)

    @property
    def model_digest(self) -> str:
        """sha256 of everything that changes an output row: symbol and params, heads and classes, thresholds,
        preprocessing, precision.

        Metrics, timestamps, the calibration record and provenance (base model, vocabulary source) do not enter it.
        """
        identity = {
            "files": {k: self.files.get(k) for k in (SYMBOL_FILE, PARAMS_FILE)},
            "heads": [dataclasses.asdict(h) for h in self.heads],
            "thresholds": dict(sorted(self.thresholds.items())),
            "preprocessing": dataclasses.asdict(self.preprocessing),
            "precision": self.precision,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()

    def head(self, name: str) -> Head:
        """The head called ``name``; raise BundleError naming the heads there are."""
        for h in self.heads:
            if h.name == name:
                return h
        raise BundleError(f"bundle has no head {name!r}; expected one of {[h.name for h in self.heads]}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_checksum(data: Mapping[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys, no whitespace), without its ``manifest_sha256`` key."""
    body = {k: v for k, v in data.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def write_manifest_file(file: Path, manifest: Manifest) -> Manifest:
    """Write ``manifest`` (its checksum recomputed) to ``file`` through a flushed temporary file; returns it as
    written."""
    data = json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(manifest, manifest_sha256=""))))
    data["manifest_sha256"] = manifest_checksum(data)
    tmp = file.with_name(f".{file.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    return dataclasses.replace(manifest, manifest_sha256=data["manifest_sha256"])


def read_manifest(path: str | Path) -> Manifest:
    """Parse and check ``<path>/manifest.json`` (without verifying the other files).

    Raises:
        BundleIntegrityError: if the manifest is missing, or does not match its ``manifest_sha256``
            (it was edited by hand: a renamed class, a changed threshold).
        BundleError: if it is not valid JSON, has an unknown format version (format 1: no
            preprocessing recorded) or a malformed key.
    """
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        raise BundleIntegrityError(f"bundle {path}: file {MANIFEST_FILE} is missing; expected a model bundle folder")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {path}: file {MANIFEST_FILE} is not valid JSON: {exc}") from exc
    found_version = data.get("format_version") if isinstance(data, dict) else type(data).__name__
    if found_version == 1:
        raise BundleError(
            f"bundle {path}: file {MANIFEST_FILE}: expected format_version {FORMAT_VERSION}, found 1, which "
            f"records no preprocessing "
            "(store size, resize mode) and no manifest checksum; retrain it, or upgrade it with "
            "softlines_attr.model.bundle.upgrade_manifest(path, images) naming the [images] conf it was trained with"
        )
    if found_version != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path}: file {MANIFEST_FILE}: expected format_version {FORMAT_VERSION}, found {found_version!r}"
        )
    recorded = data.get("manifest_sha256")
    actual = manifest_checksum(data)
    if recorded != actual:
        raise BundleIntegrityError(
            f"bundle {path}: file {MANIFEST_FILE} does not match its checksum: expected manifest_sha256 "
            f"{recorded!r}, found {actual} "
            "(edited by hand? rewrite it only through update_manifest / evaluate --write-thresholds)"
        )
    try:
        manifest = parse_dataclass(Manifest, data, source=str(file))
    except ConfigError as exc:
        raise BundleError(f"bundle {path}: {exc}") from exc
    manifest = dataclasses.replace(
        manifest, heads=tuple(dataclasses.replace(h, classes=tuple(h.classes)) for h in manifest.heads)
    )
    prep = manifest.preprocessing
    try:
        prep.check(f"bundle {path}: {MANIFEST_FILE}: preprocessing")
    except BundleError as exc:
        raise BundleError(str(exc)) from None
    repeated = {
        "input_shape": (tuple(manifest.input_shape), prep.input_shape),
        "mean": (tuple(manifest.mean), tuple(prep.mean)),
        "std": (tuple(manifest.std), tuple(prep.std)),
        "region": (manifest.region, prep.region),
    }
    for key, (top, inner) in repeated.items():
        if top != inner:
            raise BundleError(
                f"bundle {path}: {MANIFEST_FILE}: {key} {top} disagrees with preprocessing.{key} {inner}; "
                f"expected the same value"
            )
    return manifest


def update_manifest(path: str | Path, **changes: Any) -> Manifest:
    """Rewrite a bundle's manifest with ``changes`` (e.g. ``thresholds=``, ``metrics=``), its checksum recomputed.

    The bundle is verified first (every file's checksum), and the manifest is replaced atomically.

    Raises:
        BundleIntegrityError, BundleError: the bundle does not verify; a key the manifest does not have.
    """
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    fields = {f.name for f in dataclasses.fields(Manifest)} - {"format_version", "files", "manifest_sha256"}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise BundleError(f"update_manifest: expected keys of {sorted(fields)}, found {unknown}")
    return write_manifest_file(path / MANIFEST_FILE, dataclasses.replace(manifest, **changes))


def upgrade_manifest(path: str | Path, images: ImageConfig, region: Literal["full", "upper"] = "full") -> Manifest:
    """Upgrade a format 1 bundle's manifest to format 2, stating the preprocessing it was trained with.

    The explicit fallback for bundles written before the preprocessing was recorded: the caller
    names the ``[images]`` conf (store size, resize mode) of the training run; the input size, mean
    and std must match the ones the format 1 manifest recorded.

    Raises:
        BundleError: not a format 1 manifest, or ``images`` disagrees with what it recorded.
    """
    path = Path(path)
    file = path / MANIFEST_FILE
    data = json.loads(file.read_text(encoding="utf-8"))
    if data.get("format_version") != 1:
        raise BundleError(
            f"bundle {path}: expected a format_version 1 manifest to upgrade, found {data.get('format_version')!r}"
        )
    prep = Preprocessing.from_images(images, region)
    recorded = (
        tuple(data.get("input_shape", ())),
        tuple(data.get("mean", ())),
        tuple(data.get("std", ())),
        data.get("region", "full"),
    )
    if recorded != (prep.input_shape, tuple(prep.mean), tuple(prep.std), prep.region):
        raise BundleError(
            f"bundle {path}: the manifest records input_shape, mean, std, region {recorded}; images gives "
            f"{(prep.input_shape, prep.mean, prep.std, prep.region)}"
        )
    data.update(format_version=FORMAT_VERSION, preprocessing=dataclasses.asdict(prep), manifest_sha256="")
    try:
        manifest = parse_dataclass(Manifest, data, source=str(file))
    except ConfigError as exc:
        raise BundleError(f"bundle {path}: {exc}") from exc
    verify_files(path, manifest)
    return write_manifest_file(file, manifest)


def verify_files(path: str | Path, manifest: Manifest) -> None:
    """Check that the manifest lists the symbol and params, and every listed file exists with its sha256.

    Raises:
        BundleIntegrityError: naming the first missing or changed file.
    """
    path = Path(path)
    for required in (SYMBOL_FILE, PARAMS_FILE):
        if required not in manifest.files:
            raise BundleIntegrityError(
                f"bundle {path}: {MANIFEST_FILE} lists no checksum for {required}; expected one for every file"
            )
    for name, expected in sorted(manifest.files.items()):
        file = path / name
        if Path(name).name != name or not file.is_file():
            raise BundleIntegrityError(
                f"bundle {path}: file {name} is missing; the manifest lists it with sha256 {expected}"
            )
        found = sha256_file(file)
        if found != expected:
            raise BundleIntegrityError(
                f"bundle {path}: file {name} does not match its checksum: expected sha256 {expected}, found {found}"
            )
