"""``softlines-attr pipeline``: the scheduled method's steps, run locally in order on one local SparkSession.

The same steps as the EMR schedule (docs/EMR.md), each reading the committed output of the step before it under
``OUT``::

    OUT/catalog/                  the generated catalog (without --catalog), tags.parquet, audit_tags.parquet
    OUT/labels/                   labels (versioned: runs/<run_id>/ + _current.json)
    OUT/shards/base/              base shards (title words)
    OUT/shards/<multi|ATTRIBUTE>/ refine shards (the human tags)
    OUT/models/<run_id>/base/     the base model; OUT/models/<run_id>/<multi|ATTRIBUTE>/ the candidate refined from it
    OUT/models/<run_id>/evaluation/   the candidate on the val split (its abstain thresholds go into its bundle)
    OUT/registry/                 the model registry (promote): the current model behind one pointer
    OUT/scores/                   the scoring job's tables, with the registry's current model (incremental over the
                                  previous run's: only rows whose image or model changed are scored again)
    OUT/audits/                   the production audit (with --audit-tags, or the generated sample)
    OUT/pipeline_summary.json     every step's rows in / out / rejected / skipped, seconds, and the gate's decision

A refused candidate does not stop the pipeline: scoring uses the current model and the summary says why.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softlines_attr.config import PipelineConfig
from softlines_attr.errors import ConfigError

log = logging.getLogger(__name__)

SUMMARY_FILE = "pipeline_summary.json"
MULTI = "multi"


@dataclass(frozen=True)
class PipelineRequest:
    """What one local pipeline run is asked (the command's arguments).

    Attributes:
        out_dir: The pipeline's folder.
        catalog: The catalog snapshot; None = a generated catalog under ``OUT/catalog``.
        tags: The human tags for refine (required with ``catalog``).
        audit_tags: Later human tags for the audit; None = none with ``catalog``, a generated sample of untagged
            products otherwise.
        since: The audit's ``--since``.
        n: Generated catalog: tagged products (default ``catalog.n / demo.catalog_factor``).
        catalog_n: Generated catalog: products in all (default ``catalog.n``).
        attribute: ``all`` (multi shards, a head per attribute) or one taxonomy attribute.
        run_id: The run id every step uses (default: a new one).
    """

    out_dir: Path
    catalog: str | None = None
    tags: str | None = None
    audit_tags: str | None = None
    since: str | None = None
    n: int | None = None
    catalog_n: int | None = None
    attribute: str = "all"
    run_id: str | None = None

    def sizes(self, conf: PipelineConfig) -> tuple[int, int]:
        """(tagged products, products in all) of the generated catalog."""
        total = self.catalog_n if self.catalog_n is not None else conf.catalog.n
        tagged = self.n if self.n is not None else max(1, round(total / conf.demo.catalog_factor))
        return tagged, total

    def validate(self, conf: PipelineConfig) -> None:
        """Refuse inconsistent arguments before any work.

        Raises:
            ConfigError: --catalog without --tags (or the reverse), sizes out of range, an unknown attribute.
        """
        if (self.catalog is None) != (self.tags is None):
            raise ConfigError("--catalog and --tags: expected both (your data) or neither (a generated catalog)")
        tagged, total = self.sizes(conf)
        if tagged < 1 or total < tagged:
            raise ConfigError(f"--n / --catalog-n: expected 1 <= n <= catalog-n, found {tagged} and {total}")
        if self.attribute != "all":
            conf.taxonomy.attribute(self.attribute)  # UnknownAttributeError names the choices


def _rows(rows_in: int | None, out: int | None, rejected: int = 0, skipped: int = 0) -> dict[str, int | None]:
    return {"rows_in": rows_in, "rows_out": out, "rows_rejected": rejected, "rows_skipped": skipped}


def step_rows(step: str, summary: dict[str, Any]) -> dict[str, int | None]:
    """A step's rows in / out / rejected / skipped from its own summary (rows in = out + rejected + skipped where a
    step passes rows on; a model step has no rows out)."""
    if step == "labels":
        return _rows(summary["rows_in"], summary["rows_labelled"], summary["rows_rejected"])
    if step.startswith("shard"):
        return _rows(summary["rows_in"], summary["records_written"], summary["rows_rejected"])
    if step == "score":
        out = summary["rows_scored"] + summary["rows_carried"]
        return _rows(summary["rows_in"], out, summary["rows_errors"], summary["rows_skipped"])
    if step == "audit":
        return _rows(summary["tag_rows_in"], summary["tag_rows_matched"], summary["tag_rows_rejected"])
    if step in ("evaluate", "promote"):
        return _rows(summary["records"], summary["records"])
    if step.startswith(("train", "refine")):
        return _rows(summary["records"], None)
    return _rows(summary.get("rows_in"), summary.get("rows_out"))


def later_tags(
    truth: Path, tagged: Path, out: Path, *, n: int, seed: int, date: dt.date, attributes: list[str] | None = None
) -> dict[str, Any]:
    """A generated audit sample: the true class of ``attributes`` (None: every one) for up to ``n`` dresses that
    carry no human tag (the products scored, then checked by people), dated ``date``; written to ``out`` (Parquet)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(truth)
    if attributes is not None:
        table = table.filter(pc.is_in(table["attribute"], value_set=pa.array(attributes, pa.string())))
    known = pa.array(sorted(set(pq.read_table(tagged, columns=["asin"]).column("asin").to_pylist())), pa.string())
    untagged = table.filter(pc.invert(pc.is_in(table["asin"], value_set=known)))
    asins = sorted(set(untagged.column("asin").to_pylist()))
    picked = np.random.default_rng([seed, 29]).permutation(len(asins))[: min(n, len(asins))]
    chosen = pa.array(sorted(asins[i] for i in picked.tolist()), pa.string())
    sample = untagged.filter(pc.is_in(untagged["asin"], value_set=chosen)).select(["asin", "attribute", "label"])
    sample = sample.append_column("tagged_at", pa.array([date.isoformat()] * sample.num_rows, pa.string()))
    pq.write_table(sample, str(out))
    return {"products": len(chosen), "rows": sample.num_rows, "out": str(out)}


