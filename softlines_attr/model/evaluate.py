"""Evaluating a model bundle on RecordIO shards: the driver of ``softlines-attr evaluate``.

:func:`evaluate_model` loads and verifies a bundle, pairs its heads with the shards' label columns
(:mod:`~softlines_attr.model.eval_inputs`), predicts every record of a split
(:func:`~softlines_attr.model.predictor.predict_records`), evaluates every head
(:func:`~softlines_attr.model.evaluation.evaluate_head`: the metrics of :mod:`~softlines_attr.model.metrics`
and the abstain threshold of :mod:`~softlines_attr.model.thresholds`), writes ``evaluation.json`` and the
report (:mod:`~softlines_attr.model.report`) and, on request, the thresholds into the bundle's manifest.

Images come from the shards and go through the bundle's own preprocessing (its manifest's, never
the conf's): each record's JPEG is decoded and resized to the bundle's store size and resize mode,
and cropped by :func:`softlines_attr.images.to_network_input` with the bundle's input size, mean, std
and region (the upper view of a neck-style model included) -- what the scoring job feeds the
network -- and the bundle's inference symbol runs with inference-mode BN. Shards stored with
another store size or resize mode than the bundle's are refused.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

import mxnet as mx

from softlines_attr.config import EvaluateConfig
from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.errors import EvaluateInputError
from softlines_attr.model.eval_inputs import check_shard_preprocessing, head_labels, match_heads, split_paths
from softlines_attr.model.evaluation import (
    EVALUATION_FILE,
    Evaluation,
    evaluate_head,
    evaluation_to_json,
    write_text_atomic,
)
from softlines_attr.model.manifest import MANIFEST_FILE, PARAMS_FILE, read_manifest, update_manifest
from softlines_attr.model.predictor import predict_records
from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------------------------


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
            f"shards {shards.root}: records carry {labels.shape[1]} label values; expected {width} (mode "
            f"{shards.mode!r})"
        )
    heads = []
    for pair in pairs:
        classes, tagged = head_labels(labels, pair.column, pair.head)
        if not tagged.any():
            raise EvaluateInputError(
                f"head {pair.head.name!r}: no record of split {split!r} has a tag for {pair.head.attribute!r}; "
                f"expected at least one"
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
        evaluated_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


# --------------------------------------------------------------------------------------------
# The bundle's manifest
# --------------------------------------------------------------------------------------------


def manifest_updates(ev: Evaluation) -> tuple[dict[str, float], dict[str, float]]:
    """The thresholds and metrics an evaluation adds to a bundle manifest.

    Thresholds: head name -> abstain threshold; 1.0 when the target is not reached (the scoring job
    then abstains on everything but saturated confidences), flagged by the metric
    ``eval.<head>.target_reached`` = 0.0. Metrics: ``eval.<head>.<name>`` floats.
    """
    thresholds: dict[str, float] = {}
    metrics: dict[str, float] = {}
    for h in ev.heads:
        a = h.abstain
        thresholds[h.head] = float(a.threshold) if a.reached and a.threshold is not None else 1.0
        values = {
            "records": float(h.records),
            "accuracy": h.accuracy,
            "average_per_class_accuracy": h.average_per_class_accuracy,
            **{f"top_{k}_accuracy": v for k, v in h.top_k.items()},
            "target_precision": a.target_precision,
            "target_reached": 1.0 if a.reached else 0.0,
            "abstain_threshold": thresholds[h.head],
            "abstain_coverage": a.coverage,
        }
        if a.precision is not None:
            values["abstain_precision"] = a.precision
        metrics.update({f"eval.{h.head}.{k}": float(v) for k, v in values.items()})
    return thresholds, metrics


def write_thresholds(bundle_path: str | Path, ev: Evaluation) -> Bundle:
    """Put the evaluation's abstain thresholds and metrics into the bundle's ``manifest.json``.

    Through :func:`softlines_attr.model.bundle.update_manifest`: the bundle is verified, the manifest
    rewritten atomically with its checksum recomputed, other keys kept. New thresholds change the
    bundle's :attr:`~softlines_attr.model.bundle.Manifest.model_digest`, hence the scoring tables'
    ``model_version``, so incremental scoring rescores the rows whose abstain decisions they change.

    Raises:
        EvaluateInputError: the bundle's parameters are not the ones evaluated.
        BundleError: the rewritten bundle does not load.
    """
    path = Path(bundle_path)
    manifest = read_manifest(path)
    found = manifest.files.get(PARAMS_FILE)
    if found != ev.params_sha256:
        raise EvaluateInputError(
            f"bundle {path}: {PARAMS_FILE} has sha256 {found}; expected {ev.params_sha256}, the parameters evaluated"
        )
    thresholds, metrics = manifest_updates(ev)
    update_manifest(path, thresholds={**manifest.thresholds, **thresholds}, metrics={**manifest.metrics, **metrics})
    log.info("wrote thresholds %s into %s", thresholds, path / MANIFEST_FILE)
    return load_bundle(path)


# --------------------------------------------------------------------------------------------
# The command's library function
# --------------------------------------------------------------------------------------------


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
            f"output folder {out} is inside the bundle {model}; expected a folder outside it (e.g. "
            f"{default_out_dir(model, 'val')})"
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
    from softlines_attr.model.report import write_report
    from softlines_attr.shard.contract import read_shard_set

    model = Path(model)
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, split)
    check_out_dir(out, model)
    bundle = load_bundle(model)
    shards = read_shard_set(shards_dir)
    ev = evaluate_bundle(bundle, shards, settings, split=split, threads=threads, ctx=ctx)
    out.mkdir(parents=True, exist_ok=True)
    write_report(ev, out)
    write_text_atomic(out / EVALUATION_FILE, json.dumps(evaluation_to_json(ev), indent=2, sort_keys=True) + "\n")
    if write_to_bundle:
        write_thresholds(model, ev)
    log.info("wrote %s", out / EVALUATION_FILE)
    return ev, out
