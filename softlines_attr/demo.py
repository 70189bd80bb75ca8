"""The end-to-end demo on a generated catalog: the README's ``make demo``.

One function per run of the pipeline's stages, in order, sharing one SparkSession:
generated catalog -> labels -> base-model shards -> refine shards (one per attribute) -> multi
shards (all attributes) -> base model (title words) -> per attribute, a model refined from the base
and the same network from scratch -> one multi-head model refined from the base. The demo shards
small images and trains a narrow network (:class:`DemoTraining`) so that it runs in minutes on a
laptop; the Table 3 comparison (:func:`table3`) reads each model's validation metrics.
Later stages (evaluate, score) are appended here as they land.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from softlines_attr.config import PipelineConfig

log = logging.getLogger(__name__)

MULTI = "multi"  # the multi-head model's row in Table 3


@dataclass(frozen=True)
class DemoTraining:
    """The demo's model settings: small images and a narrow Inception-BN, so training takes minutes on 2 cores.

    The demo's conf (:func:`demo_config`) replaces ``images.store_size``, ``input_size`` and
    ``resize_mode`` for every stage, so later stages (evaluate, score) must use the same conf.

    Attributes:
        store_size: ``images.store_size`` for the demo's shards (the conf's is for real training).
        input_size: ``images.input_size``: the random (train) / centre (val) crop of the stored image.
        resize_mode: ``pad_square``: the whole (portrait) image padded to a square, so that a crop
            keeps the neckline and the hemline (a shorter-side resize and a centre crop cut them off).
        width: Inception-BN width multiplier.
        batch_size: Images per batch.
        base_epochs: Epochs of the base model (title words, sigmoid).
        base_lr: Learning rate of the base model.
        refine_epochs: Epochs of each refined, from-scratch and multi-head model.
        refine_lr: Learning rate of the new heads (and of the from-scratch networks).
        lr_step_fraction: Every model's learning rate drops tenfold after this share of its epochs
            (a steadier end point on a few hundred images).
        backbone_lr_mult: Backbone learning rate multiplier when refining from the base.
        color_jitter: Random hue / saturation / lightness shifts in training (the attributes do not
            depend on colour; on ~270 images per attribute it is what makes the models generalise).
        threads: Decoding threads per record iterator.
    """

    store_size: int = 72
    input_size: int = 64
    resize_mode: Literal["shorter_side", "pad_square"] = "pad_square"
    width: float = 0.25
    batch_size: int = 32
    base_epochs: int = 20
    base_lr: float = 0.05
    refine_epochs: int = 24
    refine_lr: float = 0.05
    lr_step_fraction: float = 0.8
    backbone_lr_mult: float = 1.0
    color_jitter: bool = True
    threads: int = 2


def demo_config(conf: PipelineConfig, training: DemoTraining) -> PipelineConfig:
    """``conf`` with the demo's image sizes (shards and networks)."""
    images = dataclasses.replace(conf.images, store_size=training.store_size, input_size=training.input_size, resize_mode=training.resize_mode)
    return dataclasses.replace(conf, images=images)


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
    training: DemoTraining | None = None,
) -> DemoResult:
    """Run every stage that exists on a generated catalog of ``n`` products under ``out_dir``.

    Args:
        out_dir: The demo's folder: ``catalog/``, ``labels/``, ``shards/base``, ``shards/<attribute>``,
            ``shards/multi``, ``models/base``, ``models/<attribute>-base``, ``models/<attribute>-scratch``,
            ``models/multi-base``.
        conf: The pipeline configuration (its images section is replaced by the demo's sizes).
        n: Number of generated products.
        seed: Generator seed (default: the conf's).
        master: Spark master (default: the conf's Spark profile).
        training: Image sizes and training settings (default :class:`DemoTraining`).

    Returns:
        The stages' summaries and timings, and ``table3``, the accuracy comparison (:func:`table3`).
    """
    training = training or DemoTraining()
    conf = demo_config(conf, training)
    from softlines_attr.labels.job import run_label_job
    from softlines_attr.shard import ShardJob, run_shard_job
    from softlines_attr.spark import build_session
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
    timed("make-catalog", lambda: generate_catalog(catalog_dir, conf, n=n, seed=seed))
    spark = build_session(conf.spark, app_name="softlines-attr-demo", master=master)
    try:
        labels_dir = str(out_dir / "labels")
        timed(
            "labels",
            lambda: run_label_job(spark, conf, catalog_path=str(catalog_dir / "catalog.parquet"), out_dir=labels_dir).summary,
        )
        base_size = min(s for s in conf.labels.vocab_sizes if s > 0) if any(s > 0 for s in conf.labels.vocab_sizes) else 0
        timed(
            "shard base",
            lambda: run_shard_job(spark, conf, ShardJob(labels_dir=labels_dir, out_dir=str(out_dir / "shards" / "base"), vocab_size=base_size)),
        )
        for attr in conf.taxonomy.attributes:
            timed(
                f"shard {attr.name}",
                lambda attr=attr: run_shard_job(
                    spark,
                    conf,
                    ShardJob(
                        labels_dir=labels_dir,
                        out_dir=str(out_dir / "shards" / attr.name),
                        tags_path=str(catalog_dir / "tags.parquet"),
                        attribute=attr.name,
                    ),
                ),
            )
        timed(
            f"shard {MULTI}",
            lambda: run_shard_job(
                spark,
                conf,
                ShardJob(labels_dir=labels_dir, out_dir=str(out_dir / "shards" / MULTI), tags_path=str(catalog_dir / "tags.parquet"), attribute="all"),
            ),
        )
    finally:
        spark.stop()
    _train_stages(out_dir, conf, training, timed)
    result.table3 = table3(result.stages, {a.name: len(a.classes) for a in conf.taxonomy.attributes})
    (out_dir / "demo_summary.json").write_text(
        json.dumps({"stages": result.stages, "seconds": result.seconds, "table3": result.table3}, indent=2, sort_keys=True, default=str) + "\n"
    )
    return result


