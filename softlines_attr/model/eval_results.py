"""What ``evaluate`` finds: one :class:`HeadEvaluation` per head, gathered in an :class:`Evaluation`.

Written to ``evaluation.json`` and into the bundle by :mod:`softlines_attr.model.eval_output`, drawn
by :mod:`softlines_attr.model.report`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softlines_attr.model.metrics import ClassRow
from softlines_attr.model.thresholds import AbstainChoice, CurvePoint


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
