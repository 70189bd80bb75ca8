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
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import mxnet as mx
import numpy as np

from softlines_attr.config import PipelineConfig
from softlines_attr.model.bundle import BUNDLE_DIR, Bundle, save_bundle
from softlines_attr.model.checkpoint import (
    checkpoint_paths,
    latest_checkpoint,
    load_checkpoint,
    restore_optimizer,
    save_checkpoint,
)
from softlines_attr.model.counts import label_counts, title_word_counts
from softlines_attr.model.data import record_iter, training_region
from softlines_attr.model.distributed.dump import write_worker_dump
from softlines_attr.model.distributed.kvstore import (
    agree,
    average_aux,
    open_kvstore,
    optimizer_on_workers,
    sync_module_params,
)
from softlines_attr.model.distributed.parts import check_train_parts, part_record_counts
from softlines_attr.model.epoch import current_lr, run_epoch
from softlines_attr.model.errors import ModelError, TrainInputError
from softlines_attr.model.heads import shard_heads
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.losses import class_weights, loss_constants
from softlines_attr.model.manifest import Head, Manifest, VocabularyRef
from softlines_attr.model.metrics import train_metric
from softlines_attr.model.network import build_network, loss_settings, prior_biases, resolve_loss, word_prior
from softlines_attr.model.optim import lr_scheduler, no_decay_names
from softlines_attr.model.refine import backbone_names, backbone_params, base_model_ref, freeze_batch_norm
from softlines_attr.model.validation import describe_metrics, val_metrics
from softlines_attr.shard.contract import ShardSet, read_shard_set
from softlines_attr.train_config import TrainConfig

log = logging.getLogger(__name__)


