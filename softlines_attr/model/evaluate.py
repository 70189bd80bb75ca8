"""Evaluating a model bundle on RecordIO shards: the driver of ``softlines-attr evaluate``.

:func:`evaluate_model` loads and verifies a bundle, pairs its heads with the shards' label columns
(:mod:`~softlines_attr.model.eval_inputs`), predicts every record of a split, computes per head the
paper's metrics (:mod:`~softlines_attr.model.metrics`: accuracy, average per-class accuracy, the
per-class table, the confusion matrix, top-k accuracy for k = 1, 2, 3) and the precision/coverage
curve with the abstain threshold (:mod:`~softlines_attr.model.thresholds`), then writes
``evaluation.json`` (:mod:`~softlines_attr.model.eval_output`), the report
(:mod:`~softlines_attr.model.report`) and, on request, the thresholds into the bundle.

Images come from the shards and go through the bundle's own preprocessing (its manifest's, never
the conf's): each record's JPEG is decoded and resized to the bundle's store size and resize mode,
and cropped by :func:`softlines_attr.images.to_network_input` with the bundle's input size, mean, std
and region (the upper view of a neck-style model included) -- what the scoring job feeds the
network -- and the bundle runs through :class:`~softlines_attr.model.predictor.Predictor`
(inference-mode BN). Shards stored with another store size or resize mode than the bundle's are refused.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mxnet as mx
import numpy as np

from softlines_attr.config import EvaluateConfig
from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.errors import ClassMismatchError, EvaluateInputError
from softlines_attr.model.eval_inputs import check_shard_preprocessing, head_labels, match_heads, split_paths
from softlines_attr.model.eval_output import write_evaluation, write_thresholds
from softlines_attr.model.eval_results import Evaluation, HeadEvaluation
from softlines_attr.model.manifest import PARAMS_FILE, Head
from softlines_attr.model.metrics import (
    accuracy,
    average_per_class_accuracy,
    confusion_matrix,
    per_class_table,
    top_k_accuracy,
)
from softlines_attr.model.predictor import Predictor
from softlines_attr.model.report import write_report
from softlines_attr.model.thresholds import choose_abstain_threshold, precision_coverage, threshold_grid
from softlines_attr.shard.contract import ShardSet, read_shard_set

log = logging.getLogger(__name__)

TOP_K = (1, 2, 3)


def read_records(paths: Sequence[Path]) -> Iterator[tuple[np.ndarray, bytes]]:
    """Each record's labels (a 1-D float array: one value for refine shards) and image bytes, in file order."""
    for path in paths:
        reader = mx.recordio.MXRecordIO(str(path), "r")
        try:
            while True:
                item = reader.read()
                if item is None:
                    break
                header, image = mx.recordio.unpack(item)
                yield np.atleast_1d(np.asarray(header.label, dtype=np.float32)), image
        finally:
            reader.close()


def network_input(image: bytes, bundle: Bundle) -> np.ndarray:
    """A shard record's JPEG as the bundle's network input, through the bundle's own preprocessing.

    The record is decoded and resized to the bundle's store size and resize mode (a no-op for shards
    written with that preprocessing, which :func:`check_shard_preprocessing` requires), then cropped
    (region), normalised with the manifest's mean and std: exactly what the scoring job feeds it.
    """
    return bundle.manifest.preprocessing.network_input(image, max_pixels=RECORD_MAX_PIXELS)


#: Shard records are at most store-size images: a generous pixel limit for decoding them.
RECORD_MAX_PIXELS = 1 << 26


