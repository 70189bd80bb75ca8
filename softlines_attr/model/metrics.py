"""Every metric of the project, for the training logs and for ``evaluate`` alike.

Title words (multi-label): tie-aware average precision, the priors-only baseline, precision at k.
Attributes (one class per image): the confusion matrix, the per-class table, accuracy, average
per-class accuracy, top-k accuracy. The MXNet metric classes are the training loop's running
metrics; the rest is plain numpy on whole splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mxnet as mx
import numpy as np

from softlines_attr.model.errors import ClassMismatchError


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

    AP of a class: the sum, over the distinct scores from the highest down, of the share of the
    class's positives scored exactly that high times the precision among the images scored at least
    that high. Tied images count as one threshold (no order among them is invented), so a class
    scored the same for every image (a model that learned only the priors) gets exactly its share
    of positive images; with no ties it is the mean precision at each positive's rank.
    """
    ap = np.full(labels.shape[1], np.nan)
    for c in range(labels.shape[1]):
        positives = labels[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        ranked, hits = scores[order, c], positives[order].astype(np.float64)
        last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]  # the end of each group of equal scores
        cum_hits = np.cumsum(hits)[last_of_tie]
        precision = cum_hits / (np.nonzero(last_of_tie)[0] + 1)
        new_hits = np.diff(np.r_[0.0, cum_hits])
        ap[c] = float((new_hits * precision).sum() / positives.sum())
    return ap


def split_metrics(
    labels: np.ndarray, scores: np.ndarray, *, multi_label: bool, prefix: str = "val_"
) -> dict[str, float]:
    """Metrics of a whole split: mAP and precision at 1 (multi-label), or accuracy and average per-class accuracy.

    Single-label: labels < 0 (multi shards: no tag for this attribute) are skipped; the keys are
    ``accuracy`` (:func:`accuracy`), ``mean_class_accuracy`` (:func:`average_per_class_accuracy`, the
    number ``evaluate`` reports as ``average_per_class_accuracy``) and ``records``.

    Raises:
        ClassMismatchError: a single label outside the scores' classes.
    """
    if multi_label:
        ap = average_precision(labels, scores)
        return {
            f"{prefix}map": float(np.nanmean(ap)) if not np.isnan(ap).all() else 0.0,
            f"{prefix}precision_at_1": precision_at_1(labels, scores),
            f"{prefix}records": float(len(labels)),
        }
    y = labels.reshape(-1).astype(np.int64)
    keep = y >= 0
    y, scores = y[keep], scores[keep]
    classes = scores.shape[1]
    confusion = confusion_matrix(y, np.argmax(scores, axis=1), classes)
    mean_class, _ = average_per_class_accuracy(per_class_table(confusion, [str(c) for c in range(classes)]))
    return {
        f"{prefix}accuracy": accuracy(confusion),
        f"{prefix}mean_class_accuracy": mean_class,
        f"{prefix}records": float(len(y)),
    }


def train_metric(multi_label: bool) -> mx.metric.EvalMetric:
    """The running train metric: precision at 1 for multi-hot targets, else :class:`HeadsAccuracy`."""
    if multi_label:
        return mx.metric.CustomMetric(precision_at_1, name="precision_at_1", allow_extra_outputs=True)
    return HeadsAccuracy()


def title_word_metrics(
    labels: np.ndarray, scores: np.ndarray, prior: np.ndarray, *, top_words: int = 10, prefix: str = "val_"
) -> dict[str, float]:
    """What a base model on title words has learned, beside what the label priors alone give.

    Args:
        labels: (N, K) 0/1 title words of each image.
        scores: (N, K) the model's scores (sigmoid or softmax; only their order per word matters).
        prior: (K,) each word's frequency in the train split: the scores of a model that learned
            only the priors (every image scored the same for a word), whose mAP is the baseline: each
            word's AP is then its share of positive val images (:func:`average_precision` counts ties
            as one threshold), so ``prior_map`` is the mean share of positives.
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


# --------------------------------------------------------------------------------------------
# Classification (one class per image and attribute): the per-class table, accuracy, top-k
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
            raise ClassMismatchError(
                f"a {name} is class index {bad}; expected indices 0..{num_classes - 1} ({num_classes} classes)"
            )
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
    """The mean per-class accuracy over the classes with support, and how many classes that is.

    The paper's "average per-class accuracy": the mean recall over the classes present. Training logs
    it as ``val_mean_class_accuracy`` (:func:`split_metrics`), ``evaluate`` as ``average_per_class_accuracy``.
    """
    values = [r.accuracy for r in rows if r.accuracy is not None]
    return (float(np.mean(values)) if values else 0.0), len(values)


def top_k_accuracy(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    """The share of images whose true class is among the ``k`` highest probabilities (ties: lower index first)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if not len(labels):
        return 0.0
    top = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))
