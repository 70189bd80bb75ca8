"""Training a model from RecordIO shards (the shard job's output) into a model bundle.

A minimal but real loop: :func:`read_shard_set` reads ``shards/_manifest.json``; the train split
is read by ``mx.io.ImageRecordIter`` (random crop and mirror, mean/std from ``conf.images``), the
val split with a centre crop; the network is :func:`inception_bn`; ``mx.mod.Module.fit`` trains it
with SGD (momentum, weight decay, a step learning-rate schedule), writes a checkpoint every epoch,
and the result is written as a bundle (:mod:`softlines_attr.model.bundle`) with its val metrics.

Base shards (``mode = base``) carry ``label_width`` title-word indices padded with -1: they are
turned into 0/1 vectors over the vocabulary and trained with sigmoid cross-entropy (softmax on
request, on the first label: the label job lists a record's words in ascending index order, most
frequent first). Refine shards (``mode = refine``) carry one class index: softmax. Multi shards
(``mode = multi``) carry one class index per taxonomy attribute (-1 = no tag): one softmax head per
attribute on a shared backbone, an untagged attribute adding nothing to the loss. Softmax heads can
be trained with per-class weights and a focal term (:mod:`softlines_attr.model.losses`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import mxnet as mx
import numpy as np

from softlines_attr.config import ImageConfig, PipelineConfig
from softlines_attr.model.bundle import Bundle, Head, Manifest, VocabularyRef, save_bundle
from softlines_attr.model.checkpoint import checkpoint_paths, latest_checkpoint, load_checkpoint, restore_optimizer, save_checkpoint
from softlines_attr.model.data import label_counts, record_iter
from softlines_attr.model.distributed import (
    agree,
    average_aux,
    check_train_parts,
    fixed_batches,
    open_kvstore,
    optimizer_on_workers,
    part_record_counts,
    sync_module_params,
    write_worker_dump,
)
from softlines_attr.model.errors import ModelError, TrainInputError
from softlines_attr.model.inception_bn import DATA_NAME, DEFAULT_HEAD, classification_head, inception_bn_features
from softlines_attr.model.losses import LossConfig, class_weights, loss_constants, softmax_head
from softlines_attr.model.metrics import split_metrics, train_metric
from softlines_attr.model.refine import backbone_names, backbone_params, base_model_ref, refine_features
from softlines_attr.shard.contract import ShardSet, read_shard_set

log = logging.getLogger(__name__)

BUNDLE_DIR = "bundle"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (from the command line).

    Attributes:
        epochs: Passes over the train split.
        batch_size: Images per batch.
        learning_rate: Initial SGD learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        lr_step_epochs: Epochs after which the learning rate is multiplied by ``lr_factor``.
        lr_factor: The step factor.
        width: Inception-BN width multiplier.
        input_size: Network input side; None: ``conf.images.input_size``.
        loss: ``auto`` (sigmoid for base shards, softmax for refine), ``sigmoid`` or ``softmax``.
        threads: Image decoding threads of each ImageRecordIter.
        seed: Random seed (initialisation, augmentation).
        gpus: GPU ids; empty for CPU.
        backbone_lr_mult: Learning-rate multiplier of the backbone when refining from a base model.
        freeze_backbone: When refining, train only the new head (backbone weights fixed; BN still
            normalises with batch statistics and updates its moving statistics).
        class_weights: Softmax heads: ``none``, ``inverse`` (frequency) or ``effective`` (number of
            samples, Cui et al. 2019) per-class loss weights from the train split's label counts.
        cb_beta: The effective-number beta.
        focal_gamma: Softmax heads: focal-loss exponent (0 = cross-entropy).
        color_jitter: Training augmentation: random hue, saturation and lightness shifts (the
            attributes do not depend on a dress's colour; helps small data sets generalise).
        kv_store: ``local`` / ``device`` (one process) or ``dist_sync`` / ``dist_device_sync`` (a
            ps-lite worker; see :mod:`softlines_attr.model.distributed` and docs/MODEL.md).
        worker_dump: Debug (tests): a folder where every worker writes its final params and the
            labels it read (:func:`~softlines_attr.model.distributed.write_worker_dump`).
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step_epochs: tuple[int, ...] = ()
    lr_factor: float = 0.1
    width: float = 1.0
    input_size: int | None = None
    loss: Literal["auto", "sigmoid", "softmax"] = "auto"
    threads: int = 2
    seed: int = 0
    gpus: tuple[int, ...] = ()
    backbone_lr_mult: float = 1.0
    freeze_backbone: bool = False
    class_weights: Literal["none", "inverse", "effective"] = "none"
    cb_beta: float = 0.999
    focal_gamma: float = 0.0
    color_jitter: bool = False
    kv_store: str = "local"
    worker_dump: str | None = None

    @property
    def loss_config(self) -> LossConfig:
        """The softmax heads' loss settings."""
        return LossConfig(self.class_weights, self.cb_beta, self.focal_gamma)


