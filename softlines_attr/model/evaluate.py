"""Evaluating a model bundle on RecordIO shards: the paper's metrics, and the abstain thresholds.

Metrics (pure numpy, one head at a time, single-label heads):

* multi-class accuracy and average per-class accuracy (the mean recall over the classes present);
* the per-class table (the paper's Table 5): support, correct, accuracy (recall), precision;
* the confusion matrix (rows: true class, columns: predicted class);
* top-k accuracy for k = 1, 2, 3 (bounded by the class count);
* precision and coverage at each confidence threshold 0, step, ..., 1: an image is *kept* when its
  top probability is at least the threshold; coverage = kept / images, precision = correct among
  kept / kept;
* the abstain threshold: the lowest threshold whose precision reaches the target precision (from
  ``conf.evaluate``), or none when no threshold does (``reached = false``).

Images come from the shards and go through the bundle's own preprocessing (its manifest's, never
the conf's): each record's JPEG is decoded and resized to the bundle's store size and resize mode,
and cropped by :func:`softlines_attr.images.to_network_input` with the bundle's input size, mean, std
and region (the upper view of a neck-style model included) -- what the scoring job feeds the
network -- and the bundle's inference symbol runs with inference-mode BN. Shards stored with
another store size or resize mode than the bundle's are refused.

Refine shards carry one class index per record and are evaluated against the bundle head of the
shards' attribute. Multi shards (one column per attribute, -1 = no tag) are evaluated against every
head whose attribute has a column, skipping the untagged records of that column.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from softlines_attr.config import EvaluateConfig
from softlines_attr.model.bundle import MANIFEST_FILE, PARAMS_FILE, Bundle, Head, load_bundle, read_manifest, update_manifest
from softlines_attr.model.errors import ClassMismatchError, EvaluateInputError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
EVALUATION_FORMAT = 1
TOP_K = (1, 2, 3)
NO_TAG = -1


# --------------------------------------------------------------------------------------------
# Metrics (pure numpy)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRow:
    """One row of the per-class table (the paper's Table 5).

    Attributes:
        index: The class index.
        name: The class name.
        support: Images whose true class this is.
        correct: Of those, images predicted as this class.
        predicted: Images predicted as this class.
        accuracy: correct / support (the class's recall); None without support.
        precision: correct / predicted; None when the class was never predicted.
    """

    index: int
    name: str
    support: int
    correct: int
    predicted: int
    accuracy: float | None
    precision: float | None


@dataclass(frozen=True)
class CurvePoint:
    """Precision and coverage when images whose top probability is below ``threshold`` are abstained on.

    Attributes:
        threshold: The confidence threshold (an image is kept when its top probability >= it).
        kept: Images kept.
        correct: Kept images whose top class is the true class.
        coverage: kept / images.
        precision: correct / kept; None when nothing is kept.
    """

    threshold: float
    kept: int
    correct: int
    coverage: float
    precision: float | None


@dataclass(frozen=True)
class AbstainChoice:
    """The abstain threshold chosen for a target precision.

    Attributes:
        target_precision: The precision asked for.
        reached: Whether some threshold reaches it.
        threshold: The lowest threshold reaching it; None when ``reached`` is false.
        precision: Precision at ``threshold`` (None when not reached).
        coverage: Coverage at ``threshold`` (0.0 when not reached: the head would always abstain).
        best_precision: The highest precision of any threshold that keeps an image (for the report).
    """

    target_precision: float
    reached: bool
    threshold: float | None
    precision: float | None
    coverage: float
    best_precision: float | None


@dataclass(frozen=True)
class HeadEvaluation:
    """Every metric of one head on one split.

    Attributes:
        head: The head name.
        attribute: The head's attribute (None for a title-word head).
        classes: Class names in output order.
        records: Images evaluated (with a tag for this head).
        skipped: Images without a tag for this head (multi shards, label -1).
        accuracy: Multi-class accuracy (top-1).
        average_per_class_accuracy: Mean of the per-class accuracies over the classes with support.
        classes_with_support: How many classes that mean is over.
        top_k: k -> top-k accuracy.
        per_class: The per-class table, in class order.
        confusion: The confusion matrix, rows true, columns predicted.
        curve: Precision and coverage per threshold, ascending.
        abstain: The abstain threshold for the head's target precision.
    """

    head: str
    attribute: str | None
    classes: tuple[str, ...]
    records: int
    skipped: int
    accuracy: float
    average_per_class_accuracy: float
    classes_with_support: int
    top_k: dict[int, float]
    per_class: tuple[ClassRow, ...]
    confusion: np.ndarray
    curve: tuple[CurvePoint, ...]
    abstain: AbstainChoice


def _ratio(num: int, den: int) -> float | None:
    return float(num) / float(den) if den else None


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        labels: (N,) true class indices in [0, num_classes).
        predicted: (N,) predicted class indices in [0, num_classes).
        num_classes: The class count.

    Returns:
        An int64 array (num_classes, num_classes): row = true class, column = predicted class.

    Raises:
        ClassMismatchError: a label or prediction outside [0, num_classes).
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predicted = np.asarray(predicted).astype(np.int64).reshape(-1)
    for name, values in (("label", labels), ("prediction", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = int(values.min() if values.min() < 0 else values.max())
            raise ClassMismatchError(f"a {name} is class index {bad}; expected indices 0..{num_classes - 1} ({num_classes} classes)")
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def accuracy(confusion: np.ndarray) -> float:
    """Multi-class accuracy: the diagonal over the total (0.0 for an empty matrix)."""
    total = int(confusion.sum())
    return float(np.trace(confusion)) / total if total else 0.0


def per_class_table(confusion: np.ndarray, classes: Sequence[str]) -> tuple[ClassRow, ...]:
    """The per-class table from a confusion matrix: support, correct, predicted, accuracy, precision."""
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    return tuple(
        ClassRow(
            index=i,
            name=str(name),
            support=int(support[i]),
            correct=int(confusion[i, i]),
            predicted=int(predicted[i]),
            accuracy=_ratio(int(confusion[i, i]), int(support[i])),
            precision=_ratio(int(confusion[i, i]), int(predicted[i])),
        )
        for i, name in enumerate(classes)
    )


def average_per_class_accuracy(rows: Sequence[ClassRow]) -> tuple[float, int]:
    """The mean per-class accuracy over the classes with support, and how many classes that is."""
    values = [r.accuracy for r in rows if r.accuracy is not None]
    return (float(np.mean(values)) if values else 0.0), len(values)


def top_k_accuracy(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    """The share of images whose true class is among the ``k`` highest probabilities (ties: lower index first)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if not len(labels):
        return 0.0
    top = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def threshold_grid(step: float) -> np.ndarray:
    """Thresholds 0, step, 2 step, ..., 1.0 (1.0 always included), rounded to 6 decimals."""
    count = int(math.floor(1.0 / step + 1e-9))
    grid = np.round(np.arange(count + 1) * step, 6)
    return grid if grid[-1] == 1.0 else np.append(grid, 1.0)


def precision_coverage(labels: np.ndarray, probs: np.ndarray, thresholds: Sequence[float]) -> tuple[CurvePoint, ...]:
    """Precision and coverage of the top-1 prediction at each threshold.

    An image is kept at threshold ``t`` when its top probability is >= ``t`` (the scoring job keeps
    a value under the same rule); the rest are abstained on.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probs = np.asarray(probs)
    n = len(labels)
    confidence = probs.max(axis=1) if n else np.zeros(0)
    hit = probs.argmax(axis=1) == labels if n else np.zeros(0, dtype=bool)
    points = []
    for t in thresholds:
        keep = confidence >= t
        kept, correct = int(keep.sum()), int((keep & hit).sum())
        points.append(CurvePoint(threshold=float(t), kept=kept, correct=correct, coverage=kept / n if n else 0.0, precision=_ratio(correct, kept)))
    return tuple(points)


def choose_abstain_threshold(curve: Sequence[CurvePoint], target_precision: float) -> AbstainChoice:
    """The lowest threshold whose precision reaches ``target_precision`` (the largest coverage that does).

    When no threshold keeping at least one image reaches it, ``reached`` is false and the threshold
    is None: no threshold is invented.
    """
    measured = [p for p in curve if p.precision is not None]
    best = max((p.precision for p in measured), default=None)
    for point in sorted(measured, key=lambda p: p.threshold):
        if point.precision is not None and point.precision >= target_precision - 1e-12:
            return AbstainChoice(target_precision, True, point.threshold, point.precision, point.coverage, best)
    return AbstainChoice(target_precision, False, None, None, 0.0, best)


def evaluate_head(
    labels: np.ndarray,
    probs: np.ndarray,
    head: Head,
    *,
    target_precision: float,
    threshold_step: float = 0.01,
    skipped: int = 0,
) -> HeadEvaluation:
    """Every metric of one single-label head.

    Args:
        labels: (N,) true class indices (untagged records already removed).
        probs: (N, classes) the head's class probabilities.
        head: The bundle head (its classes name the rows).
        target_precision: The precision the abstain threshold must reach.
        threshold_step: The spacing of the precision/coverage curve.
        skipped: Untagged records left out (reported only).

    Raises:
        ClassMismatchError: a label outside the head's classes, or probabilities of another width.
    """
    n_classes = len(head.classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ClassMismatchError(f"head {head.name!r}: expected probabilities of shape (N, {n_classes}), found {probs.shape}")
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(probs):
        raise ClassMismatchError(f"head {head.name!r}: expected one label per prediction, found {len(labels)} labels for {len(probs)} predictions")
    confusion = confusion_matrix(labels, probs.argmax(axis=1), n_classes)
    rows = per_class_table(confusion, head.classes)
    mean_acc, with_support = average_per_class_accuracy(rows)
    curve = precision_coverage(labels, probs, threshold_grid(threshold_step))
    return HeadEvaluation(
        head=head.name,
        attribute=head.attribute,
        classes=tuple(head.classes),
        records=len(labels),
        skipped=skipped,
        accuracy=accuracy(confusion),
        average_per_class_accuracy=mean_acc,
        classes_with_support=with_support,
        top_k={k: top_k_accuracy(labels, probs, k) for k in TOP_K if k <= n_classes},
        per_class=rows,
        confusion=confusion,
        curve=curve,
        abstain=choose_abstain_threshold(curve, target_precision),
    )


# --------------------------------------------------------------------------------------------
# Shards and bundle: which head reads which label column
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadColumn:
    """A bundle head and the label column of the shards it is evaluated against."""

    head: Head
    column: int


def shard_attributes(shards: ShardSet) -> tuple[str, ...]:
    """The attribute of each label column: refine shards one (the contract's ``attribute``), multi shards theirs.

    Raises:
        EvaluateInputError: base (title-word) shards, or shards that do not name their attribute(s).
    """
    if shards.mode == "base":
        raise EvaluateInputError(
            f"shards {shards.root} are base shards (title-word labels); expected refine or multi shards holding human attribute tags"
        )
    if shards.mode == "multi":
        if len(shards.attributes) != shards.label_width:
            raise EvaluateInputError(
                f"multi shards {shards.root}: expected one attribute per label column ({shards.label_width}), found {list(shards.attributes)}"
            )
        return tuple(shards.attributes)
    if not shards.attribute:
        raise EvaluateInputError(f"refine shards {shards.root}: expected the shard manifest to name the attribute, found {shards.attribute!r}")
    return (shards.attribute,)


def _shard_class_count(shards: ShardSet, attribute: str) -> int | None:
    """The class count the shards declare for ``attribute`` (None when they do not say).

    Refine shards: the manifest's ``num_classes``. Multi shards: the number of class names the
    manifest records for the attribute (the manifest's ``num_classes`` is the total over all attributes).
    """
    if shards.mode == "refine":
        return shards.num_classes
    names = shards.class_names(attribute)
    return len(names) if names is not None else None


def check_head_classes(bundle: Bundle, shards: ShardSet, head: Head, column: int) -> None:
    """Check a head's classes against the shards' for its attribute: names when recorded, else the count.

    Raises:
        ClassMismatchError: naming the head's classes and the shards'.
    """
    names = shards.class_names(str(head.attribute))
    if names is not None and names != tuple(head.classes):
        raise ClassMismatchError(
            f"head {head.name!r} of bundle {bundle.path} has classes {list(head.classes)}; "
            f"the shards {shards.root} have classes {list(names)} for attribute {head.attribute!r}"
        )
    declared = _shard_class_count(shards, str(head.attribute))
    if declared is not None and declared != len(head.classes):
        raise ClassMismatchError(
            f"head {head.name!r} of bundle {bundle.path} has {len(head.classes)} classes {list(head.classes)}; "
            f"the shards {shards.root} have {declared} classes for attribute {head.attribute!r}"
        )


def match_heads(bundle: Bundle, shards: ShardSet) -> tuple[HeadColumn, ...]:
    """Pair each bundle head with the shards' label column of its attribute.

    A refine bundle with one head whose attribute differs from the shards' is refused (not guessed);
    heads of a multi-head bundle without a column in multi shards are left out with a warning.

    Raises:
        EvaluateInputError: base shards, no head for any of the shards' attributes.
        ClassMismatchError: a head's classes (names or count) differ from the shards' for its attribute.
    """
    attributes = shard_attributes(shards)
    pairs = []
    for head in bundle.manifest.heads:
        if head.multi_label or head.attribute not in attributes:
            if shards.mode == "multi":
                log.warning("head %r (attribute %r) has no label column in %s; not evaluated", head.name, head.attribute, shards.root)
            continue
        column = attributes.index(head.attribute)
        check_head_classes(bundle, shards, head, column)
        pairs.append(HeadColumn(head, column))
    if not pairs:
        found = [(h.name, h.attribute) for h in bundle.manifest.heads]
        raise EvaluateInputError(f"bundle {bundle.path}: expected a head for attribute(s) {list(attributes)} of the shards, found heads {found}")
    return tuple(pairs)


def split_paths(shards: ShardSet, split: str) -> tuple[Path, ...]:
    """The non-empty ``.rec`` files of ``split``.

    Raises:
        EvaluateInputError: an unknown split name, or a split without records.
    """
    if split not in ("train", "val"):
        raise EvaluateInputError(f"split: expected 'train' or 'val', found {split!r}")
    paths = shards.val if split == "val" else shards.train
    records = shards.val_records if split == "val" else shards.train_records
    if not paths or records == 0:
        raise EvaluateInputError(f"shards {shards.root}: split {split!r} has no records; expected at least one to evaluate on")
    return paths


# --------------------------------------------------------------------------------------------
# Reading records and predicting with the bundle
# --------------------------------------------------------------------------------------------


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


#: Shard records are at most store-size images: a generous pixel limit for decoding them.
RECORD_MAX_PIXELS = 1 << 26


def check_shard_preprocessing(bundle: Bundle, shards: ShardSet) -> None:
    """Refuse shards stored at another size or resize mode than the bundle's preprocessing.

    Records resized once more to another store size (or padded vs cropped) are not what the scoring
    job gives the model, so the metrics and thresholds would describe another model input.

    Raises:
        EvaluateInputError: naming both preprocessings.
    """
    prep = bundle.manifest.preprocessing
    found = (shards.image_size, shards.resize_mode)
    if found != (prep.store_size, prep.resize_mode):
        raise EvaluateInputError(
            f"shards {shards.root} hold images stored at {found[0]} px {found[1]}; bundle {bundle.path} expects its preprocessing, "
            f"store size {prep.store_size} px {prep.resize_mode}: reshard with that [images] conf"
        )


class BundlePredictor:
    """The bundle's inference symbol bound once for a fixed batch size (inference-mode BN).

    Args:
        bundle: A loaded, verified bundle.
        batch_size: Images per forward pass; a short last batch is padded and the padding dropped.
        ctx: The MXNet context (CPU by default).
    """

    def __init__(self, bundle: Bundle, batch_size: int, ctx: mx.Context | None = None) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        shape = (batch_size, *bundle.manifest.input_shape)
        self._module = mx.mod.Module(bundle.inference_symbol(), data_names=[DATA_NAME], label_names=None, context=ctx or mx.cpu())
        self._module.bind(data_shapes=[(DATA_NAME, shape)], for_training=False)
        self._module.set_params(bundle.arg_params, bundle.aux_params, allow_missing=False, allow_extra=True)

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Head name -> (n, classes) probabilities of ``batch`` (n <= batch_size images)."""
        n = len(batch)
        padded = np.zeros((self.batch_size, *self.bundle.manifest.input_shape), dtype=np.float32)
        padded[:n] = batch
        self._module.forward(mx.io.DataBatch(data=[mx.nd.array(padded)]), is_train=False)
        outputs = self._module.get_outputs()
        return {h.name: out.asnumpy()[:n] for h, out in zip(self.bundle.manifest.heads, outputs)}


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
    predictor = BundlePredictor(bundle, batch_size, ctx)
    labels: list[np.ndarray] = []
    probs: dict[str, list[np.ndarray]] = {h.name: [] for h in bundle.manifest.heads}
    pending: list[tuple[np.ndarray, bytes]] = []

    def flush(pool: ThreadPoolExecutor) -> None:
        batch = np.stack(list(pool.map(lambda item: network_input(item[1], bundle), pending)))
        for name, values in predictor(batch).items():
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


# --------------------------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """A bundle evaluated on one split of a shard set.

    Attributes:
        model: The bundle folder.
        params_sha256: The sha256 of the bundle's parameters (which model exactly).
        shards: The shards folder.
        mode: The shards' mode (``refine`` or ``multi``).
        split: The split evaluated.
        records: Records read from the split.
        heads: One evaluation per head, in bundle order.
        evaluated_at: UTC time, ISO 8601.
    """

    model: str
    params_sha256: str
    shards: str
    mode: str
    split: str
    records: int
    heads: tuple[HeadEvaluation, ...]
    evaluated_at: str


def head_labels(labels: np.ndarray, column: int, head: Head) -> tuple[np.ndarray, np.ndarray]:
    """The tagged records' class indices of ``column`` and a mask of those records (-1 = no tag).

    Raises:
        ClassMismatchError: a label that is not an integer in [0, classes) or -1.
    """
    values = labels[:, column]
    tagged = values != NO_TAG
    classes = values[tagged]
    bad = (classes < 0) | (classes >= len(head.classes)) | (classes != np.round(classes))
    if bad.any():
        raise ClassMismatchError(
            f"head {head.name!r}: a record's label is {float(classes[bad][0])!r}; expected a class index 0..{len(head.classes) - 1} "
            f"({len(head.classes)} classes of the bundle) or {NO_TAG} for no tag"
        )
    return classes.astype(np.int64), tagged


def evaluate_bundle(
    bundle: Bundle,
    shards: ShardSet,
    settings: EvaluateConfig,
    *,
    split: str = "val",
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> Evaluation:
    """Evaluate every head of ``bundle`` that has a label column in ``shards`` on ``split``.

    Raises:
        EvaluateInputError: base shards, an empty split, no head for the shards' attribute(s).
        ClassMismatchError: a head's classes do not match the shards' labels.
    """
    pairs = match_heads(bundle, shards)
    check_shard_preprocessing(bundle, shards)
    paths = split_paths(shards, split)
    log.info("evaluating %s on %s split %s (%d shard files), heads %s", bundle.path, shards.root, split, len(paths), [p.head.name for p in pairs])
    labels, probs = predict_records(bundle, paths, batch_size=settings.batch_size, threads=threads, ctx=ctx)
    width = shards.label_width if shards.mode == "multi" else 1
    if labels.shape[1] != width:
        raise EvaluateInputError(f"shards {shards.root}: records carry {labels.shape[1]} label values; expected {width} (mode {shards.mode!r})")
    heads = []
    for pair in pairs:
        classes, tagged = head_labels(labels, pair.column, pair.head)
        if not tagged.any():
            raise EvaluateInputError(f"head {pair.head.name!r}: no record of split {split!r} has a tag for {pair.head.attribute!r}; expected at least one")
        target = settings.target_for(pair.head.attribute or pair.head.name)
        evaluation = evaluate_head(
            classes, probs[pair.head.name][tagged], pair.head,
            target_precision=target, threshold_step=settings.threshold_step, skipped=int((~tagged).sum()),
        )
        log.info(
            "%s: accuracy %.4f, average per-class accuracy %.4f on %d records; abstain threshold %s for precision %.2f",
            pair.head.name, evaluation.accuracy, evaluation.average_per_class_accuracy, evaluation.records,
            evaluation.abstain.threshold if evaluation.abstain.reached else "none reaches it", target,
        )
        heads.append(evaluation)
    return Evaluation(
        model=str(bundle.path),
        params_sha256=bundle.manifest.files[PARAMS_FILE],
        shards=str(shards.root),
        mode=shards.mode,
        split=split,
        records=len(labels),
        heads=tuple(heads),
        evaluated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


# --------------------------------------------------------------------------------------------
# JSON, and the bundle's manifest
# --------------------------------------------------------------------------------------------


def head_to_json(h: HeadEvaluation) -> dict[str, Any]:
    """One head's evaluation as JSON-ready values (see docs/MODEL.md, "Evaluate")."""
    return {
        "head": h.head,
        "attribute": h.attribute,
        "classes": list(h.classes),
        "records": h.records,
        "skipped_no_tag": h.skipped,
        "accuracy": h.accuracy,
        "average_per_class_accuracy": h.average_per_class_accuracy,
        "classes_with_support": h.classes_with_support,
        "top_k_accuracy": {str(k): v for k, v in h.top_k.items()},
        "per_class": [{"class": r.name, **{k: v for k, v in dataclasses.asdict(r).items() if k != "name"}} for r in h.per_class],
        "confusion_matrix": {"rows": "true class", "columns": "predicted class", "counts": h.confusion.tolist()},
        "precision_coverage": [dataclasses.asdict(p) for p in h.curve],
        "abstain": dataclasses.asdict(h.abstain),
    }


def evaluation_to_json(ev: Evaluation) -> dict[str, Any]:
    """The whole evaluation as the JSON object written to ``evaluation.json``."""
    return {
        "format_version": EVALUATION_FORMAT,
        "model": {"path": ev.model, "params_sha256": ev.params_sha256},
        "shards": {"path": ev.shards, "mode": ev.mode, "split": ev.split, "records": ev.records},
        "evaluated_at": ev.evaluated_at,
        "heads": {h.head: head_to_json(h) for h in ev.heads},
    }


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling of ``path``, flush it to disk, and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def manifest_updates(ev: Evaluation) -> tuple[dict[str, float], dict[str, float]]:
    """The thresholds and metrics an evaluation adds to a bundle manifest.

    Thresholds: head name -> abstain threshold; 1.0 when the target is not reached (the scoring job
    then abstains on everything but saturated confidences), flagged by the metric
    ``eval.<head>.target_reached`` = 0.0. Metrics: ``eval.<head>.<name>`` floats.
    """
    thresholds: dict[str, float] = {}
    metrics: dict[str, float] = {}
    for h in ev.heads:
        a = h.abstain
        thresholds[h.head] = float(a.threshold) if a.reached and a.threshold is not None else 1.0
        values = {
            "records": float(h.records),
            "accuracy": h.accuracy,
            "average_per_class_accuracy": h.average_per_class_accuracy,
            **{f"top_{k}_accuracy": v for k, v in h.top_k.items()},
            "target_precision": a.target_precision,
            "target_reached": 1.0 if a.reached else 0.0,
            "abstain_threshold": thresholds[h.head],
            "abstain_coverage": a.coverage,
        }
        if a.precision is not None:
            values["abstain_precision"] = a.precision
        metrics.update({f"eval.{h.head}.{k}": float(v) for k, v in values.items()})
    return thresholds, metrics


def write_thresholds(bundle_path: str | Path, ev: Evaluation) -> Bundle:
    """Put the evaluation's abstain thresholds and metrics into the bundle's ``manifest.json``.

    Through :func:`softlines_attr.model.bundle.update_manifest`: the bundle is verified, the manifest
    rewritten atomically with its checksum recomputed, other keys kept. New thresholds change the
    bundle's :attr:`~softlines_attr.model.bundle.Manifest.model_digest`, hence the scoring tables'
    ``model_version``, so incremental scoring rescores the rows whose abstain decisions they change.

    Raises:
        EvaluateInputError: the bundle's parameters are not the ones evaluated.
        BundleError: the rewritten bundle does not load.
    """
    path = Path(bundle_path)
    manifest = read_manifest(path)
    found = manifest.files.get(PARAMS_FILE)
    if found != ev.params_sha256:
        raise EvaluateInputError(f"bundle {path}: {PARAMS_FILE} has sha256 {found}; expected {ev.params_sha256}, the parameters evaluated")
    thresholds, metrics = manifest_updates(ev)
    update_manifest(path, thresholds={**manifest.thresholds, **thresholds}, metrics={**manifest.metrics, **metrics})
    log.info("wrote thresholds %s into %s", thresholds, path / MANIFEST_FILE)
    return load_bundle(path)


# --------------------------------------------------------------------------------------------
# The command's library function
# --------------------------------------------------------------------------------------------


def default_out_dir(model: str | Path, split: str) -> Path:
    """Where the outputs go without ``--out``: ``<model>-evaluation-<split>``, beside the bundle (never inside it)."""
    model = Path(model)
    return model.parent / f"{model.name}-evaluation-{split}"


def check_out_dir(out: Path, model: Path) -> None:
    """Refuse an output folder inside the bundle (its files would not be covered by the checksums).

    Raises:
        EvaluateInputError: ``out`` is the bundle folder or inside it.
    """
    out_r, model_r = out.resolve(), model.resolve()
    if out_r == model_r or model_r in out_r.parents:
        raise EvaluateInputError(f"output folder {out} is inside the bundle {model}; expected a folder outside it (e.g. {default_out_dir(model, 'val')})")


def evaluate_model(
    model: str | Path,
    shards_dir: str | Path,
    settings: EvaluateConfig,
    *,
    out_dir: str | Path | None = None,
    split: str = "val",
    write_to_bundle: bool = False,
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> tuple[Evaluation, Path]:
    """Load and verify a bundle, evaluate it on a split of the shards, write ``evaluation.json`` and the report.

    Args:
        model: The bundle folder.
        shards_dir: The shard job's output folder (or its ``shards/``).
        settings: ``conf.evaluate``.
        out_dir: Where to write; default :func:`default_out_dir`.
        split: ``val`` (default) or ``train``.
        write_to_bundle: Also write the abstain thresholds and metrics into the bundle's manifest.
        threads: Image decoding threads.
        ctx: The MXNet context (CPU by default).

    Returns:
        The evaluation and the output folder.

    Raises:
        BundleIntegrityError, BundleError: the bundle does not verify.
        TrainInputError: the shards folder is unreadable.
        EvaluateInputError, ClassMismatchError: the bundle and shards do not fit together.
    """
    from softlines_attr.model.report import write_report
    from softlines_attr.shard.contract import read_shard_set

    model = Path(model)
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, split)
    check_out_dir(out, model)
    bundle = load_bundle(model)
    shards = read_shard_set(shards_dir)
    ev = evaluate_bundle(bundle, shards, settings, split=split, threads=threads, ctx=ctx)
    out.mkdir(parents=True, exist_ok=True)
    write_report(ev, out)
    write_text_atomic(out / EVALUATION_FILE, json.dumps(evaluation_to_json(ev), indent=2, sort_keys=True) + "\n")
    if write_to_bundle:
        write_thresholds(model, ev)
    log.info("wrote %s", out / EVALUATION_FILE)
    return ev, out