def _generated_inputs(out: Path, conf: PipelineConfig, request: PipelineRequest) -> dict[str, Any]:
    """The generated catalog (reused when ``OUT/catalog`` holds one of the same size and seed), its tagged subset
    and a later audit sample."""
    from softlines_attr.demo import select_tags
    from softlines_attr.synthetic import generate_catalog

    tagged, total = request.sizes(conf)
    folder = out / "catalog"
    summary_file = folder / "summary.json"
    previous = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if previous.get("n") != total or previous.get("seed") != conf.seed:
        generate_catalog(folder, conf, n=total)
    tags = select_tags(folder / "tags.parquet", out / "tags.parquet", n=tagged, seed=conf.seed)
    audit = later_tags(
        folder / "truth.parquet", out / "tags.parquet", out / "audit_tags.parquet", n=tagged, seed=conf.seed,
        date=dt.datetime.now(dt.UTC).date(), attributes=None if request.attribute == "all" else [request.attribute],
    )  # fmt: skip
    return {
        "catalog": str(folder / "catalog.parquet"),
        "tags": tags["out"],
        "audit_tags": audit["out"],
        **_rows(None, total),
        "details": {"products": total, "tagged_products": tags["products_tagged"], "audit_sample": audit},
    }


def run_pipeline(request: PipelineRequest, conf: PipelineConfig, *, master: str | None = None) -> dict[str, Any]:
    """Run every step in order; write and return ``OUT/pipeline_summary.json``.

    Raises:
        ConfigError, UnknownAttributeError: inconsistent arguments (before any work).
        SoftlinesAttrError: a step that failed as a whole (the summary then names it and keeps the steps done).
    """
    from softlines_attr.io.tables import new_run_id

    request.validate(conf)
    run_id = request.run_id or new_run_id()
    out = Path(request.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {"run_id": run_id, "out": str(out), "steps": steps}

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        result = fn()
        steps[name] = {**result, "seconds": round(time.perf_counter() - started, 1)}
        log.info("pipeline %s: %s done in %.1fs", run_id, name, steps[name]["seconds"])
        return result

    try:
        _run_steps(out, conf, request, run_id, step, master)
    except Exception as exc:
        summary["failed_step"] = next((s for s in _STEP_ORDER if s not in steps), None)
        summary["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        promote = steps.get("promote", {}).get("details", {})
        summary["promotion"] = {k: promote.get(k) for k in ("decision", "reasons", "current_run_id_after")}
        summary["order"] = list(steps)  # the steps run, in order (``steps`` is written with sorted keys)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return summary


_STEP_ORDER = (
    "inputs", "labels", "shard base", "shard refine", "train base", "refine", "evaluate", "promote", "score", "audit"
)  # fmt: skip

Step = Callable[[str, Callable[[], dict[str, Any]]], dict[str, Any]]


def _record(name: str, summary: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A step's entry in the pipeline summary: its rows, where it wrote, and a few of its own summary's keys."""
    return {**step_rows(name, summary), "out": summary.get("out"), "details": {k: summary.get(k) for k in keys}}


def _run_steps(
    out: Path, conf: PipelineConfig, request: PipelineRequest, run_id: str, step: Step, master: str | None
) -> None:
    """labels -> base shards -> refine shards -> base -> refine -> evaluate -> promote -> score -> audit."""
    from softlines_attr.audit.job import AuditJob, run_audit_job
    from softlines_attr.io.commit import read_current
    from softlines_attr.labels.job import run_label_job
    from softlines_attr.model.bundle import BUNDLE_DIR
    from softlines_attr.model.evaluate import evaluate_model
    from softlines_attr.pipeline import refine_stage, train_stage
    from softlines_attr.promote.job import run_promote
    from softlines_attr.score.job import ScoreJob, run_score_job
    from softlines_attr.score.resources import load_models
    from softlines_attr.shard import ShardJob, run_shard_job
    from softlines_attr.shard.contract import read_shard_set
    from softlines_attr.spark import job_session

    if request.catalog is None:
        inputs = step("inputs", lambda: _generated_inputs(out, conf, request))
        catalog, tags, audit_tags = inputs["catalog"], inputs["tags"], request.audit_tags or inputs["audit_tags"]
    else:
        catalog, tags, audit_tags = request.catalog, request.tags, request.audit_tags
    labels, scores, registry = str(out / "labels"), str(out / "scores"), str(out / "registry")
    name = MULTI if request.attribute == "all" else request.attribute
    base_shards, refine_shards = out / "shards" / "base", out / "shards" / name
    models = out / "models" / run_id
    candidate = models / name / BUNDLE_DIR
    sizes = [s for s in conf.labels.vocab_sizes if s > 0]
    with job_session(conf.spark, app_name="softlines-attr-pipeline", master=master) as spark:
        step(
            "labels",
            lambda: _record(
                "labels",
                {
                    **run_label_job(spark, conf, catalog_path=catalog, out_dir=labels, run_id=run_id).summary,
                    "out": labels,
                },
                "run_id",
                "rejects_by_reason",
            ),
        )
        for label, job in (
            ("shard base", ShardJob(labels_dir=labels, out_dir=str(base_shards), vocab_size=min(sizes, default=0))),
            (
                "shard refine",
                ShardJob(
                    labels_dir=labels,
                    out_dir=str(refine_shards),
                    tags_path=tags,
                    attribute=request.attribute,
                    catalog_path=catalog,
                ),
            ),
        ):
            step(
                label,
                lambda job=job, label=label: _record(
                    label, run_shard_job(spark, conf, job, run_id=run_id), "run_id", "rejects_by_reason"
                ),
            )

        def model_step(label: str, fn: Callable[[], Any], shards: Path) -> dict[str, Any]:
            manifest = fn()
            s = read_shard_set(shards)
            facts = {"records": s.train_records + s.val_records, "out": str(models), "metrics": manifest.metrics}
            return _record(label, facts, "metrics")

        step(
            "train base",
            lambda: model_step(
                "train base", lambda: train_stage(base_shards, models / "base", conf, conf.train), base_shards
            ),
        )
        step(
            "refine",
            lambda: model_step(
                "refine",
                lambda: refine_stage(
                    refine_shards, models / name, conf, conf.refine, base=models / "base" / BUNDLE_DIR,
                    attribute=request.attribute,
                ),
                refine_shards,
            ),
        )  # fmt: skip

        def evaluate() -> dict[str, Any]:
            ev, where = evaluate_model(
                candidate, refine_shards, conf.evaluate, out_dir=models / "evaluation", write_to_bundle=True
            )
            heads = {h.attribute or h.head: {"accuracy": h.accuracy, "coverage": h.abstain.coverage} for h in ev.heads}
            return _record("evaluate", {"records": ev.records, "out": str(where), "heads": heads}, "heads")

        step("evaluate", evaluate)

        def promote() -> dict[str, Any]:
            decision = run_promote(str(candidate), str(refine_shards), registry, conf, run_id=run_id)
            facts = {**decision, "records": read_shard_set(refine_shards).val_records, "out": registry}
            return _record("promote", facts, "decision", "reasons", "current_run_id_after", "decision_file")

        step("promote", promote)

        def score() -> dict[str, Any]:
            payloads, _ = load_models((registry,), conf)
            previous = scores if read_current(scores).pointer else None  # incremental over the last run's scores
            job = ScoreJob(catalog_path=catalog, model_dirs=(registry,), out_dir=scores, previous_dir=previous)
            summary = run_score_job(spark, conf, job, run_id=run_id, payloads=payloads)
            return _record("score", summary, "run_id", "previous_run_id", "errors_by_reason", "attribute_rows")

        step("score", score)
        if audit_tags is not None:
            step(
                "audit",
                lambda: _record(
                    "audit",
                    run_audit_job(
                        spark, conf, AuditJob(scores, audit_tags, str(out / "audits"), since=request.since),
                        run_id=run_id,
                    ),
                    "rejects_by_reason",
                    "attributes",
                ),
            )  # fmt: skip
