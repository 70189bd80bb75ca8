"""The optimizer recipe: learning-rate schedule with warm-up, and which parameters get weight decay.

SGD with momentum, as the paper trained Inception-BN. The learning rate rises linearly from 0 over
``warmup_epochs`` (large initial steps on a freshly initialised network with BN otherwise throw
it into a state it learns little from), then follows a cosine to 0 at the last update, or the
step schedule (``lr_step_epochs`` x ``lr_factor``). BN's gamma and beta and every bias are
excluded from weight decay by default: decaying a BN scale only rescales the next layer's input
and fights the normalisation (Goyal et al. 2017; He et al. 2019, "Bag of Tricks").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import mxnet as mx

from softlines_attr.model.errors import TrainInputError
from softlines_attr.train_config import Schedule

log = logging.getLogger(__name__)

NO_DECAY_SUFFIXES = ("_gamma", "_beta", "_bias")


def lr_scheduler(
    schedule: Schedule,
    *,
    base_lr: float,
    epochs: int,
    batches_per_epoch: int,
    warmup_epochs: float = 0.0,
    step_epochs: Sequence[int] = (),
    factor: float = 0.1,
) -> mx.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule over ``epochs`` x ``batches_per_epoch`` updates (None: constant).

    Args:
        schedule: ``cosine`` (to 0 at the last update) or ``step`` (x ``factor`` after each of ``step_epochs``).
        base_lr: The rate after warm-up.
        epochs: Epochs of the run.
        batches_per_epoch: Updates per epoch.
        warmup_epochs: Epochs (may be fractional) of linear warm-up from 0; at most half the run
            (a one-epoch run warms up over its first half).
        step_epochs: ``step``: the epochs after which the rate drops.
        factor: ``step``: the drop factor.

    Raises:
        TrainInputError: an unknown schedule or a negative warm-up.
    """
    total = max(1, epochs * batches_per_epoch)
    if not warmup_epochs >= 0:
        raise TrainInputError(f"warm-up: expected warmup_epochs >= 0, found {warmup_epochs}")
    warmup = min(int(round(warmup_epochs * batches_per_epoch)), total // 2)
    if schedule == "cosine":
        return mx.lr_scheduler.CosineScheduler(
            max_update=total, base_lr=base_lr, final_lr=0.0, warmup_steps=warmup, warmup_begin_lr=0.0
        )
    if schedule != "step":
        raise TrainInputError(f"learning-rate schedule: expected step or cosine, found {schedule!r}")
    steps = [e * batches_per_epoch for e in step_epochs if 0 < e < epochs and e * batches_per_epoch > warmup]
    if steps:
        return mx.lr_scheduler.MultiFactorScheduler(
            step=steps, factor=factor, base_lr=base_lr, warmup_steps=warmup, warmup_begin_lr=0.0
        )
    if warmup:
        # MultiFactorScheduler needs a step: one after the run's last update never fires
        return mx.lr_scheduler.MultiFactorScheduler(
            step=[total + 1], factor=1.0, base_lr=base_lr, warmup_steps=warmup, warmup_begin_lr=0.0
        )
    return None


def no_decay_names(param_names: Sequence[str]) -> list[str]:
    """The parameters exempt from weight decay: BN's gamma and beta, and biases."""
    return [n for n in param_names if n.endswith(NO_DECAY_SUFFIXES)]