def class_names(shards: ShardSet, conf: PipelineConfig) -> tuple[str, ...]:
    """The class names of the shards' labels, in index order.

    Refine shards: the attribute's classes from the taxonomy (the shard summary names the attribute).
    Base shards: the words of the vocabulary from the label job's ``vocabulary/`` table (the shard
    summary names it); ``word_<i>`` placeholders, with a warning, when it cannot be read.
    """
    attribute = shards.summary.get("attribute")
    if shards.mode == "refine" and attribute:
        classes = conf.taxonomy.attribute(attribute).classes
        if len(classes) != shards.num_classes:
            raise TrainInputError(f"attribute {attribute!r} has {len(classes)} classes in the taxonomy but the shards have {shards.num_classes}")
        return classes
    words = _vocabulary_words(shards)
    if words is not None and len(words) == shards.num_classes:
        return words
    log.warning("class names of %s not found (vocabulary table unreadable or of another size); using word_<i>", shards.root)
    return tuple(f"word_{i}" for i in range(shards.num_classes))


def shard_heads(shards: ShardSet, conf: PipelineConfig, *, multi_label: bool) -> tuple[Head, ...]:
    """The heads a model of these shards has: one per label column.

    Base shards: the title-word head ``base``. Refine shards: one head named after the attribute.
    Multi shards: one softmax head per attribute, in label-column order, classes from the taxonomy.

    Raises:
        TrainInputError: an attribute the taxonomy lacks, or of another class count than the shards.
    """
    if shards.mode != "multi":
        attribute = shards.summary.get("attribute") if shards.mode == "refine" else None
        return (Head(attribute or DEFAULT_HEAD, tuple(class_names(shards, conf)), attribute=attribute, multi_label=multi_label),)
    declared = shards.summary.get("num_classes")
    heads = []
    for attribute in shards.attributes:
        classes = conf.taxonomy.attribute(attribute).classes
        if isinstance(declared, dict) and attribute in declared and int(declared[attribute]) != len(classes):
            raise TrainInputError(f"attribute {attribute!r} has {len(classes)} classes in the taxonomy but the multi shards have {declared[attribute]}")
        heads.append(Head(attribute, tuple(classes), attribute=attribute, multi_label=False))
    return tuple(heads)


def _vocabulary_words(shards: ShardSet) -> tuple[str, ...] | None:
    labels, vocab_size = shards.summary.get("labels"), shards.summary.get("vocab_size")
    if not labels or vocab_size is None or "://" in str(labels):
        return None
    table = Path(labels) / "vocabulary"
    if not table.exists():
        return None
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(table, columns=["vocab_size", "word", "label_index"]).to_pylist()
    except Exception as exc:  # noqa: BLE001 - any unreadable table falls back to placeholders
        log.warning("cannot read vocabulary table %s: %s", table, exc)
        return None
    words = sorted((r["label_index"], r["word"]) for r in rows if r["vocab_size"] == vocab_size)
    return tuple(w for _, w in words)


def predict_split(mod: mx.mod.Module, it: mx.io.DataIter) -> tuple[np.ndarray, np.ndarray]:
    """Labels and first-output scores of every record of ``it`` (batch padding removed)."""
    labels, scores = predict_heads(mod, it, 1)
    return labels[0], scores[0]


