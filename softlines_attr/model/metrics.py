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




def title_word_metrics(labels: np.ndarray, scores: np.ndarray, prior: np.ndarray, *, top_words: int = 10, prefix: str = "val_") -> dict[str, float]:
    """What a base model on title words has learned, beside what the label priors alone give.

    Args:
        labels: (N, K) 0/1 title words of each image.
        scores: (N, K) the model's scores (sigmoid or softmax; only their order per word matters).
        prior: (K,) each word's frequency in the train split: the scores of a model that learned
            only the priors (every image scored the same), whose mAP is the baseline.
        top_words: How many of the most frequent words (by ``prior``) ``top_words_map`` averages.
        prefix: Key prefix.

    Returns:
        ``map`` and ``prior_map`` (mAP over the words with a positive image), ``map_over_prior``
        (their ratio), ``precision_at_1`` and ``precision_at_5`` (the share of the top 1 / top 5
        words of an image that are in its title), ``top_words_map`` (mAP of the ``top_words`` most
        frequent words), ``distinct_top1`` (how many different words are some image's top
        prediction: a model that learned only the priors predicts one), and ``records``.
    """
    labels = np.asarray(labels) > 0
    scores = np.asarray(scores, dtype=np.float64)
    if not len(labels):
        return {f"{prefix}records": 0.0}
    ap = average_precision(labels, scores)
    prior_scores = np.broadcast_to(np.asarray(prior, dtype=np.float64), scores.shape)
    prior_ap = average_precision(labels, prior_scores)
    present = ~np.isnan(ap)
    mean_ap = float(np.mean(ap[present])) if present.any() else 0.0
    mean_prior = float(np.mean(prior_ap[present])) if present.any() else 0.0
    frequent = [c for c in np.argsort(-np.asarray(prior), kind="stable") if present[c]][:top_words]
    k = min(5, scores.shape[1])
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {
        f"{prefix}map": mean_ap,
        f"{prefix}prior_map": mean_prior,
        f"{prefix}map_over_prior": mean_ap / mean_prior if mean_prior > 0 else 0.0,
        f"{prefix}precision_at_1": precision_at_1(labels.astype(np.float32), scores),
        f"{prefix}precision_at_5": float(np.mean(np.take_along_axis(labels, top5, axis=1))),
        f"{prefix}top_words_map": float(np.mean(ap[frequent])) if frequent else 0.0,
        f"{prefix}distinct_top1": float(len(np.unique(np.argmax(scores, axis=1)))),
        f"{prefix}records": float(len(labels)),
    }


def batch_cross_entropy(labels: list[np.ndarray], probs: list[np.ndarray], kind: str) -> float:
    """The mean per-image loss of one batch, from the heads' probabilities (for progress lines).

    ``kind``: ``sigmoid`` (binary cross-entropy summed over the words), ``softmax_multi``
    (cross-entropy against the multi-hot target divided by its number of words) or ``softmax``
    (cross-entropy of the labelled class, summed over the heads; labels < 0 skipped). Class
    weights, focal terms and smoothing are not applied: this is the plain cross-entropy.
    """
    total, eps = 0.0, 1e-7
    for y, p in zip(labels, probs):
        p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
        if kind == "sigmoid":
            total += float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(axis=1)))
        elif kind == "softmax_multi":
            t = y / np.maximum(y.sum(axis=1, keepdims=True), 1.0)
            total += float(np.mean(-(t * np.log(p)).sum(axis=1)))
        else:
            c = np.asarray(y).reshape(-1).astype(np.int64)
            keep = c >= 0
            if keep.any():
                total += float(np.mean(-np.log(p[np.nonzero(keep)[0], c[keep]])))
    return total
