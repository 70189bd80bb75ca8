"""The training network: which loss a run uses, the heads' initial biases, and the symbol.

:func:`resolve_loss` picks the objective (``auto``: softmax over the title words for base shards,
softmax for attribute shards); :func:`prior_biases` starts each head at the label priors;
:func:`build_network` puts the heads and their losses (:mod:`softlines_attr.model.losses`) on
Inception-BN features, fresh or a base bundle's backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import mxnet as mx
import numpy as np

from softlines_attr.model.bundle import Bundle
from softlines_attr.model.errors import TrainInputError
from softlines_attr.model.inception_bn import classification_head, inception_bn_features
from softlines_attr.model.losses import LossConfig, multi_hot_softmax_head, softmax_head
from softlines_attr.model.manifest import Head
from softlines_attr.model.refine import refine_features
from softlines_attr.train_config import TrainConfig

LossKind = Literal["sigmoid", "softmax", "softmax_multi"]
# The base model's objective when --loss auto: measured on real products (docs/MODEL.md, Quality benchmark)
DEFAULT_BASE_LOSS: LossKind = "softmax_multi"


def loss_settings(tc: TrainConfig) -> LossConfig:
    """The softmax heads' loss settings of ``tc``."""
    return LossConfig(tc.class_weights, tc.cb_beta, tc.focal_gamma, tc.label_smoothing)


def resolve_loss(requested: str, mode: str) -> LossKind:
    """The loss a run of ``requested`` (``auto`` or a loss) trains on shards of ``mode``.

    Raises:
        TrainInputError: a multi-hot loss (``sigmoid``, ``softmax_multi``) on refine or multi shards.
    """
    if requested == "auto":
        return DEFAULT_BASE_LOSS if mode == "base" else "softmax"
    if requested not in ("sigmoid", "softmax", "softmax_multi"):
        raise TrainInputError(f"loss: expected auto, sigmoid, softmax or softmax_multi, found {requested!r}")
    if requested != "softmax" and mode != "base":
        raise TrainInputError(
            f"loss {requested!r} expects base (title-word) shards; {mode} shards hold one class per image and "
            f"attribute, found mode {mode!r}"
        )
    return requested  # type: ignore[return-value]  # checked against the three LossKind values just above


def word_prior(counts: np.ndarray, records: int) -> np.ndarray:
    """Each word's share of the train images (the prior baseline's constant scores)."""
    return np.asarray(counts, dtype=np.float64) / max(records, 1)


def prior_biases(
    heads: Sequence[Head], counts: Sequence[np.ndarray], *, loss: LossKind, records: int
) -> dict[str, mx.nd.NDArray]:
    """Initial biases of the heads' FC layers: the log of the train frequencies (a model that starts at the priors).

    Sigmoid heads: the logit of each word's share of the images; softmax heads: the log of each
    class's share of the labels (add-one smoothed). The network then spends its first updates on
    what the images say beyond the priors, not on learning the priors.
    """
    out: dict[str, mx.nd.NDArray] = {}
    for head, c in zip(heads, counts):
        c = np.asarray(c, dtype=np.float64)
        if loss == "sigmoid":
            share = np.clip(c / max(records, 1), 1e-4, 1 - 1e-4)
            bias = np.log(share / (1 - share))
        else:
            share = (c + 1.0) / (c.sum() + len(c))
            bias = np.log(share) - np.log(share).mean()
        out[f"fc_{head.name}_bias"] = mx.nd.array(bias.astype(np.float32))
    return out


def build_network(
    heads: Sequence[Head],
    lc: LossConfig,
    *,
    base: Bundle | None,
    width: float,
    masked: bool,
    loss: LossKind = "softmax",
) -> mx.sym.Symbol:
    """Inception-BN features (the base's backbone, or fresh at ``width``) with the given heads.

    One plain head is exactly :func:`classification_head` (softmax or sigmoid). ``softmax_multi``
    (base shards) is :func:`~softlines_attr.model.losses.multi_hot_softmax_head`. Softmax heads
    with class weights, a focal term or smoothing, or several heads (multi shards, ``masked``:
    label -1 = no tag), are :func:`softlines_attr.model.losses.softmax_head`; the outputs are
    grouped as every head's probabilities in head order, then the loss outputs.
    """
    features = refine_features(base) if base is not None else inception_bn_features(width)
    if loss == "softmax_multi":
        return multi_hot_softmax_head(
            features, len(heads[0].classes), heads[0].name, label_smoothing=lc.label_smoothing
        )
    if len(heads) == 1 and (heads[0].multi_label or (lc.plain and not masked)):
        return classification_head(features, len(heads[0].classes), heads[0].name, multi_label=heads[0].multi_label)
    probs, losses = [], []
    for h in heads:
        out = softmax_head(features, len(h.classes), h.name, lc, masked=masked)
        if len(out.list_outputs()) == 2:
            probs.append(out[0])
            losses.append(out[1])
        else:
            probs.append(out)
    outputs = probs + losses
    return outputs[0] if len(outputs) == 1 else mx.sym.Group(outputs)
