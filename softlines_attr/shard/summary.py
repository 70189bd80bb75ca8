"""What a shard run records: counts over its input, its manifest (``shards/_manifest.json``) and its summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from softlines_attr.config import PipelineConfig, config_to_dict
from softlines_attr.shard.inputs import Inputs
from softlines_attr.shard.manifest import SHARD_CONTRACT_VERSION, ShardEntry, ShardManifest, manifest_json
from softlines_attr.shard.profile import sum_shard_profiles
from softlines_attr.shard.recordio import LABEL_PAD
from softlines_attr.shard.request import ShardJob
from softlines_attr.shard.tables import MANIFEST_DDL, schema_names


@dataclass(frozen=True)
class InputFacts:
    """Counts over the tagged input, from one aggregation.

    Attributes:
        rows_in: Input rows.
        reasons: Input rejects by reason.
        split_counts: Candidates per split.
        bucket_counts: Candidates per (split, order bucket).
        split_sources: Candidates by where their split came from (labels / parent / hash).
        max_labels: The longest candidate label list.
    """

    rows_in: int
    reasons: Counter
    split_counts: dict[str, int]
    bucket_counts: dict[tuple[str, int], int]
    split_sources: dict[str, int]
    max_labels: int


def input_facts(tagged: DataFrame) -> InputFacts:
    """The counts of :class:`InputFacts`, from one aggregation over the tagged input."""
    rows = (
        tagged.groupBy("reason", "split", "_bucket", "split_source")
        .agg(F.count("*").alias("n"), F.max(F.size("labels")).alias("max_labels"))
        .collect()
    )
    reasons: Counter = Counter()
    split_counts: Counter = Counter()
    buckets: Counter = Counter()
    sources: Counter = Counter()
    max_labels = 0
    for r in rows:
        if r["reason"] is not None:
            reasons[r["reason"]] += r["n"]
            continue
        split_counts[r["split"]] += r["n"]
        buckets[(r["split"], r["_bucket"])] += r["n"]
        sources[r["split_source"]] += r["n"]
        max_labels = max(max_labels, r["max_labels"] or 0)
    return InputFacts(sum(r["n"] for r in rows), reasons, dict(split_counts), dict(buckets), dict(sources), max_labels)


def contract_facts(job: ShardJob, inputs: Inputs) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The attribute of each label column and the class names per attribute (refine and multi shards)."""
    if job.mode == "multi":
        return tuple(inputs.extra["attributes"]), {a: tuple(c) for a, c in inputs.extra["classes"].items()}
    if job.mode == "refine":
        return (inputs.extra["attribute"],), {inputs.extra["attribute"]: tuple(inputs.extra["classes"])}
    return (), {}


def manifest_text(manifest_rows: list[tuple], run_id: str, job: ShardJob, inputs: Inputs, labels_version: str) -> str:
    """The shard manifest (:class:`~softlines_attr.shard.manifest.ShardManifest`) as JSON, paths relative to shards/."""
    names = schema_names(MANIFEST_DDL)
    entries = []
    for row in manifest_rows:
        values = dict(zip(names, row))
        values["shard"] = values["shard"].removeprefix("shards/")
        values["idx"] = values["idx"].removeprefix("shards/")
        entries.append(ShardEntry(**values))
    first = manifest_rows[0] if manifest_rows else None
    width, pad, size, resize, mode, classes = (
        first[-6:] if first else (0, LABEL_PAD, 0, "shorter_side", job.mode, inputs.num_classes)
    )
    attributes, class_names = contract_facts(job, inputs)
    manifest = ShardManifest(
        contract_version=SHARD_CONTRACT_VERSION,
        run_id=run_id,
        mode=mode,
        label_width=width,
        image_size=size,
        resize_mode=resize,
        num_classes=classes,
        shards=tuple(entries),
        attributes=attributes,
        classes=class_names,
        vocab_size=job.vocab_size,
        labels=labels_version,
        label_pad=pad,
    )
    return manifest_json(manifest)


def run_summary(
    *,
    run_id: str,
    job: ShardJob,
    labels_version: str,
    conf: PipelineConfig,
    out_dir: str,
    inputs: Inputs,
    facts: InputFacts,
    parts: list,
    shard_rows: list[tuple],
    stats: list[tuple],
    strays: list[str],
    reasons: Counter,
    label_width: int,
    records_written: int,
    rejected: int,
    started_at: str,
    seconds: float,
) -> dict:
    """The run's ``_summary.json``: the contract keys (``ShardSummary``) and the informative rest."""
    splits: dict[str, dict] = {}
    split_counts = facts.split_counts
    for split in sorted(split_counts):
        rows = [r for r in shard_rows if r[2] == split]
        per_part: Counter = Counter()
        for r in rows:
            per_part[r[3]] += r[5]
        counts = list(per_part.values()) or [0]
        splits[split] = {
            "candidates": split_counts[split],
            "records": sum(r[5] for r in rows),
            "shards": len(rows),
            "parts": sum(1 for p in parts if p.split == split),
            "records_per_part_min": min(counts),
            "records_per_part_max": max(counts),
            "bytes": sum(r[6] for r in rows),
        }
    attempts = [s[4] for s in stats]
    return {
        "job": "shard",
        "run_id": run_id,
        "mode": job.mode,
        "labels": labels_version,  # the label job's version read (its run folder), so readers find its vocabulary
        "labels_out": job.labels_dir,
        "tags": job.tags_path,
        "attribute": job.attribute,
        "catalog": job.catalog_path,
        "vocab_size": job.vocab_size,
        "out": out_dir,
        "rows_in": facts.rows_in,
        "records_written": records_written,
        "rows_rejected": rejected,
        "rejects_by_reason": dict(sorted(reasons.items())),
        "rows_in_equals_written_plus_rejected": facts.rows_in == records_written + rejected,
        "splits": splits,
        "shards": len(shard_rows),
        "bytes": sum(r[6] for r in shard_rows),
        "label_width": label_width,
        "label_pad": LABEL_PAD,
        "num_classes": {a: len(c) for a, c in inputs.extra["classes"].items()}
        if job.mode == "multi"
        else inputs.num_classes,
        **({"attributes": inputs.extra["attributes"]} if job.mode == "multi" else {}),
        "image_size": conf.images.store_size,
        "resize_mode": conf.images.resize_mode,
        "contract_version": SHARD_CONTRACT_VERSION,
        "classes": {a: list(c) for a, c in contract_facts(job, inputs)[1].items()},
        "inputs": {**inputs.extra, "split_source": facts.split_sources},
        "tasks": len(stats),
        "task_retries_seen": sum(1 for a in attempts if a > 0),
        "stray_files_removed": strays,
        "peak_task_rss_mb": round(max((s[3] for s in stats), default=0) / 1024, 1),
        "task_seconds_max": max((s[2] for s in stats), default=0.0),
        "stage_seconds": round(max((s[6] for s in stats), default=0.0) - min((s[5] for s in stats), default=0.0), 3),
        "profile_seconds": sum_shard_profiles(s[7] for s in stats),  # softlines_attr.shard.profile's stages
        "tables": {"manifest": "manifest", "record_index": "record_index", "rejects": "rejects", "shards": "shards"},
        "config": {"images": config_to_dict(conf.images), "shard": config_to_dict(conf.shard), "seed": conf.seed},
        "started_at": started_at,
        "seconds": round(seconds, 3),
    }
