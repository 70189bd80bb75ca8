"""The shard job's driver: inputs -> balanced partitions -> shards -> manifest, record index, rejects.

Output layout of one run, under ``<out>/runs/<run_id>/`` (local path or s3://), made the current
version by ``<out>/_current.json`` (:mod:`softlines_attr.io.commit`)::

    shards/<split>/<split>-<part>-<seq>.rec   MXNet RecordIO shards (with .idx beside each)
    shards/_manifest.json                     the manifest as JSON, for readers without Parquet
    manifest/                                 Parquet, one row per shard (:data:`MANIFEST_DDL`)
    record_index/                             Parquet, one row per record (:data:`INDEX_DDL`)
    rejects/                                  Parquet, one row per rejected input row (:data:`REJECT_DDL`)
    _summary.json                             the run summary, written last

Everything is written into the run folder and committed at the end by one pointer write, the same
:class:`softlines_attr.io.commit.StagedOutput` for local and S3 outputs (local tables are written by
Spark, S3 tables with pyarrow by the tasks, one part each; shards by the tasks in both cases).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from softlines_attr.config import PipelineConfig, config_to_dict
from softlines_attr.io.commit import StagedOutput, resolve_current
from softlines_attr.io.storage import join_uri, parse_uri, storage_for
from softlines_attr.io.tables import new_run_id
from softlines_attr.shard.contract import SHARD_CONTRACT_VERSION, SHARD_MANIFEST, ShardEntry, ShardManifest, ShardSummary, manifest_json
from softlines_attr.shard.errors import ShardAccountingError, ShardCommitError, ShardInputError
from softlines_attr.shard.inputs import REJECT_DDL, Inputs, base_inputs, candidates_of, multi_inputs, refine_inputs, rejects_of
from softlines_attr.shard.plan import PartSpec, bucket_column, plan_parts, route_rows
from softlines_attr.shard.recordio import LABEL_PAD
from softlines_attr.shard.task import TaskSpec, shard_partition

log = logging.getLogger(__name__)

INDEX_DDL = "asin string, split string, shard string, record_id long, offset long, width int, height int, passed_through boolean"
TASK_SHARD_DDL = (
    "shard string, idx string, split string, part int, seq int, records long, bytes long, sha256 string, "
    "idx_bytes long, idx_sha256 string, first_record_id long, last_record_id long"
)
MANIFEST_DDL = TASK_SHARD_DDL + ", label_width int, label_pad float, image_size int, resize_mode string, mode string, num_classes int"
ALL_ATTRIBUTES = "all"  # --attribute all: multi shards, one label column per taxonomy attribute


@dataclass(frozen=True)
class ShardJob:
    """What to shard.

    Attributes:
        labels_dir: The label job's output folder (``labels/``, ``vocabulary/``).
        out_dir: Output folder, local or s3://.
        vocab_size: Base-model shards of this vocabulary (0 = all words).
        tags_path: Refine shards: the human tags table.
        attribute: Refine shards: the taxonomy attribute; ``all`` (:data:`ALL_ATTRIBUTES`) for multi
            shards (one class index per taxonomy attribute per record, -1 = no tag).
        catalog_path: Refine shards: the catalog, for images of tagged asins not in the labels table.
    """

    labels_dir: str
    out_dir: str
    vocab_size: int | None = None
    tags_path: str | None = None
    attribute: str | None = None
    catalog_path: str | None = None

    @property
    def mode(self) -> str:
        """``base``, ``refine`` or ``multi`` (tags with attribute ``all``)."""
        if self.tags_path is None:
            return "base"
        return "multi" if self.attribute == ALL_ATTRIBUTES else "refine"

    def validate(self) -> None:
        """Exactly one of base (vocab size) or refine (tags + attribute).

        Raises:
            ShardInputError: naming what was given.
        """
        base = self.vocab_size is not None
        refine = self.tags_path is not None or self.attribute is not None
        if base == refine or (refine and (self.tags_path is None or self.attribute is None)):
            raise ShardInputError(
                "expected either --vocab-size N (base shards) or --tags PATH with --attribute NAME (refine shards), "
                f"found vocab_size={self.vocab_size}, tags={self.tags_path}, attribute={self.attribute}"
            )
        if self.catalog_path is not None and not refine:
            raise ShardInputError(f"expected --catalog only with --tags (refine shards), found --catalog {self.catalog_path} with --vocab-size")
        if base and self.vocab_size is not None and self.vocab_size < 0:
            raise ShardInputError(f"expected --vocab-size >= 0 (0 = all words), found {self.vocab_size}")
        parse_uri(self.out_dir)  # an unknown scheme is a clear, job-level error


def _schema_names(ddl: str) -> list[str]:
    return [part.strip().split(" ")[0] for part in ddl.split(",")]


def _to_arrow_parquet(rows: list[tuple], ddl: str) -> bytes:
    """Rows as a Parquet file (pyarrow), with the types of ``ddl``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "long": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(), "float": pa.float32()}
    fields = [pa.field(name, types[kind]) for name, kind in (p.strip().split(" ") for p in ddl.split(","))]
    schema = pa.schema(fields)
    columns = list(zip(*rows)) if rows else [[] for _ in fields]
    table = pa.Table.from_arrays([pa.array(list(col), type=f.type) for col, f in zip(columns, fields)], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _inputs(spark: SparkSession, conf: PipelineConfig, job: ShardJob) -> Inputs:
    if job.mode == "base":
        assert job.vocab_size is not None
        return base_inputs(spark, job.labels_dir, job.vocab_size, conf.shard.label_width)
    assert job.tags_path is not None and job.attribute is not None
    if job.mode == "multi":
        return multi_inputs(
            spark, job.labels_dir, job.tags_path, conf.taxonomy.attributes, seed=conf.seed, val_fraction=conf.labels.val_fraction, catalog_path=job.catalog_path
        )
    attribute = conf.taxonomy.attribute(job.attribute)
    return refine_inputs(
        spark, job.labels_dir, job.tags_path, attribute, seed=conf.seed, val_fraction=conf.labels.val_fraction, catalog_path=job.catalog_path
    )


def _write_table(spark: SparkSession, staged: StagedOutput, name: str, rows_df: DataFrame, order: list[str]) -> None:
    """Stage table ``name`` with Spark (local and Hadoop outputs; S3 outputs use :func:`_write_parts`)."""
    rows_df.coalesce(1).sortWithinPartitions(*order).write.mode("overwrite").parquet(staged.table_path(name))


def _write_parts(rdd, table_uri: str, ddl: str, order: list[str], conf: PipelineConfig) -> None:
    """Write an RDD of row tuples as Parquet files ``part-NNNNN.parquet`` from the tasks (S3 outputs).

    Each task sorts and writes its own partition, so driver memory does not grow with the catalog; a
    retried task rewrites the same name. Part 0 is always written, so an empty table is readable.
    """
    names = _schema_names(ddl)
    keys = [names.index(c) for c in order]
    shard = conf.shard
    options = {"threads": 1, "retries": shard.fetch_retries, "timeout_s": shard.fetch_timeout_s, "multipart_chunk_bytes": shard.multipart_chunk_bytes}

    def write(index: int, rows: Iterable[tuple]) -> Iterator[int]:
        ordered = sorted((tuple(r) for r in rows), key=lambda r: tuple("" if r[k] is None else r[k] for k in keys))
        if ordered or index == 0:
            storage_for(table_uri, **options).write_bytes(join_uri(table_uri, f"part-{index:05d}.parquet"), _to_arrow_parquet(ordered, ddl))
        yield len(ordered)

    rdd.mapPartitionsWithIndex(write).sum()


def run_shard_job(
    spark: SparkSession,
    conf: PipelineConfig,
    job: ShardJob,
    *,
    run_id: str | None = None,
) -> dict:
    """Run the shard job and commit its outputs; returns the run summary.

    Args:
        spark: The active session.
        conf: The pipeline config (``images``, ``shard``, ``seed``, ``labels.val_fraction``, taxonomy).
        job: What to shard and where.
        run_id: The run id (default: a new one).

    Returns:
        The summary written to ``<out>/runs/<run_id>/_summary.json``.

    Raises:
        ShardInputError, InputSchemaError, InputFormatError, UnknownAttributeError: bad inputs.
        ShardAccountingError: rows in != records written + rows rejected (nothing is committed).
        ShardCommitError: a reported shard is missing from staging.
        RunIdError, OutputLocationError: an unsafe run id; an ``--out`` that is a file, read-only or
            another job's output (found before any work).
    """
    job.validate()
    started = time.monotonic()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run_id = run_id or new_run_id()
    out_dir = job.out_dir if parse_uri(job.out_dir).scheme == "s3" else os.path.abspath(parse_uri(job.out_dir).key)
    staged = StagedOutput(out_dir, run_id, job="shard", keep_versions=conf.output.keep_versions)
    staged.prepare()  # before the work: a bad --out fails now, a dead run's folder is removed
    tagged = None
    try:
        labels_version = resolve_current(job.labels_dir)  # the label job's current version (its run folder)
        log.info("shard run %s: %s shards from %s to %s", run_id, job.mode, labels_version, out_dir)
        inputs = _inputs(spark, conf, dataclasses.replace(job, labels_dir=labels_version))
        tagged = inputs.tagged.withColumn("_bucket", bucket_column(conf.seed)).persist(StorageLevel.MEMORY_AND_DISK)
        facts = _input_facts(tagged)  # one pass: rows in, input rejects, per-split counts, label width
        label_width = {"refine": 0, "multi": len(conf.taxonomy.attributes)}.get(job.mode, conf.shard.label_width or max(1, facts.max_labels))
        slots = task_slots(spark)
        parts = plan_parts(facts.split_counts, conf.shard.records_per_shard, conf.shard.min_shards or 2 * slots, slots)
        log.info("%d rows in, %d candidates %s -> %d parts; label width %d", facts.rows_in, sum(facts.split_counts.values()), facts.split_counts, len(parts), label_width)
        summary = _shard_and_commit(spark, conf, job, staged, labels_version, inputs, tagged, facts, parts, label_width, started, started_at)
    except BaseException:
        staged.abort()  # no-op once committed
        raise
    finally:
        if tagged is not None:
            tagged.unpersist()
    log.info(
        "shard run %s: %d rows in = %d records written + %d rejected, %d shards",
        run_id, summary["rows_in"], summary["records_written"], summary["rows_rejected"], summary["shards"],
    )
    return summary


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


def _input_facts(tagged: DataFrame) -> InputFacts:
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


def task_slots(spark: SparkSession) -> int:
    """Tasks that can run at once: the cores of a ``local[N]`` master, else Spark's default parallelism."""
    master = spark.sparkContext.master
    match = re.match(r"local\[(\d+|\*)", master)
    if match:
        return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))
    if master == "local":
        return 1
    return max(1, spark.sparkContext.defaultParallelism)


