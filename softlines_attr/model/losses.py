"""Softmax heads for class imbalance and missing tags: class weights, focal loss, label masking.

A head built here keeps the layer names the rest of the package relies on: the classifier is
``fc_<head>`` (so :func:`softlines_attr.model.bundle.inference_symbol` cuts there and applies a
softmax, and bundles stay compatible) and the first output, ``<head>``, is the class probabilities
(gradient blocked), used by the metrics. Training then runs on a second output, ``<head>_loss``,
per image::

    loss_i = - w[y_i] * (1 - p_i[y_i]) ** gamma * log p_i[y_i]        (0 when y_i < 0: no tag)

built from MXNet symbol ops (``log_softmax``, ``one_hot``, ``MakeLoss``), so MXNet's own autograd
gives the gradient. ``gamma = 0`` is cross-entropy; ``w`` (one weight per class) is a variable
``<head>_class_weight`` that training holds fixed (it is saved with the model, so a bundle records
the weights it was trained with). Label smoothing ``eps`` replaces ``log p_i[y_i]`` by
``(1 - eps) log p_i[y_i] + eps * mean_c log p_i[c]``. A head with neither weights, focal term nor
smoothing is MXNet's ``SoftmaxOutput`` (with ``ignore_label=-1`` when tags may be missing), the same
gradient.

The base model on title words can be trained with :func:`multi_hot_softmax_head`: one softmax over
the vocabulary against the multi-hot target divided by its number of words (Mahajan et al. 2018,
"Exploring the Limits of Weakly Supervised Pretraining"), ``loss_i = - sum_c t_ic log p_ic`` with
``t_i = y_i / |y_i|``, optionally smoothed towards the uniform distribution.

Class weights (:func:`class_weights`) come from the train split's label counts: inverse frequency,
or the inverse "effective number of samples" of Cui et al. 2019, ``(1 - beta ** n) / (1 - beta)``,
both scaled so that the average weight over the training images is 1 (the learning rate keeps its
meaning).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import mxnet as mx
import numpy as np

from softlines_attr.model.errors import ModelError
from softlines_attr.model.inception_bn import classification_head

log = logging.getLogger(__name__)

CLASS_WEIGHT_SUFFIX = "_class_weight"
LOSS_SUFFIX = "_loss"
IGNORE_LABEL = -1.0
WeightScheme = Literal["none", "inverse", "effective"]


@dataclass(frozen=True)
class LossConfig:
    """How a softmax head is trained.

    Attributes:
        class_weights: ``none``, ``inverse`` (frequency) or ``effective`` (number of samples, Cui et al. 2019).
        beta: The effective-number hyper-parameter, in [0, 1).
        focal_gamma: Focal-loss exponent; 0 = plain (weighted) cross-entropy.
        label_smoothing: Share of the target spread uniformly over the classes, in [0, 1).
    """

    class_weights: WeightScheme = "none"
    beta: float = 0.999
    focal_gamma: float = 0.0
    label_smoothing: float = 0.0

    def validate(self) -> None:
        """Raise ModelError naming a bad setting."""
        if self.class_weights not in ("none", "inverse", "effective"):
            raise ModelError(f"class weights: expected none, inverse or effective, found {self.class_weights!r}")
        if not 0.0 <= self.beta < 1.0:
            raise ModelError(f"effective-number beta: expected 0 <= beta < 1, found {self.beta}")
        if self.focal_gamma < 0:
            raise ModelError(f"focal gamma: expected >= 0, found {self.focal_gamma}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ModelError(f"label smoothing: expected 0 <= smoothing < 1, found {self.label_smoothing}")

    @property
    def plain(self) -> bool:
        """True when the head is plain softmax cross-entropy (no weights, no focal term, no smoothing)."""
        return self.class_weights == "none" and self.focal_gamma == 0 and self.label_smoothing == 0


def class_weights(counts: Sequence[int] | np.ndarray, scheme: WeightScheme, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights from the train split's label counts.

    ``inverse``: w_c proportional to 1 / n_c. ``effective``: w_c proportional to
    (1 - beta) / (1 - beta ** n_c) (Cui et al. 2019; beta = 0 gives equal weights, beta -> 1 inverse
    frequency). Both are scaled so that sum_c n_c w_c = sum_c n_c (average weight over the training
    images is 1). A class with no training image gets weight 0 (it never occurs in the loss).
    ``none``: all ones.

    Args:
        counts: Training images per class, in class order.
        scheme: ``none``, ``inverse`` or ``effective``.
        beta: The effective-number hyper-parameter, in [0, 1).

    Returns:
        float32 array of one weight per class.

    Raises:
        ModelError: negative counts, no image at all, an unknown scheme or a beta outside [0, 1).
    """
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0 or (n < 0).any():
        raise ModelError(f"class weights: expected one non-negative count per class, found {n.tolist()}")
    if scheme == "none":
        return np.ones(n.size, dtype=np.float32)
    if n.sum() == 0:
        raise ModelError(
            "class weights: expected at least one training image, found label counts of zero for every class"
        )
    present = n > 0
    raw = np.zeros_like(n)
    if scheme == "inverse":
        raw[present] = 1.0 / n[present]
    elif scheme == "effective":
        if not 0.0 <= beta < 1.0:
            raise ModelError(f"effective-number beta: expected 0 <= beta < 1, found {beta}")
        raw[present] = (1.0 - beta) / (1.0 - np.power(beta, n[present]))
    else:
        raise ModelError(f"class weights: expected none, inverse or effective, found {scheme!r}")
    weights = raw * n.sum() / float((raw * n).sum())
    return weights.astype(np.float32)