HISTORY_FILE = "history.json"
PRIOR_SAMPLE_RECORDS = 50_000  # train records read for the label priors (the heads' initial biases)


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
    (:func:`~softlines_attr.model.checkpoint.save_checkpoint`); with ``resume`` training continues
    after the last complete one in ``out_dir``, giving the same parameters as an uninterrupted run.
    Every ``val_every`` epochs the val split is scored and logged (base: mAP beside the prior
    baseline, precision at 1 and 5, the frequent words' AP, distinct top-1 words; refine: accuracy
    and average per-class accuracy per head); the per-epoch records go to ``<out>/history.json``
    and the last one into the bundle written to ``<out>/bundle``.

    With ``base`` (refine), the network is the base bundle's backbone with a new head for the
    shards' classes, initialised from the base's backbone parameters (the new head fresh), the
    backbone trained at ``backbone_lr_mult`` times the learning rate (after ``head_warmup_epochs``
    of head-only training) or frozen; ``bn_stats = frozen`` keeps the base's BN statistics.

    Multi shards give one softmax head per attribute on the shared backbone (one bundle with a
    head per attribute); a record's -1 label for an attribute adds nothing to that head's loss.
    ``tc.class_weights``, ``tc.focal_gamma`` and ``tc.label_smoothing`` change the softmax heads'
    loss (:mod:`softlines_attr.model.losses`); the class weights come from the train split's label counts.

    With ``tc.kv_store`` ``dist_sync`` / ``dist_device_sync`` this is one ps-lite worker: it reads
    its part of each split, runs ceil(train records / workers / batch size) batches per epoch like
    every other worker, and only rank 0 writes checkpoints and the bundle (docs/MODEL.md, Distributed).

    Returns:
        The bundle's manifest (None on a dist worker other than rank 0, which writes no bundle).

    Raises:
        TrainInputError: unusable shards or settings.
    """
    if tc.epochs < 1 or tc.batch_size < 1:
        raise TrainInputError(
            f"expected epochs >= 1 and batch_size >= 1, found epochs={tc.epochs} batch_size={tc.batch_size}"
        )
    if tc.head_warmup_epochs < 0 or tc.log_every < 0 or tc.val_every < 0:
        raise TrainInputError(
            f"expected head_warmup_epochs, log_every and val_every >= 0, found {tc.head_warmup_epochs}, "
            f"{tc.log_every}, {tc.val_every}"
        )
    if tc.bn_stats not in ("batch", "frozen"):
        raise TrainInputError(f"bn_stats: expected batch or frozen, found {tc.bn_stats!r}")
    shards = read_shard_set(shards_dir)
    loss = resolve_loss(tc.loss, shards.mode)
    multi_hot_targets = shards.mode == "base" and loss != "softmax"  # train labels: 0/1 rows over the vocabulary
    lc = loss_settings(tc)
    try:
        lc.validate()
    except ModelError as exc:
        raise TrainInputError(str(exc)) from exc
    if multi_hot_targets and (
        lc.class_weights != "none" or lc.focal_gamma > 0 or (loss == "sigmoid" and lc.label_smoothing > 0)
    ):
        raise TrainInputError(
            f"class weights, focal loss{' and label smoothing' if loss == 'sigmoid' else ''} apply to softmax "
            f"heads of one class; expected --loss softmax "
            f"or refine/multi shards, found {loss} on base shards (class_weights={lc.class_weights}, "
            f"focal_gamma={lc.focal_gamma}, label_smoothing={lc.label_smoothing})"
        )
    heads = shard_heads(shards, conf, multi_label=loss == "sigmoid")
    head_names = [h.name for h in heads]
    label_names = [f"{name}_label" for name in head_names]
    column_counts, counted = _train_label_counts(shards, heads, multi_hot=shards.mode == "base")
    weights: dict[str, np.ndarray] = {}
    if not multi_hot_targets and not lc.plain:
        weights = {h.name: class_weights(c, lc.class_weights, lc.beta) for h, c in zip(heads, column_counts)}
        for h, c in zip(heads, column_counts):
            log.info(
                "head %s: train label counts %s, class weights (%s) %s",
                h.name,
                c.tolist(),
                lc.class_weights,
                np.round(weights[h.name], 3).tolist(),
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    workers = open_kvstore(tc.kv_store)
    check_train_parts(shards.train, shards.train_records, workers, tc.batch_size)
    mx.random.seed(tc.seed)
    np.random.seed(tc.seed)
    sym = build_network(heads, lc, base=base, width=tc.width, masked=shards.mode == "multi", loss=loss)
    if base is not None and tc.bn_stats == "frozen":
        sym = freeze_batch_norm(sym)
    constants = loss_constants(sym, weights or {h.name: np.ones(len(h.classes), np.float32) for h in heads})
    backbone = backbone_names(sym, head_names) if base is not None else []
    fixed = sorted(constants) + (backbone if tc.freeze_backbone else [])
    size = tc.input_size or conf.images.input_size
    label_shapes = (
        [(label_names[0], (tc.batch_size, shards.num_classes))]
        if multi_hot_targets
        else [(name, (tc.batch_size,)) for name in label_names]
    )
    ctx = [mx.gpu(i) for i in tc.gpus] or [mx.cpu()]
    mod = mx.mod.Module(
        sym, data_names=[DATA_NAME], label_names=label_names, context=ctx, fixed_param_names=fixed or None
    )
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
        given = dict(constants)
        if tc.prior_init:
            given.update(prior_biases(heads, column_counts, loss=loss, records=counted))
        aux: dict[str, mx.nd.NDArray] = {}
        if base is not None:
            arg, aux = backbone_params(base, sym)
            given.update(arg)
        mod.init_params(initializer, arg_params=given, aux_params=aux or None, allow_missing=True)
    batches_per_epoch = max(1, math.ceil(shards.train_records / workers.num_workers / tc.batch_size))
    optimizer_params: dict = {
        "learning_rate": tc.learning_rate,
        "momentum": tc.momentum,
        "wd": tc.weight_decay,
        "rescale_grad": 1.0 / (tc.batch_size * workers.num_workers),
    }
    scheduler = lr_scheduler(
        tc.lr_schedule,
        base_lr=tc.learning_rate,
        epochs=tc.epochs,
        batches_per_epoch=batches_per_epoch,
        warmup_epochs=tc.warmup_epochs,
        step_epochs=tc.lr_step_epochs,
        factor=tc.lr_factor,
    )
    if scheduler is not None:
        optimizer_params["lr_scheduler"] = scheduler
    with optimizer_on_workers(workers):
        mod.init_optimizer(kvstore=workers.module_kvstore(), optimizer="sgd", optimizer_params=optimizer_params)
    sync_module_params(workers, mod)
    if not tc.bn_weight_decay:
        mod._optimizer.set_wd_mult({name: 0.0 for name in no_decay_names(sym.list_arguments())})
    if begin:
        restore_optimizer(mod, states)
    log.info(
        "training %s (%d classes, %s%s) width %s on %d train / %d val records, epochs %d..%d, %d batches each, lr "
        "%g (%s, warm-up %g epochs)",
        ",".join(head_names),
        shards.num_classes,
        loss,
        ""
        if lc.plain
        else f", class weights {lc.class_weights}, focal gamma {lc.focal_gamma}, smoothing {lc.label_smoothing}",
        tc.width,
        shards.train_records,
        shards.val_records,
        begin + 1,
        tc.epochs,
        batches_per_epoch,
        tc.learning_rate,
        tc.lr_schedule,
        tc.warmup_epochs,
    )
    region = training_region(shards, conf)
    parts = {"num_parts": workers.num_workers, "part_index": workers.rank, "region": region}
    val_part = (
        part_record_counts(shards.val, workers.num_workers)[workers.rank]
        if workers.dist and shards.val
        else shards.val_records
    )
    # base shards are always validated against every title word (multi-hot), whatever the loss
    val_iter = (
        record_iter(
            shards.val,
            shards,
            conf,
            tc,
            train=False,
            label_name=label_names,
            multi_label=shards.mode == "base",
            **parts,
        )
        if val_part
        else None
    )
    prior = word_prior(column_counts[0], counted) if shards.mode == "base" else None
    history = _read_history(out, begin) if begin else []
    seen: list[list] = []
    metrics: dict[str, float] = dict(history[-1]) if history else {}
    for epoch in range(begin, tc.epochs):
        if base is not None and not tc.freeze_backbone:
            mult = 0.0 if epoch < tc.head_warmup_epochs else tc.backbone_lr_mult
            mod._optimizer.set_lr_mult({name: mult for name in backbone})
            if epoch == tc.head_warmup_epochs and tc.head_warmup_epochs:
                log.info(
                    "epoch %d: head warm-up done; the backbone trains at %g x the learning rate",
                    epoch + 1,
                    tc.backbone_lr_mult,
                )
        metric = train_metric(multi_hot_targets)
        it = record_iter(
            shards.train,
            shards,
            conf,
            dataclasses.replace(tc, seed=tc.seed + epoch),
            train=True,
            label_name=label_names,
            multi_label=multi_hot_targets,
            **parts,
        )
        seen.append([])
        train_loss = run_epoch(
            mod, it, metric, epoch, tc, batches_per_epoch, loss, seen[-1] if tc.worker_dump else None
        )
        average_aux(workers, mod)
        record: dict[str, float] = {
            "epoch": float(epoch + 1),
            "train_loss": train_loss,
            "learning_rate": current_lr(mod),
        }
        record.update({f"train_{k}": float(v) for k, v in metric.get_name_value()})
        last = epoch + 1 == tc.epochs
        if val_iter is not None and (last or (tc.val_every and (epoch + 1) % tc.val_every == 0)):
            metrics = val_metrics(mod, val_iter, heads, ctx[0], prior=prior)
            if workers.dist:  # each worker validates its own part of the val split
                metrics["val_workers"] = float(workers.num_workers)
            record.update(metrics)
            log.info(
                "epoch %d/%d val (worker %d of %d): %s",
                epoch + 1,
                tc.epochs,
                workers.rank,
                workers.num_workers,
                describe_metrics(metrics, head_names),
            )
        history.append(record)
        if workers.chief:
            save_checkpoint(out, epoch + 1, mod)
            (out / HISTORY_FILE).write_text(json.dumps(history, indent=1, sort_keys=True), encoding="utf-8")
    if tc.worker_dump:
        write_worker_dump(
            tc.worker_dump,
            workers,
            mod,
            batches_per_epoch=batches_per_epoch,
            train_seen=seen,
            val_iter=val_iter,
            metrics=metrics,
        )
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
        # the preprocessing the network was trained on: the shards' stored size and resize mode, the
        # input crop, and the region (the upper view for a single-attribute model of an upper-region attribute)
        images=dataclasses.replace(
            conf.images,
            store_size=shards.image_size,
            resize_mode=shards.resize_mode,
            input_size=tc.input_size or conf.images.input_size,
        ),
        region=region,
        vocabulary=VocabularyRef(int(vocab_size), str(shards.summary.get("labels", "")))
        if vocab_size is not None
        else None,
        base_model=base_model_ref(base) if base is not None else None,
        metrics={k: v for k, v in metrics.items() if k.startswith("val_")},
        overwrite=True,
    )


def _read_history(out: Path, epochs: int) -> list[dict[str, float]]:
    """The per-epoch records of a resumed run, up to ``epochs`` (empty when there is no history file)."""
    path = out / HISTORY_FILE
    if not path.is_file():
        return []
    try:
        return [r for r in json.loads(path.read_text(encoding="utf-8")) if r.get("epoch", 0) <= epochs]
    except (json.JSONDecodeError, AttributeError, TypeError):
        log.warning("resume: %s is unreadable; the history restarts", path)
        return []


def _train_label_counts(shards: ShardSet, heads: Sequence[Head], *, multi_hot: bool) -> tuple[list[np.ndarray], int]:
    """Per head, the train split's label counts, and the records counted: title-word counts (base,
    from up to :data:`PRIOR_SAMPLE_RECORDS` records) or class counts per attribute column (every record)."""
    if multi_hot:
        counts, records = title_word_counts(shards.train, shards.num_classes, max_records=PRIOR_SAMPLE_RECORDS)
        return [counts], records
    width = shards.label_width if shards.mode == "multi" else 1
    return label_counts(shards.train, width, [len(h.classes) for h in heads]), shards.train_records
