"""One training epoch: the updates, the running loss and a progress line every ``log_every`` batches."""

from __future__ import annotations

import logging
import time

import mxnet as mx
import numpy as np

from softlines_attr.model.distributed.parts import fixed_batches
from softlines_attr.model.metrics import batch_cross_entropy
from softlines_attr.model.network import LossKind
from softlines_attr.train_config import TrainConfig

log = logging.getLogger(__name__)


def run_epoch(
    mod: mx.mod.Module,
    it: mx.io.DataIter,
    metric: mx.metric.EvalMetric,
    epoch: int,
    tc: TrainConfig,
    batches: int,
    loss: LossKind,
    seen: list | None,
) -> float:
    """One epoch of ``batches`` updates; a progress line every ``tc.log_every`` batches. Returns the mean train
    cross-entropy."""
    started = window_started = time.perf_counter()
    total, window = 0.0, []
    heads = len(mod.label_names)
    kind = "softmax" if loss == "softmax" else loss
    for i, batch in enumerate(fixed_batches(it, batches, seen), start=1):
        mod.forward_backward(batch)
        mod.update()
        mod.update_metric(metric, batch.label)
        outputs = mod.get_outputs()[:heads]
        ce = batch_cross_entropy([lab.asnumpy() for lab in batch.label], [o.asnumpy() for o in outputs], kind)
        total += ce
        window.append(ce)
        if tc.log_every and i % tc.log_every == 0:
            now = time.perf_counter()
            log.info(
                "epoch %d batch %d/%d: %.1f images/s, loss %.4f (mean of the last %d batches), lr %.4g",
                epoch + 1,
                i,
                batches,
                len(window) * tc.batch_size / max(now - window_started, 1e-9),
                float(np.mean(window)),
                len(window),
                current_lr(mod),
            )
            window, window_started = [], now
    seconds = time.perf_counter() - started
    mean = total / max(batches, 1)
    log.info(
        "epoch %d/%d: train loss %.4f, %s, %.1f images/s",
        epoch + 1,
        tc.epochs,
        mean,
        dict(metric.get_name_value()),
        batches * tc.batch_size / max(seconds, 1e-9),
    )
    return mean


def current_lr(mod: mx.mod.Module) -> float:
    opt = mod._optimizer
    return float(opt.lr_scheduler(opt.num_update)) if opt.lr_scheduler is not None else float(opt.lr)