def _summarize_partition(rows: Iterable[tuple]) -> Iterator[tuple]:
    """Per partition of the task results: a tally of kinds and reject reasons, and the shard and stats rows."""
    tally: Counter = Counter()
    for kind, value in rows:
        tally[(kind, value[4] if kind == "reject" else "")] += 1
        if kind in ("shard", "stats"):
            yield kind, value
    yield "tally", dict(tally)


def _shard_and_commit(
    spark: SparkSession,
    conf: PipelineConfig,
    job: ShardJob,
    staged: StagedOutput,
    labels_version: str,
    inputs: Inputs,
    tagged: DataFrame,
    facts: InputFacts,
    parts: list[PartSpec],
    label_width: int,
    started: float,
    started_at: str,
) -> dict:
    """Run the shard tasks, check the accounting, stage the tables and commit everything."""
    run_id, out_dir = staged.run_id, staged.out_dir
    s3_out = parse_uri(out_dir).scheme == "s3"
    storage = storage_for(out_dir, threads=conf.shard.fetch_threads, retries=conf.shard.fetch_retries, timeout_s=conf.shard.fetch_timeout_s, multipart_chunk_bytes=conf.shard.multipart_chunk_bytes)
    shards_uri = staged.table_path("shards")
    if not s3_out:
        os.makedirs(shards_uri, exist_ok=True)
    spec = TaskSpec(
        mode=job.mode,
        label_width=label_width,
        shards_uri=shards_uri,
        parts=tuple(parts),
        images=conf.images,
        shard=conf.shard,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None,
    )
    results = None
    try:
        if parts:
            routed = route_rows(candidates_of(tagged), parts, facts.bucket_counts, conf.seed)
            results = routed.mapPartitionsWithIndex(functools.partial(shard_partition, spec)).persist(StorageLevel.MEMORY_AND_DISK)
            small = results.mapPartitions(_summarize_partition).collect()  # runs the shard tasks
        else:
            small = []
        kinds: Counter = Counter()
        reject_reasons: Counter = Counter()
        for kind, value in small:
            if kind == "tally":
                for (k, reason), n in value.items():
                    kinds[k] += n
                    if k == "reject":
                        reject_reasons[reason] += n
        shard_rows = sorted(v for k, v in small if k == "shard")
        log.info("shard tasks done: %d shards, %d records", len(shard_rows), kinds.get("index", 0))
        stats = [v for k, v in small if k == "stats"]

        strays = _verify_shards(storage, shards_uri, shard_rows)
        extra = (label_width, LABEL_PAD, conf.images.store_size, conf.images.resize_mode, job.mode, inputs.num_classes)
        manifest_rows = [tuple(r) + extra for r in shard_rows]
        storage.write_bytes(join_uri(shards_uri, SHARD_MANIFEST), _manifest_json(manifest_rows, run_id, job, inputs, labels_version).encode())

        records_written = sum(r[5] for r in shard_rows)
        rejected = sum(reject_reasons.values()) + sum(facts.reasons.values())
        if kinds.get("index", 0) != records_written or facts.rows_in != records_written + rejected:
            raise ShardAccountingError(
                f"expected rows in ({facts.rows_in}) = records written ({records_written}) + rows rejected ({rejected}); "
                f"index rows {kinds.get('index', 0)}; nothing was committed"
            )

        # the manifest is small and built on the driver: pyarrow for local and S3 alike
        storage.write_bytes(join_uri(staged.table_path("manifest"), "part-00000.parquet"), _to_arrow_parquet(sorted(manifest_rows), MANIFEST_DDL))
        index_rdd = results.filter(lambda r: r[0] == "index").map(lambda r: r[1]) if results is not None else spark.sparkContext.emptyRDD()
        task_rejects_rdd = results.filter(lambda r: r[0] == "reject").map(lambda r: r[1]) if results is not None else spark.sparkContext.emptyRDD()
        input_rejects = rejects_of(tagged)
        if s3_out:  # written by the tasks, one part per partition: the driver never holds the rows
            _write_parts(index_rdd, staged.table_path("record_index"), INDEX_DDL, ["record_id"], conf)
            all_rejects = task_rejects_rdd.union(input_rejects.rdd.map(tuple))
            _write_parts(all_rejects, staged.table_path("rejects"), REJECT_DDL, ["asin", "stage", "reason", "image_uri"], conf)
        else:
            _write_table(spark, staged, "record_index", spark.createDataFrame(index_rdd, INDEX_DDL), ["record_id"])
            rejects_df = spark.createDataFrame(task_rejects_rdd, REJECT_DDL).unionByName(input_rejects)
            _write_table(spark, staged, "rejects", rejects_df, ["asin", "stage", "reason", "image_uri"])

        log.info("tables staged")
        summary = _summary(
            run_id=run_id, job=job, labels_version=labels_version, conf=conf, out_dir=out_dir, inputs=inputs, facts=facts, parts=parts,
            shard_rows=shard_rows, stats=stats, strays=strays, reasons=reject_reasons + facts.reasons, label_width=label_width,
            records_written=records_written, rejected=rejected, started_at=started_at, seconds=time.monotonic() - started,
        )
        ShardSummary.from_dict(summary, "the shard job's summary")  # its contract part must parse before it is committed
        staged.commit(summary)
    except BaseException:
        staged.abort()
        raise
    finally:
        if results is not None:
            results.unpersist()
    return summary


