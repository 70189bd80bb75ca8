"""Validation during training: every head's metrics on the val split through the one Predictor, and their log line."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mxnet as mx
import numpy as np

from softlines_attr.model.manifest import Head
from softlines_attr.model.metrics import split_metrics, title_word_metrics
from softlines_attr.model.predictor import Predictor

log = logging.getLogger(__name__)


def val_metrics(
    mod: mx.mod.Module, it: mx.io.DataIter, heads: Sequence[Head], ctx: mx.Context, *, prior: np.ndarray | None = None
) -> dict[str, float]:
    """Validation metrics of every head, predicted by a :class:`Predictor` of the module's current parameters.

    With ``prior`` (base shards, ``it`` giving multi-hot labels): :func:`title_word_metrics`.
    Otherwise accuracy and average per-class accuracy (:func:`split_metrics`); several heads are
    prefixed ``val_<head>_`` and summarised by ``val_accuracy`` / ``val_mean_class_accuracy``
    (the means over the heads).
    """
    head_names = [h.name for h in heads]
    shape = mod.data_shapes[0].shape
    predictor = Predictor.for_network(mod.symbol, heads, shape[1:], *mod.get_params(), batch_size=shape[0], ctx=ctx)
    labels, probs = predictor.predict_iter(it)
    scores = [probs[name] for name in head_names]
    if prior is not None:
        return title_word_metrics(labels[0], scores[0], prior)
    if len(head_names) == 1:
        return split_metrics(labels[0], scores[0], multi_label=False)
    metrics: dict[str, float] = {}
    for name, y, p in zip(head_names, labels, scores):
        metrics.update(split_metrics(y, p, multi_label=False, prefix=f"val_{name}_"))
    for key in ("accuracy", "mean_class_accuracy"):
        metrics[f"val_{key}"] = float(np.mean([metrics[f"val_{name}_{key}"] for name in head_names]))
    return metrics


def describe_metrics(metrics: dict[str, float], head_names: Sequence[str]) -> str:
    """One log line of validation metrics: the base's mAP against its prior, or accuracy per head."""
    if "val_map" in metrics:
        return (
            f"mAP {metrics['val_map']:.4f} (priors alone {metrics['val_prior_map']:.4f}, "
            f"{metrics['val_map_over_prior']:.1f}x), "
            f"precision@1 {metrics['val_precision_at_1']:.3f}, @5 {metrics['val_precision_at_5']:.3f}, "
            f"AP of the 10 most frequent words {metrics['val_top_words_map']:.3f}, distinct top-1 words "
            f"{int(metrics['val_distinct_top1'])}"
        )
    if len(head_names) == 1:
        return (
            f"accuracy {metrics.get('val_accuracy', 0):.4f}, average per-class accuracy "
            f"{metrics.get('val_mean_class_accuracy', 0):.4f}"
        )
    return ", ".join(
        f"{h} {metrics.get(f'val_{h}_accuracy', 0):.3f} (per-class "
        f"{metrics.get(f'val_{h}_mean_class_accuracy', 0):.3f})"
        for h in head_names
    )