def _train_stages(out_dir: Path, conf: PipelineConfig, training: DemoTraining, timed: Callable[[str, Callable[[], dict[str, Any]]], dict[str, Any]]) -> None:
    """Base model, then per attribute refined-from-base and from-scratch models, then the multi-head model.

    Each model is one timed stage ``train <name>`` whose summary holds the bundle path, heads, base
    model and validation metrics; bundles go to ``<out>/models/<name>/bundle``.
    """
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.train import BUNDLE_DIR, TrainConfig, train

    shards, models = out_dir / "shards", out_dir / "models"
    common = TrainConfig(
        width=training.width, batch_size=training.batch_size, threads=training.threads, input_size=training.input_size, color_jitter=training.color_jitter
    )

    def summary(manifest, model_dir: Path) -> dict[str, Any]:
        return {"bundle": str(model_dir / BUNDLE_DIR), "heads": [h.name for h in manifest.heads], "base_model": manifest.base_model, "metrics": manifest.metrics}

    def fit(name: str, shard_dir: Path, tc: TrainConfig, base=None) -> None:
        model_dir = models / name
        timed(f"train {name}", lambda: summary(train(shard_dir, model_dir, conf, tc, base=base), model_dir))

    def step(epochs: int) -> tuple[int, ...]:
        return (max(1, round(epochs * training.lr_step_fraction)),)

    base_tc = dataclasses.replace(common, epochs=training.base_epochs, learning_rate=training.base_lr, lr_step_epochs=step(training.base_epochs))
    fit("base", shards / "base", base_tc)
    base = load_bundle(models / "base" / BUNDLE_DIR)
    refine = dataclasses.replace(
        common, epochs=training.refine_epochs, learning_rate=training.refine_lr, loss="softmax", lr_step_epochs=step(training.refine_epochs)
    )
    from_base = dataclasses.replace(refine, backbone_lr_mult=training.backbone_lr_mult)
    for attr in conf.taxonomy.attributes:
        fit(f"{attr.name}-base", shards / attr.name, from_base, base)
        fit(f"{attr.name}-scratch", shards / attr.name, refine)
    fit(f"{MULTI}-base", shards / MULTI, from_base, base)