def predict_heads(mod: mx.mod.Module, it: mx.io.DataIter, heads: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per head, the labels and scores (the module's first ``heads`` outputs) of every record of ``it``."""
    it.reset()
    labels: list[list[np.ndarray]] = [[] for _ in range(heads)]
    scores: list[list[np.ndarray]] = [[] for _ in range(heads)]
    for batch in it:
        mod.forward(batch, is_train=False)
        n = batch.data[0].shape[0] - (batch.pad or 0)
        outputs = mod.get_outputs()
        for i in range(heads):
            scores[i].append(outputs[i].asnumpy()[:n])
            labels[i].append(batch.label[i].asnumpy()[:n])
    return [np.concatenate(x) for x in labels], [np.concatenate(x) for x in scores]


def train(
    shards_dir: str | Path,
    out_dir: str | Path,
    conf: PipelineConfig,
    tc: TrainConfig,
    *,
    resume: bool = False,
    base: Bundle | None = None,
) -> Manifest | None:
    """Train Inception-BN on the shards in ``shards_dir``; write checkpoints and a bundle under ``out_dir``.

    Each epoch reads the train split with a fresh iterator seeded ``seed + epoch`` (so an epoch's
    order and augmentation do not depend on the epochs before it) and runs the same number of
    batches, ceil(train records / batch size). After every epoch a checkpoint is written
    (:func:`save_checkpoint`); with ``resume`` training continues after the last complete one in
    ``out_dir``, giving the same parameters as an uninterrupted run. At the end the bundle is
    written to ``<out>/bundle`` with the val metrics (mAP and precision at 1, or accuracy).

    With ``base`` (refine), the network is the base bundle's backbone with a new head for the
    shards' classes, initialised from the base's backbone parameters (the new head fresh), the
    backbone trained at ``backbone_lr_mult`` times the learning rate or frozen.

    Multi shards give one softmax head per attribute on the shared backbone (one bundle with a
    head per attribute); a record's -1 label for an attribute adds nothing to that head's loss.
    ``tc.class_weights`` and ``tc.focal_gamma`` change the softmax heads' loss
    (:mod:`softlines_attr.model.losses`); the class weights come from the train split's label counts.

    With ``tc.kv_store`` ``dist_sync`` / ``dist_device_sync`` this is one ps-lite worker: it reads
    its part of each split, runs ceil(train records / workers / batch size) batches per epoch like
    every other worker, and only rank 0 writes checkpoints and the bundle (docs/MODEL.md, Distributed).

    Returns:
        The bundle's manifest (None on a dist worker other than rank 0, which writes no bundle).

    Raises:
        TrainInputError: unusable shards or settings.
    """
    if tc.epochs < 1 or tc.batch_size < 1:
        raise TrainInputError(f"expected epochs >= 1 and batch_size >= 1, found epochs={tc.epochs} batch_size={tc.batch_size}")
    shards = read_shard_set(shards_dir)
    loss = tc.loss if tc.loss != "auto" else ("sigmoid" if shards.mode == "base" else "softmax")
    multi_label = loss == "sigmoid" and shards.mode == "base"
    if loss == "sigmoid" and shards.mode != "base":
        raise TrainInputError(f"loss 'sigmoid' expects base (title-word) shards; {shards.mode} shards hold one class per image and attribute, found mode {shards.mode!r}")
    lc = tc.loss_config
    try:
        lc.validate()
    except ModelError as exc:
        raise TrainInputError(str(exc)) from exc
    if multi_label and not lc.plain:
        raise TrainInputError(
            f"class weights and focal loss apply to softmax heads; expected --loss softmax or refine/multi shards, found sigmoid on base shards "
            f"(class_weights={lc.class_weights}, focal_gamma={lc.focal_gamma})"
        )
    heads = shard_heads(shards, conf, multi_label=multi_label)
    head_names = [h.name for h in heads]
    label_names = [f"{name}_label" for name in head_names]
    weights: dict[str, np.ndarray] = {}
    if not lc.plain:
        width = shards.label_width if shards.mode == "multi" else 1
        counts = label_counts(shards.train, width, [len(h.classes) for h in heads])
        weights = {h.name: class_weights(c, lc.class_weights, lc.beta) for h, c in zip(heads, counts)}
        for h, c in zip(heads, counts):
            log.info("head %s: train label counts %s, class weights (%s) %s", h.name, c.tolist(), lc.class_weights, np.round(weights[h.name], 3).tolist())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    workers = open_kvstore(tc.kv_store)
    check_train_parts(shards.train, shards.train_records, workers, tc.batch_size)
    mx.random.seed(tc.seed)
    np.random.seed(tc.seed)
    sym = build_network(heads, lc, base=base, width=tc.width, masked=shards.mode == "multi")
    constants = loss_constants(sym, weights)
    fixed = sorted(constants) + (backbone_names(sym, head_names) if base is not None and tc.freeze_backbone else [])
    size = tc.input_size or conf.images.input_size
    label_shapes = [(label_names[0], (tc.batch_size, shards.num_classes))] if multi_label else [(name, (tc.batch_size,)) for name in label_names]
    ctx = [mx.gpu(i) for i in tc.gpus] or [mx.cpu()]
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=label_names, context=ctx, fixed_param_names=fixed or None)
    mod.bind(data_shapes=[(DATA_NAME, (tc.batch_size, 3, size, size))], label_shapes=label_shapes)
    begin = agree(workers, "resume_epoch", latest_checkpoint(out) if resume else 0)
    states: dict[str, mx.nd.NDArray] = {}
    if begin:
        arg, aux, states = load_checkpoint(out, begin)
        mod.init_params(arg_params=arg, aux_params=aux, allow_missing=False)
        log.info("resuming after epoch %d from %s", begin, checkpoint_paths(out, begin)[1])
    else:
        if resume:
            log.info("resume: no checkpoint in %s; training from the start", out)
        initializer = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
        if base is not None:
            arg, aux = backbone_params(base, sym)
            mod.init_params(initializer, arg_params={**arg, **constants}, aux_params=aux, allow_missing=True)
        elif constants:
            mod.init_params(initializer, arg_params=constants, allow_missing=True)
        else:
            mod.init_params(initializer)
    batches_per_epoch = max(1, math.ceil(shards.train_records / workers.num_workers / tc.batch_size))
    steps = [e * batches_per_epoch for e in tc.lr_step_epochs if 0 < e < tc.epochs]
    optimizer_params: dict = {"learning_rate": tc.learning_rate, "momentum": tc.momentum, "wd": tc.weight_decay, "rescale_grad": 1.0 / (tc.batch_size * workers.num_workers)}
    if steps:
        optimizer_params["lr_scheduler"] = mx.lr_scheduler.MultiFactorScheduler(step=steps, factor=tc.lr_factor, base_lr=tc.learning_rate)
    with optimizer_on_workers(workers):
        mod.init_optimizer(kvstore=workers.module_kvstore(), optimizer="sgd", optimizer_params=optimizer_params)
    sync_module_params(workers, mod)
    if base is not None and tc.backbone_lr_mult != 1.0:
        mod._optimizer.set_lr_mult({name: tc.backbone_lr_mult for name in backbone_names(sym, head_names)})
    if begin:
        restore_optimizer(mod, states)
    log.info(
        "training %s (%d classes, %s%s) width %s on %d train / %d val records, epochs %d..%d, %d batches each",
        ",".join(head_names), shards.num_classes, loss, "" if lc.plain else f", class weights {lc.class_weights}, focal gamma {lc.focal_gamma}", tc.width, shards.train_records, shards.val_records, begin + 1, tc.epochs, batches_per_epoch,
    )
    parts = {"num_parts": workers.num_workers, "part_index": workers.rank}
    val_part = part_record_counts(shards.val, workers.num_workers)[workers.rank] if workers.dist and shards.val else shards.val_records
    val_iter = record_iter(shards.val, shards, conf, tc, train=False, label_name=label_names, multi_label=multi_label, **parts) if val_part else None
    seen: list[list] = []
    for epoch in range(begin, tc.epochs):
        metric = train_metric(multi_label)
        it = record_iter(shards.train, shards, conf, dataclasses.replace(tc, seed=tc.seed + epoch), train=True, label_name=label_names, multi_label=multi_label, **parts)
        started = time.perf_counter()
        seen.append([])
        for batch in fixed_batches(it, batches_per_epoch, seen[-1] if tc.worker_dump else None):
            mod.forward_backward(batch)
            mod.update()
            mod.update_metric(metric, batch.label)
        seconds = time.perf_counter() - started
        log.info("epoch %d: train %s, %.1f images/s", epoch + 1, dict(metric.get_name_value()), batches_per_epoch * tc.batch_size / max(seconds, 1e-9))
        average_aux(workers, mod)
        if workers.chief:
            save_checkpoint(out, epoch + 1, mod)
    metrics: dict[str, float] = {}
    if val_iter is not None:
        metrics = val_metrics(mod, val_iter, head_names, multi_label=multi_label)
        if workers.dist:  # each worker validates its own part of the val split
            metrics["val_workers"] = float(workers.num_workers)
        log.info("validation (worker %d of %d): %s", workers.rank, workers.num_workers, metrics)
    if tc.worker_dump:
        write_worker_dump(tc.worker_dump, workers, mod, batches_per_epoch=batches_per_epoch, train_seen=seen, val_iter=val_iter, metrics=metrics)
    if not workers.chief:
        return None
    arg_params, aux_params = mod.get_params()
    vocab_size = shards.summary.get("vocab_size")
    return save_bundle(
        out / BUNDLE_DIR,
        sym,
        arg_params,
        aux_params,
        heads=list(heads),
        images=conf.images if tc.input_size is None else _with_input_size(conf, tc.input_size),
        # the crop the network was trained on: ImageRecordIter crops the whole stored image (random in
        # training, centre in validation), so scoring must too, whatever the taxonomy's region says
        region="full",
        vocabulary=VocabularyRef(int(vocab_size), str(shards.summary.get("labels", ""))) if vocab_size is not None else None,
        base_model=base_model_ref(base) if base is not None else None,
        metrics=metrics,
        overwrite=True,
    )


def build_network(heads: Sequence[Head], lc: LossConfig, *, base: Bundle | None, width: float, masked: bool) -> mx.sym.Symbol:
    """Inception-BN features (the base's backbone, or fresh at ``width``) with the given heads.

    One plain head is exactly :func:`classification_head` (softmax or sigmoid). Softmax heads with
    class weights or a focal term, or several heads (multi shards, ``masked``: label -1 = no tag),
    are :func:`softlines_attr.model.losses.softmax_head`; the outputs are grouped as every head's
    probabilities in head order, then the loss outputs.
    """
    features = refine_features(base) if base is not None else inception_bn_features(width)
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


def val_metrics(mod: mx.mod.Module, it: mx.io.DataIter, head_names: Sequence[str], *, multi_label: bool) -> dict[str, float]:
    """Validation metrics of every head: as :func:`split_metrics`; several heads are prefixed ``val_<head>_``
    and summarised by ``val_accuracy`` / ``val_mean_class_accuracy`` (the means over the heads)."""
    labels, scores = predict_heads(mod, it, len(head_names))
    if len(head_names) == 1:
        return split_metrics(labels[0], scores[0], multi_label=multi_label)
    metrics: dict[str, float] = {}
    for name, y, p in zip(head_names, labels, scores):
        metrics.update(split_metrics(y, p, multi_label=False, prefix=f"val_{name}_"))
    for key in ("accuracy", "mean_class_accuracy"):
        metrics[f"val_{key}"] = float(np.mean([metrics[f"val_{name}_{key}"] for name in head_names]))
    return metrics


def _with_input_size(conf: PipelineConfig, size: int) -> ImageConfig:
    return dataclasses.replace(conf.images, input_size=size)