def softmax_head(
    features: mx.sym.Symbol,
    num_classes: int,
    head: str,
    loss: LossConfig,
    *,
    masked: bool = False,
) -> mx.sym.Symbol:
    """A softmax head ``fc_<head>`` on ``features`` trained with ``loss``.

    Args:
        features: The pooled features (``flatten``).
        num_classes: Classes of the head.
        head: The head name (FC ``fc_<head>``, label ``<head>_label``).
        loss: Class weighting and focal exponent.
        masked: Labels may be -1 (no tag): such an image adds nothing to the loss or the gradient.

    Returns:
        A plain head (``SoftmaxOutput``, one output ``<head>``) when ``loss.plain``; else a group of
        ``<head>`` (probabilities, no gradient) and ``<head>_loss`` (the per-image loss, ``MakeLoss``).
        The weighted / focal head has an extra argument ``<head>_class_weight`` of shape
        (num_classes,), to be fed and held fixed (:func:`is_loss_constant`).
    """
    loss.validate()
    if loss.plain:
        if not masked:
            return classification_head(features, num_classes, head)
        head_sym = classification_head(features, num_classes, head)  # validates the name
        fc = head_sym.get_internals()[f"fc_{head}_output"]
        return mx.sym.SoftmaxOutput(
            fc, label=mx.sym.Variable(f"{head}_label"), use_ignore=True, ignore_label=IGNORE_LABEL, name=head
        )
    fc = classification_head(features, num_classes, head).get_internals()[f"fc_{head}_output"]
    label = mx.sym.Variable(f"{head}_label")
    weight = mx.sym.Variable(f"{head}{CLASS_WEIGHT_SUFFIX}", shape=(num_classes,))
    log_p = mx.sym.log_softmax(fc, axis=1)
    onehot = mx.sym.one_hot(label, depth=num_classes)  # a label of -1 (no tag) is a row of zeros
    log_py = mx.sym.sum(log_p * onehot, axis=1)  # 0 for an untagged image
    w_y = mx.sym.sum(mx.sym.broadcast_mul(onehot, mx.sym.reshape(weight, shape=(1, num_classes))), axis=1)
    log_target = log_py
    if loss.label_smoothing > 0:
        tagged = mx.sym.sum(onehot, axis=1)  # 1 for a tagged image, 0 for label -1
        eps = loss.label_smoothing
        log_target = (1.0 - eps) * log_py + eps * tagged * mx.sym.mean(log_p, axis=1)
    per_image = -w_y * log_target
    if loss.focal_gamma > 0:
        p_y = mx.sym.exp(log_py)
        per_image = per_image * mx.sym.pow(mx.sym.clip(1.0 - p_y, 1e-12, 1.0), loss.focal_gamma)
    loss_out = mx.sym.MakeLoss(per_image, normalization="null", name=f"{head}{LOSS_SUFFIX}")
    probs = mx.sym.BlockGrad(mx.sym.softmax(fc, axis=1), name=head)
    return mx.sym.Group([probs, loss_out])