def predict_records(
    bundle: Bundle,
    paths: Sequence[Path],
    *,
    batch_size: int = 64,
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and per-head probabilities of every record of ``paths``.

    Returns:
        (labels (N, label columns) float32, head name -> (N, classes) probabilities).

    Raises:
        EvaluateInputError: no records, or records with different label widths.
    """
    predictor = Predictor(bundle, batch_size, ctx)
    labels: list[np.ndarray] = []
    probs: dict[str, list[np.ndarray]] = {h.name: [] for h in bundle.manifest.heads}
    pending: list[tuple[np.ndarray, bytes]] = []

    def flush(pool: ThreadPoolExecutor) -> None:
        batch = np.stack(list(pool.map(lambda item: network_input(item[1], bundle), pending)))
        for name, values in predictor.predict(batch).items():
            probs[name].append(values)
        labels.extend(item[0] for item in pending)
        pending.clear()

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for record in read_records(paths):
            pending.append(record)
            if len(pending) == batch_size:
                flush(pool)
        if pending:
            flush(pool)
    if not labels:
        raise EvaluateInputError(f"no records in {[str(p) for p in paths]}; expected at least one to evaluate on")
    widths = {len(v) for v in labels}
    if len(widths) != 1:
        raise EvaluateInputError(
            f"records of {[str(p) for p in paths]} carry labels of different widths {sorted(widths)}; expected one"
        )
    return np.stack(labels), {name: np.concatenate(chunks) for name, chunks in probs.items()}


def evaluate_head(
    labels: np.ndarray,
    probs: np.ndarray,
    head: Head,
    *,
    target_precision: float,
    threshold_step: float = 0.01,
    skipped: int = 0,
) -> HeadEvaluation:
    """Every metric of one single-label head.

    Args:
        labels: (N,) true class indices (untagged records already removed).
        probs: (N, classes) the head's class probabilities.
        head: The bundle head (its classes name the rows).
        target_precision: The precision the abstain threshold must reach.
        threshold_step: The spacing of the precision/coverage curve.
        skipped: Untagged records left out (reported only).

    Raises:
        ClassMismatchError: a label outside the head's classes, or probabilities of another width.
    """
    n_classes = len(head.classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ClassMismatchError(
            f"head {head.name!r}: expected probabilities of shape (N, {n_classes}), found {probs.shape}"
        )
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(probs):
        raise ClassMismatchError(
            f"head {head.name!r}: expected one label per prediction, "
            f"found {len(labels)} labels for {len(probs)} predictions"
        )
    confusion = confusion_matrix(labels, probs.argmax(axis=1), n_classes)
    rows = per_class_table(confusion, head.classes)
    mean_acc, with_support = average_per_class_accuracy(rows)
    curve = precision_coverage(labels, probs, threshold_grid(threshold_step))
    return HeadEvaluation(
        head=head.name,
        attribute=head.attribute,
        classes=tuple(head.classes),
        records=len(labels),
        skipped=skipped,
        accuracy=accuracy(confusion),
        average_per_class_accuracy=mean_acc,
        classes_with_support=with_support,
        top_k={k: top_k_accuracy(labels, probs, k) for k in TOP_K if k <= n_classes},
        per_class=rows,
        confusion=confusion,
        curve=curve,
        abstain=choose_abstain_threshold(curve, target_precision),
    )


def evaluate_bundle(
    bundle: Bundle,
    shards: ShardSet,
    settings: EvaluateConfig,
    *,
    split: str = "val",
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> Evaluation:
    """Evaluate every head of ``bundle`` that has a label column in ``shards`` on ``split``.

    Raises:
        EvaluateInputError: base shards, an empty split, no head for the shards' attribute(s).
        ClassMismatchError: a head's classes do not match the shards' labels.
    """
    pairs = match_heads(bundle, shards)
    check_shard_preprocessing(bundle, shards)
    paths = split_paths(shards, split)
    log.info(
        "evaluating %s on %s split %s (%d shard files), heads %s",
        bundle.path,
        shards.root,
        split,
        len(paths),
        [p.head.name for p in pairs],
    )
    labels, probs = predict_records(bundle, paths, batch_size=settings.batch_size, threads=threads, ctx=ctx)
    width = shards.label_width if shards.mode == "multi" else 1
    if labels.shape[1] != width:
        raise EvaluateInputError(
            f"shards {shards.root}: records carry {labels.shape[1]} label values; "
            f"expected {width} (mode {shards.mode!r})"
        )
    heads = []
    for pair in pairs:
        classes, tagged = head_labels(labels, pair.column, pair.head)
        if not tagged.any():
            raise EvaluateInputError(
                f"head {pair.head.name!r}: no record of split {split!r} has a tag for {pair.head.attribute!r}; "
                "expected at least one"
            )
        target = settings.target_for(pair.head.attribute or pair.head.name)
        evaluation = evaluate_head(
            classes,
            probs[pair.head.name][tagged],
            pair.head,
            target_precision=target,
            threshold_step=settings.threshold_step,
            skipped=int((~tagged).sum()),
        )
        log.info(
            "%s: accuracy %.4f, average per-class accuracy %.4f on %d records; abstain threshold %s for precision %.2f",
            pair.head.name,
            evaluation.accuracy,
            evaluation.average_per_class_accuracy,
            evaluation.records,
            evaluation.abstain.threshold if evaluation.abstain.reached else "none reaches it",
            target,
        )
        heads.append(evaluation)
    return Evaluation(
        model=str(bundle.path),
        params_sha256=bundle.manifest.files[PARAMS_FILE],
        shards=str(shards.root),
        mode=shards.mode,
        split=split,
        records=len(labels),
        heads=tuple(heads),
        evaluated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def default_out_dir(model: str | Path, split: str) -> Path:
    """Where the outputs go without ``--out``: ``<model>-evaluation-<split>``, beside the bundle (never inside it)."""
    model = Path(model)
    return model.parent / f"{model.name}-evaluation-{split}"


def check_out_dir(out: Path, model: Path) -> None:
    """Refuse an output folder inside the bundle (its files would not be covered by the checksums).

    Raises:
        EvaluateInputError: ``out`` is the bundle folder or inside it.
    """
    out_r, model_r = out.resolve(), model.resolve()
    if out_r == model_r or model_r in out_r.parents:
        raise EvaluateInputError(
            f"output folder {out} is inside the bundle {model}; "
            f"expected a folder outside it (e.g. {default_out_dir(model, 'val')})"
        )


def evaluate_model(
    model: str | Path,
    shards_dir: str | Path,
    settings: EvaluateConfig,
    *,
    out_dir: str | Path | None = None,
    split: str = "val",
    write_to_bundle: bool = False,
    threads: int = 2,
    ctx: mx.Context | None = None,
) -> tuple[Evaluation, Path]:
    """Load and verify a bundle, evaluate it on a split of the shards, write ``evaluation.json`` and the report.

    Args:
        model: The bundle folder.
        shards_dir: The shard job's output folder (or its ``shards/``).
        settings: ``conf.evaluate``.
        out_dir: Where to write; default :func:`default_out_dir`.
        split: ``val`` (default) or ``train``.
        write_to_bundle: Also write the abstain thresholds and metrics into the bundle's manifest.
        threads: Image decoding threads.
        ctx: The MXNet context (CPU by default).

    Returns:
        The evaluation and the output folder.

    Raises:
        BundleIntegrityError, BundleError: the bundle does not verify.
        TrainInputError: the shards folder is unreadable.
        EvaluateInputError, ClassMismatchError: the bundle and shards do not fit together.
    """
    model = Path(model)
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, split)
    check_out_dir(out, model)
    bundle = load_bundle(model)
    shards = read_shard_set(shards_dir)
    ev = evaluate_bundle(bundle, shards, settings, split=split, threads=threads, ctx=ctx)
    out.mkdir(parents=True, exist_ok=True)
    write_report(ev, out)
    written = write_evaluation(ev, out)
    if write_to_bundle:
        write_thresholds(model, ev)
    log.info("wrote %s", written)
    return ev, out
