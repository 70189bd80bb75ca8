"""One evaluation as data: per-head results, the whole evaluation, and its JSON (``evaluation.json``).

:func:`evaluate_head` computes every metric of one head from labels and probabilities (pure
numpy, :mod:`~softlines_attr.model.metrics` and :mod:`~softlines_attr.model.thresholds`); the
driver that reads shards and runs a bundle is :mod:`softlines_attr.model.evaluate`; the Markdown /
HTML report is :mod:`softlines_attr.model.report`.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softlines_attr.model.errors import ClassMismatchError
from softlines_attr.model.manifest import Head
from softlines_attr.model.metrics import (
    ClassRow,
    accuracy,
    average_per_class_accuracy,
    confusion_matrix,
    per_class_table,
    top_k_accuracy,
)
from softlines_attr.model.thresholds import (
    AbstainChoice,
    CurvePoint,
    choose_abstain_threshold,
    precision_coverage,
    threshold_grid,
)

EVALUATION_FILE = "evaluation.json"
EVALUATION_FORMAT = 1
TOP_K = (1, 2, 3)


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
        raise ClassMismatchError(
            f"head {head.name!r}: expected probabilities of shape (N, {n_classes}), found {probs.shape}"
        )
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(probs):
        raise ClassMismatchError(
            f"head {head.name!r}: expected one label per prediction, found {len(labels)} labels for {len(probs)} "
            f"predictions"
        )
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
        "per_class": [
            {"class": r.name, **{k: v for k, v in dataclasses.asdict(r).items() if k != "name"}} for r in h.per_class
        ],
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
