"""Training-time metrics: multi-label (mAP, precision at 1) and single-label (accuracy, average per-class accuracy)."""

from __future__ import annotations

import mxnet as mx
import numpy as np


class HeadsAccuracy(mx.metric.EvalMetric):
    """Training accuracy over one or more softmax heads: output i against label i, labels < 0 skipped."""

    def __init__(self) -> None:
        super().__init__("accuracy")

    def update(self, labels: list[mx.nd.NDArray], preds: list[mx.nd.NDArray]) -> None:
        for label, pred in zip(labels, preds[: len(labels)]):
            y = label.asnumpy().reshape(-1).astype(np.int64)
            keep = y >= 0
            hits = int((np.argmax(pred.asnumpy(), axis=1)[keep] == y[keep]).sum())
            n = int(keep.sum())
            self.sum_metric += hits
            self.global_sum_metric += hits
            self.num_inst += n
            self.global_num_inst += n


def precision_at_1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Multi-label precision at 1: the share of images whose highest-scored class is one of their labels."""
    top = np.argmax(scores, axis=1)
    return float(np.mean(labels[np.arange(len(top)), top] > 0)) if len(top) else 0.0


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class average precision over a whole split; NaN for a class with no positive image.

    AP of a class: the mean, over its positive images, of the precision among the images scored at
    least as high (images ranked by descending score, ties broken by order).
    """
    ap = np.full(labels.shape[1], np.nan)
    for c in range(labels.shape[1]):
        positives = labels[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        ap[c] = float(precision[hits].mean())
    return ap


def mean_class_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average per-class accuracy: the mean, over the classes present in ``labels``, of the share of
    that class's images predicted as it (per-class recall). Labels < 0 (no tag) are skipped; 0.0 when none is left.
    """
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    keep = y >= 0
    y, predicted = y[keep], np.argmax(np.asarray(scores)[keep], axis=1)
    if not len(y):
        return 0.0
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))


def split_metrics(labels: np.ndarray, scores: np.ndarray, *, multi_label: bool, prefix: str = "val_") -> dict[str, float]:
    """Metrics of a whole split: mAP and precision at 1 (multi-label), or accuracy (single label)."""
    if multi_label:
        ap = average_precision(labels, scores)
        return {
            f"{prefix}map": float(np.nanmean(ap)) if not np.isnan(ap).all() else 0.0,
            f"{prefix}precision_at_1": precision_at_1(labels, scores),
            f"{prefix}records": float(len(labels)),
        }
    y = labels.reshape(-1).astype(np.int64)
    keep = y >= 0  # multi shards: -1 = no tag for this attribute
    y, scores = y[keep], scores[keep]
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y)) if len(y) else 0.0
    return {f"{prefix}accuracy": accuracy, f"{prefix}mean_class_accuracy": mean_class_accuracy(y, scores), f"{prefix}records": float(len(y))}


def train_metric(multi_label: bool) -> mx.metric.EvalMetric:
    if multi_label:
        return mx.metric.CustomMetric(precision_at_1, name="precision_at_1", allow_extra_outputs=True)
    return HeadsAccuracy()