def _verify_shards(storage: object, shards_uri: str, shard_rows: list[tuple]) -> list[str]:
    """Check every reported shard is staged with its size; delete anything else (dead attempts' temp files).

    Returns:
        The stray files removed.

    Raises:
        ShardCommitError: when a reported file is missing or has another size.
    """
    found = storage.list_files(shards_uri)  # type: ignore[attr-defined]
    expected: dict[str, int] = {}
    for row in shard_rows:
        expected[row[0].removeprefix("shards/")] = row[6]
        expected[row[1].removeprefix("shards/")] = row[8]
    for rel, size in expected.items():
        if found.get(rel) != size:
            raise ShardCommitError(f"expected staged shard file {rel} of {size} bytes in {shards_uri}, found {found.get(rel)}")
    strays = sorted(set(found) - set(expected) - {"_manifest.json"})
    for rel in strays:
        log.warning("removing %s from staging: not written by a successful task attempt", rel)
        storage.delete_tree(join_uri(shards_uri, rel))  # type: ignore[attr-defined]
    return strays


def _contract_facts(job: ShardJob, inputs: Inputs) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The attribute of each label column and the class names per attribute (refine and multi shards)."""
    if job.mode == "multi":
        return tuple(inputs.extra["attributes"]), {a: tuple(c) for a, c in inputs.extra["classes"].items()}
    if job.mode == "refine":
        return (inputs.extra["attribute"],), {inputs.extra["attribute"]: tuple(inputs.extra["classes"])}
    return (), {}


def _manifest_json(manifest_rows: list[tuple], run_id: str, job: ShardJob, inputs: Inputs, labels_version: str) -> str:
    """The shard manifest (:class:`softlines_attr.shard.contract.ShardManifest`) as JSON, paths relative to ``shards/``."""
    names = _schema_names(MANIFEST_DDL)
    entries = []
    for row in manifest_rows:
        values = dict(zip(names, row))
        values["shard"] = values["shard"].removeprefix("shards/")
        values["idx"] = values["idx"].removeprefix("shards/")
        entries.append(ShardEntry(**values))
    first = manifest_rows[0] if manifest_rows else None
    width, pad, size, resize, mode, classes = first[-6:] if first else (0, LABEL_PAD, 0, "shorter_side", job.mode, inputs.num_classes)
    attributes, class_names = _contract_facts(job, inputs)
    manifest = ShardManifest(
        contract_version=SHARD_CONTRACT_VERSION, run_id=run_id, mode=mode, label_width=width, image_size=size, resize_mode=resize,
        num_classes=classes, shards=tuple(entries), attributes=attributes, classes=class_names, vocab_size=job.vocab_size,
        labels=labels_version, label_pad=pad,
    )
    return manifest_json(manifest)


def _summary(
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
        "num_classes": {a: len(c) for a, c in inputs.extra["classes"].items()} if job.mode == "multi" else inputs.num_classes,
        **({"attributes": inputs.extra["attributes"]} if job.mode == "multi" else {}),
        "image_size": conf.images.store_size,
        "resize_mode": conf.images.resize_mode,
        "contract_version": SHARD_CONTRACT_VERSION,
        "classes": {a: list(c) for a, c in _contract_facts(job, inputs)[1].items()},
        "inputs": {**inputs.extra, "split_source": facts.split_sources},
        "tasks": len(stats),
        "task_retries_seen": sum(1 for a in attempts if a > 0),
        "stray_files_removed": strays,
        "peak_task_rss_mb": round(max((s[3] for s in stats), default=0) / 1024, 1),
        "task_seconds_max": max((s[2] for s in stats), default=0.0),
        "stage_seconds": round(max((s[6] for s in stats), default=0.0) - min((s[5] for s in stats), default=0.0), 3),
        "tables": {"manifest": "manifest", "record_index": "record_index", "rejects": "rejects", "shards": "shards"},
        "config": {"images": config_to_dict(conf.images), "shard": config_to_dict(conf.shard), "seed": conf.seed},
        "started_at": started_at,
        "seconds": round(seconds, 3),
    }
