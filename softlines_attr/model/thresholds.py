"""Abstain thresholds: precision and coverage of the top-1 prediction per confidence threshold.

The scoring job keeps a value when its top probability is at least the head's threshold; these
functions measure that rule on a split (:func:`precision_coverage`) and pick the lowest threshold
that reaches a target precision (:func:`choose_abstain_threshold`), inventing none when no
threshold does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softlines_attr.model.metrics import _ratio


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
        points.append(
            CurvePoint(
                threshold=float(t),
                kept=kept,
                correct=correct,
                coverage=kept / n if n else 0.0,
                precision=_ratio(correct, kept),
            )
        )
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