def table3(stages: dict[str, dict[str, Any]], classes: dict[str, int]) -> dict[str, dict[str, float | None]]:
    """The paper's Table 3 from the training stages' validation metrics, per attribute.

    Accuracy is multi-class accuracy on the val split; class accuracy is the average per-class
    accuracy (:func:`softlines_attr.model.train.mean_class_accuracy`, the mean recall over the
    classes present), both computed by training on the val split with a centre crop.

    Args:
        stages: The demo's stage summaries (``train <attribute>-base``, ``train <attribute>-scratch``,
            ``train multi-base``).
        classes: Class count per attribute, in table order.

    Returns:
        attribute -> ``base_acc``, ``base_class_acc`` (refined from the base model), ``scratch_acc``,
        ``scratch_class_acc`` (same network from scratch), ``multi_acc``, ``multi_class_acc`` (the
        shared-backbone multi-head model refined from the base), ``chance`` (1 / classes),
        ``val_records`` (of the attribute's refine shards); None where a model is missing.
    """
    multi = stages.get(f"train {MULTI}-base", {}).get("metrics", {})
    rows: dict[str, dict[str, float | None]] = {}
    for attr, n_classes in classes.items():
        row: dict[str, float | None] = {"chance": 1.0 / n_classes}
        for kind in ("base", "scratch"):
            metrics = stages.get(f"train {attr}-{kind}", {}).get("metrics", {})
            row[f"{kind}_acc"] = metrics.get("val_accuracy")
            row[f"{kind}_class_acc"] = metrics.get("val_mean_class_accuracy")
            if kind == "base":
                row["val_records"] = metrics.get("val_records")
        row["multi_acc"] = multi.get(f"val_{attr}_accuracy")
        row["multi_class_acc"] = multi.get(f"val_{attr}_mean_class_accuracy")
        rows[attr] = row
    return rows


def format_table3(rows: dict[str, dict[str, float | None]]) -> list[str]:
    """Table 3 as text lines: multi-class accuracy / average per-class accuracy on the val split."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:5.1f}%"

    lines = [
        "  Table 3 (val split, generated images): multi-class accuracy / average per-class accuracy",
        f"  {'attribute':<13} {'chance':>7}  {'refined from base':>17}  {'from scratch':>15}  {'multi-head (base)':>17}",
    ]
    for attr, r in rows.items():
        chance = pct(r.get("chance"))
        lines.append(
            f"  {attr:<13} {chance:>7}  {pct(r['base_acc'])} / {pct(r['base_class_acc'])}  {pct(r['scratch_acc'])} / {pct(r['scratch_class_acc'])}"
            f"  {pct(r['multi_acc'])} / {pct(r['multi_class_acc'])}"
        )
    return lines


def format_report(result: DemoResult) -> str:
    """A short, human summary of a demo run: one line per stage with its counts and where it wrote."""
    lines = [f"demo outputs under {result.out_dir}"]
    for name, summary in result.stages.items():
        secs = result.seconds[name]
        if name == "make-catalog":
            lines.append(f"  {name:<22} {secs:6.1f}s  {summary.get('rows', summary.get('n'))} products -> {result.out_dir / 'catalog'}")
        elif name.startswith("train "):
            m = summary["metrics"]
            if "val_map" in m:
                score = f"val mAP {m['val_map']:.3f}, precision@1 {m['val_precision_at_1']:.3f}"
            else:
                score = f"val accuracy {m.get('val_accuracy', 0):.3f}, per-class {m.get('val_mean_class_accuracy', 0):.3f}"
            records = m.get("val_records", sum(v for k, v in m.items() if k.endswith("_records")))
            what = "val images" if "val_records" in m else f"val tags of {len(summary['heads'])} heads"
            lines.append(f"  {name:<22} {secs:6.1f}s  {score} on {int(records)} {what} -> {summary['bundle']}")
        elif name == "labels":
            lines.append(
                f"  {name:<22} {secs:6.1f}s  rows in {summary['rows_in']} = labelled {summary['rows_labelled']} + rejected "
                f"{summary['rows_rejected']}; vocabulary words {summary['vocabulary_words']} -> {summary['out']}"
            )
        else:
            lines.append(
                f"  {name:<22} {secs:6.1f}s  rows in {summary['rows_in']} = records {summary['records_written']} + rejected "
                f"{summary['rows_rejected']} in {summary['shards']} shards -> {summary['out']}"
            )
    if result.table3:
        lines.extend(format_table3(result.table3))
    return "\n".join(lines)
