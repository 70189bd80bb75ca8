"""Model bundles for scoring: resolved and verified on the driver, shipped as bytes, rebuilt once per process.

* :func:`resolve_model_dirs` turns ``--models`` arguments into local bundle folders (a bundle folder, a
  folder of bundle folders, or the same on ``s3://``, downloaded to a temporary folder).
* :class:`BundlePayload` is a verified bundle's three files as bytes: what the driver broadcasts.
* The executor side (a payload rebuilt once per Python worker, its bound
  :class:`~softlines_attr.model.predictor.Predictor` kept in a bounded least-recently-used cache) is
  :mod:`softlines_attr.score.model_cache`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.score.errors import ScoreInputError, ScoreModelError

if TYPE_CHECKING:  # pragma: no cover
    from softlines_attr.model.manifest import Preprocessing

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
SYMBOL_FILE = "symbol.json"
PARAMS_FILE = "model.params"
VERSION_SHA_CHARS = 12


@dataclass(frozen=True)
class HeadSpec:
    """One attribute head of a bundle, as the scoring task needs it.

    Attributes:
        name: The head name (output ``<name>_prob``).
        attribute: The taxonomy attribute it predicts (a column of the wide table).
        classes: Class names in output order.
        threshold: Abstain threshold: below it the row's value is null (0 = never abstain).
    """

    name: str
    attribute: str
    classes: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class BundlePayload:
    """A verified bundle's files as bytes, plus what the driver and the tasks need to know about it.

    Attributes:
        name: The bundle's name (:func:`bundle_name`).
        source: Where it was loaded from (the ``--models`` path).
        params_sha256: sha256 of ``model.params`` (the per-process cache key).
        symbol_json: ``symbol.json`` text.
        params: ``model.params`` bytes.
        manifest_json: ``manifest.json`` text.
        heads: The attribute heads (heads without an attribute, e.g. title words, are not scored).
        preprocessing: The bundle's whole preprocessing (store size, resize mode, input size, region,
            mean, std): the scoring job decodes and crops every image for the bundle with it, never
            with the conf's ``[images]``.
        model_digest: The manifest's :attr:`~softlines_attr.model.bundle.Manifest.model_digest`
            (params, symbol, heads and classes, thresholds, preprocessing, precision).
    """

    name: str
    source: str
    params_sha256: str
    symbol_json: str
    params: bytes
    manifest_json: str
    heads: tuple[HeadSpec, ...]
    preprocessing: Preprocessing
    model_digest: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(3, H, W): the network input."""
        return self.preprocessing.input_shape

    @property
    def region(self) -> str:
        """``full`` or ``upper``."""
        return self.preprocessing.region

    @property
    def model_version(self) -> str:
        """``<name>@<first 12 hex of the model digest>``: the attributes table's ``model_version``.

        Anything that changes an output row (new thresholds from ``evaluate --write-thresholds``,
        another preprocessing, other classes, other parameters) gives a new version.
        """
        return f"{self.name}@{self.version_sha}"

    @property
    def version_sha(self) -> str:
        """The part of :attr:`model_version` after ``@`` (what incremental scoring compares)."""
        return self.model_digest[:VERSION_SHA_CHARS]

    @property
    def decode_key(self) -> tuple:
        """Bundles with equal keys share one decoded, resized image (store size, resize mode)."""
        return self.preprocessing.decode_key

    @property
    def preprocess_key(self) -> tuple:
        """Bundles with equal keys share one network input per image."""
        p = self.preprocessing
        return (p.store_size, p.resize_mode, p.input_size, p.crop, p.region, p.mean, p.std)

    def light(self) -> BundlePayload:
        """This payload without its files' bytes (params, symbol): what a task needs besides the model itself,
        small enough to ship in the task's closure (the bytes go by broadcast)."""
        return dataclasses.replace(self, params=b"", symbol_json="")

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for the run summary."""
        return {
            "name": self.name,
            "source": self.source,
            "model_version": self.model_version,
            "model_digest": self.model_digest,
            "params_sha256": self.params_sha256,
            "input_shape": list(self.input_shape),
            "region": self.region,
            "preprocessing": dataclasses.asdict(self.preprocessing),
            "heads": [
                {"name": h.name, "attribute": h.attribute, "classes": len(h.classes), "threshold": h.threshold}
                for h in self.heads
            ],
        }


def _is_s3(path: str) -> bool:
    """True for an s3:// (s3a, s3n) path; a local path or file:// is False.

    Raises:
        ScoreInputError: for any other scheme.
    """
    from softlines_attr.io.storage import UnsupportedSchemeError, parse_uri

    try:
        return parse_uri(path).scheme == "s3"
    except UnsupportedSchemeError as exc:
        raise ScoreInputError(f"--models {path}: {exc}") from None


def _download_s3(uri: str, dest: Path) -> Path:
    """Copy every object under ``uri`` to ``dest`` (boto3; ``AWS_ENDPOINT_URL_S3`` honoured)."""
    from softlines_attr.io.storage import download_tree

    if not download_tree(uri, dest):
        raise ScoreInputError(f"--models {uri}: expected a model bundle folder (or a folder of them), found no objects")
    return dest


def resolve_model_dirs(paths: Sequence[str], download_dir: Path | None = None) -> list[Path]:
    """Local bundle folders for ``--models`` arguments.

    A path is a bundle folder (it has ``manifest.json``), a folder whose sub-folders are bundles
    (e.g. ``models/current/``), or a model registry (``softlines-attr promote``'s ``--models``: its
    ``_current.json`` is followed to the current version's bundle), local or on ``s3://`` (downloaded
    under ``download_dir``).

    Raises:
        ScoreInputError: for a path that does not exist or holds no bundle.
    """
    from softlines_attr.io.commit import resolve_current

    found: list[Path] = []
    for i, given in enumerate(paths):
        _is_s3(given)  # an unsupported scheme is a ScoreInputError naming --models
        path = resolve_current(given)  # a model registry (promote's output): its current version
        if _is_s3(path):
            base = Path(download_dir or tempfile.mkdtemp(prefix="score-models-")) / f"models{i}"
            local = _download_s3(path, base)
        else:
            local = Path(path.removeprefix("file://"))
        if not local.is_dir():
            raise ScoreInputError(
                f"--models {path}: expected a model bundle folder, found {'a file' if local.exists() else 'nothing'}"
            )
        if (local / MANIFEST_FILE).is_file():
            found.append(local)
            continue
        subs = sorted(p for p in local.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file())
        if not subs:
            listing = sorted(p.name for p in local.iterdir())[:10]
            raise ScoreInputError(
                f"--models {path}: expected a bundle folder (with {MANIFEST_FILE}) or a folder of bundles, found "
                f"{listing}"
            )
        found += subs
    return found


def bundle_name(path: Path) -> str:
    """A bundle's readable name: its folder's, or the training output folder's for ``<out>/bundle`` (what
    ``train`` writes)."""
    from softlines_attr.model.bundle import BUNDLE_DIR

    return path.parent.name if path.name == BUNDLE_DIR and path.parent.name else path.name


def read_payload(path: Path, source: str | None = None) -> BundlePayload:
    """Load and verify a bundle (every checksum, params vs symbol), then read its files as bytes.

    Raises:
        BundleError, BundleIntegrityError: from :func:`softlines_attr.model.bundle.load_bundle`.
        ScoreModelError: a bundle without an attribute head, or a file changed while it was read.
    """
    from softlines_attr.model.bundle import load_bundle

    bundle = load_bundle(path)
    manifest = bundle.manifest
    params = (path / PARAMS_FILE).read_bytes()
    sha = hashlib.sha256(params).hexdigest()
    if sha != manifest.files.get(PARAMS_FILE):
        raise ScoreModelError(
            f"bundle {path}: {PARAMS_FILE} changed while it was read: expected sha256 "
            f"{manifest.files.get(PARAMS_FILE)}, found {sha}"
        )
    heads = tuple(
        HeadSpec(h.name, h.attribute, tuple(h.classes), float(manifest.thresholds.get(h.name, 0.0)))
        for h in manifest.heads
        if h.attribute is not None
    )
    if not heads:
        raise ScoreModelError(
            f"bundle {path}: expected at least one head with an attribute, found heads "
            f"{[h.name for h in manifest.heads]} (a base model?)"
        )
    return BundlePayload(
        name=bundle_name(path),
        source=source or str(path),
        params_sha256=sha,
        symbol_json=(path / SYMBOL_FILE).read_text(encoding="utf-8"),
        params=params,
        manifest_json=(path / MANIFEST_FILE).read_text(encoding="utf-8"),
        heads=heads,
        preprocessing=manifest.preprocessing,
        model_digest=manifest.model_digest,
    )


def check_payloads(payloads: Sequence[BundlePayload], store_size: int | None = None) -> list[str]:
    """Check the bundles can be scored together; returns the attributes in order.

    Each bundle brings its own preprocessing (store size included): the conf's ``images.store_size``
    plays no part, and ``store_size`` is accepted only for callers of the earlier signature.

    Raises:
        ScoreModelError: two bundles (or heads) for one attribute, or the same bundle twice.
    """
    seen: dict[str, str] = {}
    shas: dict[str, str] = {}
    for p in payloads:
        if p.params_sha256 in shas:
            raise ScoreModelError(
                f"bundle {p.source} is the same model as {shas[p.params_sha256]} (params sha256 "
                f"{p.params_sha256[:12]}); expected each model once"
            )
        shas[p.params_sha256] = p.source
        for h in p.heads:
            if h.attribute in seen:
                raise ScoreModelError(
                    f"attribute {h.attribute!r} is predicted by {seen[h.attribute]} and by {p.source} (head "
                    f"{h.name}); expected one model per attribute"
                )
            seen[h.attribute] = f"{p.source} (head {h.name})"
    return list(seen)


def payload_summary(payloads: Sequence[BundlePayload]) -> list[dict[str, Any]]:
    """The models of a run, for the summary."""
    return [p.describe() for p in payloads]


def manifest_dict(payload: BundlePayload) -> dict[str, Any]:
    """The bundle's manifest as a dict."""
    return json.loads(payload.manifest_json)