def multi_hot_softmax_head(
    features: mx.sym.Symbol, num_classes: int, head: str, *, label_smoothing: float = 0.0
) -> mx.sym.Symbol:
    """A softmax head ``fc_<head>`` trained on multi-hot targets normalised to sum to one.

    Each image's target is its 0/1 label row divided by its number of words (Mahajan et al. 2018),
    smoothed as ``(1 - eps) t + eps / num_classes``; the loss is the cross-entropy against it. An
    image with no word (a row of zeros) adds nothing.

    Args:
        features: The pooled features (``flatten``).
        num_classes: The vocabulary size.
        head: The head name (FC ``fc_<head>``, label ``<head>_label`` of shape (N, num_classes)).
        label_smoothing: ``eps`` in [0, 1).

    Returns:
        A group of ``<head>`` (softmax probabilities, no gradient) and ``<head>_loss`` (per image).

    Raises:
        ModelError: a smoothing outside [0, 1), or a bad class count or head name.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ModelError(f"label smoothing: expected 0 <= smoothing < 1, found {label_smoothing}")
    fc = classification_head(features, num_classes, head).get_internals()[f"fc_{head}_output"]
    label = mx.sym.Variable(f"{head}_label")
    words = mx.sym.sum(label, axis=1, keepdims=True)
    target = mx.sym.broadcast_div(label, mx.sym.maximum(words, 1.0))
    if label_smoothing > 0:
        has_words = mx.sym.clip(words, 0.0, 1.0)
        target = (1.0 - label_smoothing) * target + mx.sym.broadcast_mul(has_words, mx.sym.ones_like(target)) * (
            label_smoothing / num_classes
        )
    log_p = mx.sym.log_softmax(fc, axis=1)
    per_image = -mx.sym.sum(target * log_p, axis=1)
    loss_out = mx.sym.MakeLoss(per_image, normalization="null", name=f"{head}{LOSS_SUFFIX}")
    probs = mx.sym.BlockGrad(mx.sym.softmax(fc, axis=1), name=head)
    return mx.sym.Group([probs, loss_out])


def is_loss_constant(name: str) -> bool:
    """True for arguments that are loss settings, not learned weights (class-weight vectors)."""
    return name.endswith(CLASS_WEIGHT_SUFFIX)


def loss_constants(sym: mx.sym.Symbol, weights: dict[str, np.ndarray]) -> dict[str, mx.nd.NDArray]:
    """The values of ``sym``'s class-weight arguments, from ``weights`` (head -> per-class weights).

    Raises:
        ModelError: a class-weight argument with no weights given, or of another length.
    """
    out: dict[str, mx.nd.NDArray] = {}
    for name in sym.list_arguments():
        if not is_loss_constant(name):
            continue
        head = name[: -len(CLASS_WEIGHT_SUFFIX)]
        if head not in weights:
            raise ModelError(
                f"loss argument {name!r}: expected class weights for head {head!r}, found weights for {sorted(weights)}"
            )
        out[name] = mx.nd.array(np.asarray(weights[head], dtype=np.float32))
    return out
