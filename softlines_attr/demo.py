"""The end-to-end demo on a generated catalog: the README's ``make demo``.

One timed stage per run of a pipeline step, in order, sharing one SparkSession:
generated catalog -> labels -> base-model shards -> multi shards (every attribute's human tags) ->
base model (title words) -> the multi-head model (one head per attribute) refined from the base,
and the same network from scratch -> evaluate both on the held-out split (the base-refined one
writes its abstain thresholds into its bundle) -> an INT8 copy of it, evaluated on the same images
-> score the catalog with it -> an HTML report (``report.html``) of scored images and the tables.
``--single-models`` adds the paper's per-attribute models (five refined from the base, five from
scratch) for the comparison with the shared backbone. The demo shards small images and trains a
narrow network (``conf/demo.toml``, laid over the pipeline's conf) so that it runs in minutes on a laptop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softlines_attr.config import PipelineConfig
from softlines_attr.demo_tables import MULTI, base_quality, refined_vs_scratch, table3

log = logging.getLogger(__name__)

SCORED_MODEL = f"{MULTI}-base"  # the model the demo scores the catalog with
TAGS_FILE = "tags.parquet"  # the demo's human tags: n products of the catalog (select_tags)


DEMO_CONF = "demo.toml"  # the demo's overlay in the conf folder: small images, a narrow network


def demo_conf_path() -> Path:
    """``conf/demo.toml``: laid over ``pipeline.toml`` (before a user's ``--conf``) for every demo run."""
    from softlines_attr.config import default_conf_dir

    return default_conf_dir() / DEMO_CONF


def catalog_size(n: int, conf: PipelineConfig) -> int:
    """Products in the generated catalog for ``n`` tagged products (``demo.catalog_factor`` per tagged one)."""
    return max(n, int(round(n * conf.demo.catalog_factor)))


def select_tags(tags_path: Path, out_path: Path, *, n: int, seed: int) -> dict[str, Any]:
    """Keep the human tags of ``n`` products, drawn at random (seeded), and write them to ``out_path``.

    The generated catalog tags every dress (``tag_share`` 1); the demo's tagged set is ``n`` of
    them, every attribute tagged on the same products (the generator's ``tag_share`` would draw a
    different subset per attribute). The rest of the catalog has titles and images only.

    Returns:
        ``rows_in`` / ``rows_kept`` tag rows, ``products_in`` / ``products_tagged``, ``out``.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(tags_path)
    asins = sorted({a for a in table.column("asin").to_pylist() if a is not None})
    if n > len(asins):
        log.warning("select_tags: %d tagged products asked for, the catalog has %d; keeping all", n, len(asins))
    picked = np.random.default_rng([seed, 17]).permutation(len(asins))[: min(n, len(asins))]
    chosen = pa.array(sorted(asins[i] for i in picked.tolist()), type=pa.string())
    kept = table.filter(pc.is_in(table["asin"], value_set=chosen))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    pq.write_table(kept, str(tmp))
    tmp.replace(out_path)
    return {
        "rows_in": table.num_rows,
        "rows_kept": kept.num_rows,
        "products_in": len(asins),
        "products_tagged": len(chosen),
        "out": str(out_path),
    }


@dataclass
class DemoResult:
    """Where each stage wrote its outputs, and each stage's summary."""

    out_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    table3: dict[str, dict[str, float | None]] = field(default_factory=dict)


def run_demo(
    out_dir: Path,
    conf: PipelineConfig,
    *,
    n: int,
    seed: int | None = None,
    master: str | None = None,
) -> DemoResult:
    """Run every stage that exists on a generated catalog of ``n`` products under ``out_dir``.

    Args:
        out_dir: The demo's folder: ``catalog/``, ``labels/``, ``shards/base``, ``shards/multi``,
            ``models/base``, ``models/multi-base`` (scored, with thresholds), ``models/multi-scratch``,
            ``models/multi-base-int8``, ``evaluations/<model>/``, ``scores/`` (the scoring job's
            tables), ``report.html``; with single models also ``shards/<attribute>`` and
            ``models/<attribute>-base``, ``models/<attribute>-scratch``.
        conf: The demo's configuration: ``conf/demo.toml`` laid over ``pipeline.toml``
            (:func:`demo_conf_path`); its ``[train]`` / ``[refine]`` train the models.
        n: Number of generated products.
        seed: Generator seed (default: the conf's).
        master: Spark master (default: the conf's Spark profile).

    Returns:
        The stages' summaries and timings, and ``table3``, the accuracy comparison (:func:`table3`).
    """
    from softlines_attr.labels.job import run_label_job
    from softlines_attr.score.job import ScoreJob, run_score_job
    from softlines_attr.shard import ShardJob, run_shard_job
    from softlines_attr.spark import job_session
    from softlines_attr.synthetic import generate_catalog

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out_dir)

    def timed(name: str, fn) -> dict[str, Any]:
        started = time.perf_counter()
        summary = fn()
        result.seconds[name] = round(time.perf_counter() - started, 1)
        result.stages[name] = summary
        log.info("demo: %s done in %.1fs", name, result.seconds[name])
        return summary

    catalog_dir = out_dir / "catalog"
    timed("make-catalog", lambda: generate_catalog(catalog_dir, conf, n=catalog_size(n, conf), seed=seed))
    tags = str(out_dir / TAGS_FILE)
    timed(
        "select tags",
        lambda: select_tags(
            catalog_dir / "tags.parquet", out_dir / TAGS_FILE, n=n, seed=conf.seed if seed is None else seed
        ),
    )
    with job_session(conf.spark, app_name="softlines-attr-demo", master=master) as spark:
        labels_dir = str(out_dir / "labels")
        timed(
            "labels",
            lambda: (
                run_label_job(
                    spark, conf, catalog_path=str(catalog_dir / "catalog.parquet"), out_dir=labels_dir
                ).summary
            ),
        )
        base_size = (
            min(s for s in conf.labels.vocab_sizes if s > 0) if any(s > 0 for s in conf.labels.vocab_sizes) else 0
        )
        timed(
            "shard base",
            lambda: run_shard_job(
                spark,
                conf,
                ShardJob(labels_dir=labels_dir, out_dir=str(out_dir / "shards" / "base"), vocab_size=base_size),
            ),
        )
        timed(
            f"shard {MULTI}",
            lambda: run_shard_job(
                spark,
                conf,
                ShardJob(
                    labels_dir=labels_dir, out_dir=str(out_dir / "shards" / MULTI), tags_path=tags, attribute="all"
                ),
            ),
        )
        if conf.demo.single_models:
            for attr in conf.taxonomy.attributes:
                timed(
                    f"shard {attr.name}",
                    lambda attr=attr: run_shard_job(
                        spark,
                        conf,
                        ShardJob(
                            labels_dir=labels_dir,
                            out_dir=str(out_dir / "shards" / attr.name),
                            tags_path=tags,
                            attribute=attr.name,
                        ),
                    ),
                )
        _train_stages(out_dir, conf, timed)
        _evaluate_stages(out_dir, conf, timed)
        scores = out_dir / "scores"
        timed(
            "score",
            lambda: run_score_job(
                spark,
                conf,
                ScoreJob(
                    catalog_path=str(catalog_dir / "catalog.parquet"),
                    model_dirs=(str(_bundle(out_dir, SCORED_MODEL)),),
                    out_dir=str(scores),
                ),
            ),
        )
    result.table3 = table3(result.stages, {a.name: len(a.classes) for a in conf.taxonomy.attributes})
    timed("report", lambda: _write_report(result, conf))
    (out_dir / "demo_summary.json").write_text(
        json.dumps(
            {"stages": result.stages, "seconds": result.seconds, "table3": result.table3},
            indent=2,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )
    return result


def _bundle_dir(model_dir: Path) -> Path:
    from softlines_attr.model.bundle import BUNDLE_DIR

    return model_dir / BUNDLE_DIR


def _bundle(out_dir: Path, model: str) -> Path:
    return _bundle_dir(out_dir / "models" / model)


Timed = Callable[[str, Callable[[], dict[str, Any]]], dict[str, Any]]


def _train_stages(out_dir: Path, conf: PipelineConfig, timed: Timed) -> None:
    """The base model, the multi-head model refined from it and from scratch, and (optionally) the
    single-attribute models.

    The base trains with the conf's ``[train]``, every other model with its ``[refine]``. Each model
    is one timed stage ``train <name>`` whose summary holds the bundle path, heads, base model and
    validation metrics; bundles go to ``<out>/models/<name>/bundle``.
    """
    from softlines_attr.pipeline import refine_stage, train_stage

    shards, models = out_dir / "shards", out_dir / "models"

    def summary(manifest, model_dir: Path) -> dict[str, Any]:
        return {
            "bundle": str(_bundle_dir(model_dir)),
            "heads": [h.name for h in manifest.heads],
            "base_model": manifest.base_model,
            "metrics": manifest.metrics,
        }

    timed(
        "train base", lambda: summary(train_stage(shards / "base", models / "base", conf, conf.train), models / "base")
    )
    base = _bundle(out_dir, "base")
    runs = [(MULTI, "all")] + ([(a.name, a.name) for a in conf.taxonomy.attributes] if conf.demo.single_models else [])
    for shard_name, attribute in runs:
        for kind, from_bundle in (("base", base), ("scratch", None)):
            model_dir = models / f"{shard_name}-{kind}"
            timed(
                f"train {shard_name}-{kind}",
                lambda d=model_dir, s=shard_name, a=attribute, b=from_bundle: summary(
                    refine_stage(shards / s, d, conf, conf.refine, base=b, attribute=a), d
                ),
            )


def _evaluation_summary(ev: Any, out: Path) -> dict[str, Any]:
    heads = {
        h.attribute or h.head: {
            "accuracy": h.accuracy,
            "average_per_class_accuracy": h.average_per_class_accuracy,
            "top_k_accuracy": {str(k): v for k, v in h.top_k.items()},
            "records": h.records,
            "abstain_threshold": h.abstain.threshold,
            "abstain_target_reached": h.abstain.reached,
        }
        for h in ev.heads
    }
    return {"out": str(out), "model": ev.model, "records": ev.records, "heads": heads}


def _evaluate_stages(out_dir: Path, conf: PipelineConfig, timed: Timed) -> None:
    """Evaluate the multi-head models on the held-out split; thresholds into the scored bundle; its INT8 copy.

    ``evaluate multi-base`` writes its abstain thresholds into the bundle the demo scores with;
    ``quantize`` makes an INT8 copy calibrated on the val split and ``evaluate multi-base-int8``
    measures what quantisation costs in accuracy on the same images.
    """
    from softlines_attr.model.evaluate import evaluate_model
    from softlines_attr.pipeline import quantize_stage

    shards = out_dir / "shards" / MULTI
    evaluations = out_dir / "evaluations"

    def evaluate(model: str, write: bool) -> dict[str, Any]:
        ev, out = evaluate_model(
            _bundle(out_dir, model), shards, conf.evaluate, out_dir=evaluations / model, write_to_bundle=write
        )
        return _evaluation_summary(ev, out)

    timed(f"evaluate {SCORED_MODEL}", lambda: evaluate(SCORED_MODEL, True))
    timed(f"evaluate {MULTI}-scratch", lambda: evaluate(f"{MULTI}-scratch", False))

    def quantize() -> dict[str, Any]:
        out = _bundle(out_dir, f"{SCORED_MODEL}-int8")
        manifest = quantize_stage(
            _bundle(out_dir, SCORED_MODEL), shards, out, conf, split="val", num_calib=128, overwrite=True
        )
        return {"bundle": str(out), "precision": manifest.precision, "calibration": manifest.calibration}

    timed("quantize", quantize)
    timed(f"evaluate {SCORED_MODEL}-int8", lambda: evaluate(f"{SCORED_MODEL}-int8", False))


def _write_report(result: DemoResult, conf: PipelineConfig) -> dict[str, Any]:
    """``<out>/report.html``: scored images with their predictions, Table 3, INT8 vs fp32, the scoring run."""
    from softlines_attr.demo_report import ReportInputs, Table, format_cells, sample_scored, write_report
    from softlines_attr.io.commit import resolve_current

    out_dir = result.out_dir
    score = result.stages["score"]
    t3 = result.table3
    single = conf.demo.single_models
    columns = ("attribute", "chance", "refined from base: acc", "per-class", "from scratch: acc", "per-class")
    if single:
        columns += ("single from base: acc", "per-class", "single from scratch: acc", "per-class")
    rows = []
    for attr, r in t3.items():
        cells = format_cells(
            [r["chance"], r["base_acc"], r["base_class_acc"], r["scratch_acc"], r["scratch_class_acc"]]
        )
        if single:
            cells += format_cells(
                [
                    r.get("single_base_acc"),
                    r.get("single_base_class_acc"),
                    r.get("single_scratch_acc"),
                    r.get("single_scratch_class_acc"),
                ]
            )
        rows.append((attr, *cells))
    int8_rows = tuple(
        (attr, *format_cells([r["base_acc"], r.get("int8_acc"), r["base_class_acc"], r.get("int8_class_acc")]))
        for attr, r in t3.items()
    )
    base_metrics = result.stages.get("train base", {}).get("metrics", {})
    facts = [
        ("catalog rows", str(score["rows_in"])),
        ("human-tagged products", str(result.stages.get("select tags", {}).get("products_tagged", "?"))),
        ("base model (title words), val split", base_quality(base_metrics)),
        ("refined vs scratch", refined_vs_scratch(t3) or "n/a"),
        ("scored / errors / skipped", f"{score['rows_scored']} / {score['rows_errors']} / {score['rows_skipped']}"),
        ("errors by reason", ", ".join(f"{k}: {v}" for k, v in score["errors_by_reason"].items()) or "none"),
        ("attribute rows (abstained)", f"{score['attribute_rows']} ({score['attribute_rows_abstained']})"),
        ("model", str(_bundle(out_dir, SCORED_MODEL))),
        ("scoring tables", str(out_dir / "scores")),
    ]
    inputs = ReportInputs(
        title="softlines-attr demo",
        scored=sample_scored(
            Path(resolve_current(str(out_dir / "scores"))) / "attributes",
            out_dir / "catalog" / "catalog.parquet",
            truth_path=out_dir / "catalog" / "truth.parquet",
            n=conf.demo.report_images,
        ),
        tables=[
            Table(
                "Table 3: held-out generated images (val split)",
                columns,
                tuple(rows),
                note="multi-class accuracy and average per-class accuracy of the multi-head model (one backbone, "
                "a head per attribute)" + (", and of the per-attribute models" if single else ""),
            ),
            Table(
                "INT8 vs fp32 (the scored model, same val images)",
                ("attribute", "fp32 acc", "int8 acc", "fp32 per-class", "int8 per-class"),
                int8_rows,
            ),
        ],
        facts=facts,
    )
    path = write_report(out_dir / "report.html", inputs)
    return {"out": str(path), "images": len(inputs.scored)}
