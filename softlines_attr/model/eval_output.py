"""Writing an evaluation: ``evaluation.json``, and the abstain thresholds and metrics into the bundle's manifest."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.errors import EvaluateInputError
from softlines_attr.model.eval_results import Evaluation, HeadEvaluation
from softlines_attr.model.manifest import MANIFEST_FILE, PARAMS_FILE, read_manifest, update_manifest

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
EVALUATION_FORMAT = 1


def head_to_json(h: HeadEvaluation) -> dict[str, Any]:
    """One head's evaluation as JSON-ready values (see docs/MODEL.md, "Evaluate")."""
    return {
        "head": h.head,
        "attribute": h.attribute,
        "classes": list(h.classes),
        "records": h.records,
        "skipped_no_tag": h.skipped,
        "accuracy": h.accuracy,
        "average_per_class_accuracy": h.average_per_class_accuracy,
        "classes_with_support": h.classes_with_support,
        "top_k_accuracy": {str(k): v for k, v in h.top_k.items()},
        "per_class": [
            {"class": r.name, **{k: v for k, v in dataclasses.asdict(r).items() if k != "name"}} for r in h.per_class
        ],
        "confusion_matrix": {"rows": "true class", "columns": "predicted class", "counts": h.confusion.tolist()},
        "precision_coverage": [dataclasses.asdict(p) for p in h.curve],
        "abstain": dataclasses.asdict(h.abstain),
    }


def evaluation_to_json(ev: Evaluation) -> dict[str, Any]:
    """The whole evaluation as the JSON object written to ``evaluation.json``."""
    return {
        "format_version": EVALUATION_FORMAT,
        "model": {"path": ev.model, "params_sha256": ev.params_sha256},
        "shards": {"path": ev.shards, "mode": ev.mode, "split": ev.split, "records": ev.records},
        "evaluated_at": ev.evaluated_at,
        "heads": {h.head: head_to_json(h) for h in ev.heads},
    }


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling of ``path``, flush it to disk, and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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

    Through :func:`softlines_attr.model.manifest.update_manifest`: the bundle is verified, the manifest
    rewritten atomically with its checksum recomputed, other keys kept. New thresholds change the
    bundle's :attr:`~softlines_attr.model.manifest.Manifest.model_digest`, hence the scoring tables'
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


def write_evaluation(ev: Evaluation, out_dir: Path) -> Path:
    """Write ``<out_dir>/evaluation.json`` (:func:`evaluation_to_json`) atomically; returns its path."""
    path = out_dir / EVALUATION_FILE
    write_text_atomic(path, json.dumps(evaluation_to_json(ev), indent=2, sort_keys=True) + "\n")
    return path
