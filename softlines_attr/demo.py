"""The end-to-end demo on a generated catalog: the README's ``make demo``.

One function per run of the pipeline's stages, in order, sharing one SparkSession:
generated catalog -> labels -> base-model shards -> refine shards (one per attribute).
Later stages (train, refine, score) are appended here as they land.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softlines_attr.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """Where each stage wrote its outputs, and each stage's summary."""

    out_dir: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(out_dir: Path, conf: PipelineConfig, *, n: int, seed: int | None = None, master: str | None = None) -> DemoResult:
    """Run every stage that exists on a generated catalog of ``n`` products under ``out_dir``.

    Args:
        out_dir: The demo's folder: ``catalog/``, ``labels/``, ``shards/base``, ``shards/<attribute>``.
        conf: The pipeline configuration.
        n: Number of generated products.
        seed: Generator seed (default: the conf's).
        master: Spark master (default: the conf's Spark profile).

    Returns:
        The stages' summaries and timings.
    """
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
    finally:
        spark.stop()
    (out_dir / "demo_summary.json").write_text(
        json.dumps({"stages": result.stages, "seconds": result.seconds}, indent=2, sort_keys=True, default=str) + "\n"
    )
    return result


def format_report(result: DemoResult) -> str:
    """A short, human summary of a demo run: one line per stage with its counts and where it wrote."""
    lines = [f"demo outputs under {result.out_dir}"]
    for name, summary in result.stages.items():
        secs = result.seconds[name]
        if name == "make-catalog":
            lines.append(f"  {name:<22} {secs:6.1f}s  {summary.get('rows', summary.get('n'))} products -> {result.out_dir / 'catalog'}")
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
    return "\n".join(lines)
