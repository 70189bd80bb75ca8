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
The pieces: :mod:`.request` (the job), :mod:`.tables` (DDLs, writers), :mod:`.summary` (input
counts, manifest, summary).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from softlines_attr.config import PipelineConfig
from softlines_attr.io.commit import StagedOutput, resolve_current
from softlines_attr.io.storage import join_uri, parse_uri, storage_for
from softlines_attr.io.tables import new_run_id
from softlines_attr.shard.errors import ShardAccountingError, ShardCommitError
from softlines_attr.shard.inputs import (
    REJECT_DDL,
    Inputs,
    base_inputs,
    candidates_of,
    rejects_of,
)
from softlines_attr.shard.manifest import SHARD_MANIFEST, ShardSummary
from softlines_attr.shard.plan import PartSpec, bucket_column, plan_parts, route_rows
from softlines_attr.shard.recordio import LABEL_PAD
from softlines_attr.shard.request import ShardJob
from softlines_attr.shard.summary import InputFacts, input_facts, manifest_text, run_summary
from softlines_attr.shard.tables import INDEX_DDL, MANIFEST_DDL, to_arrow_parquet, write_parts, write_table
from softlines_attr.shard.tag_inputs import multi_inputs, refine_inputs
from softlines_attr.shard.task import TaskSpec, shard_partition

log = logging.getLogger(__name__)


def _inputs(spark: SparkSession, conf: PipelineConfig, job: ShardJob) -> Inputs:
    if job.mode == "base":
        assert job.vocab_size is not None
        return base_inputs(spark, job.labels_dir, job.vocab_size, conf.shard.label_width)
    assert job.tags_path is not None and job.attribute is not None
    if job.mode == "multi":
        return multi_inputs(
            spark,
            job.labels_dir,
            job.tags_path,
            conf.taxonomy.attributes,
            seed=conf.seed,
            val_fraction=conf.labels.val_fraction,
            catalog_path=job.catalog_path,
        )
    attribute = conf.taxonomy.attribute(job.attribute)
    return refine_inputs(
        spark,
        job.labels_dir,
        job.tags_path,
        attribute,
        seed=conf.seed,
        val_fraction=conf.labels.val_fraction,
        catalog_path=job.catalog_path,
    )


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
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
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
        facts = input_facts(tagged)  # one pass: rows in, input rejects, per-split counts, label width
        label_width = {"refine": 0, "multi": len(conf.taxonomy.attributes)}.get(
            job.mode, conf.shard.label_width or max(1, facts.max_labels)
        )
        slots = task_slots(spark)
        parts = plan_parts(facts.split_counts, conf.shard.records_per_shard, conf.shard.min_shards or 2 * slots, slots)
        log.info(
            "%d rows in, %d candidates %s -> %d parts; label width %d",
            facts.rows_in,
            sum(facts.split_counts.values()),
            facts.split_counts,
            len(parts),
            label_width,
        )
        summary = _shard_and_commit(
            spark, conf, job, staged, labels_version, inputs, tagged, facts, parts, label_width, started, started_at
        )
    except BaseException:
        staged.abort()  # no-op once committed
        raise
    finally:
        if tagged is not None:
            tagged.unpersist()
    log.info(
        "shard run %s: %d rows in = %d records written + %d rejected, %d shards",
        run_id,
        summary["rows_in"],
        summary["records_written"],
        summary["rows_rejected"],
        summary["shards"],
    )
    return summary


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
    storage = storage_for(
        out_dir,
        threads=conf.shard.fetch_threads,
        retries=conf.shard.fetch_retries,
        timeout_s=conf.shard.fetch_timeout_s,
        multipart_chunk_bytes=conf.shard.multipart_chunk_bytes,
    )
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
            results = routed.mapPartitionsWithIndex(functools.partial(shard_partition, spec)).persist(
                StorageLevel.MEMORY_AND_DISK
            )
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
        storage.write_bytes(
            join_uri(shards_uri, SHARD_MANIFEST),
            manifest_text(manifest_rows, run_id, job, inputs, labels_version).encode(),
        )

        records_written = sum(r[5] for r in shard_rows)
        rejected = sum(reject_reasons.values()) + sum(facts.reasons.values())
        if kinds.get("index", 0) != records_written or facts.rows_in != records_written + rejected:
            raise ShardAccountingError(
                f"expected rows in ({facts.rows_in}) = records written ({records_written}) "
                f"+ rows rejected ({rejected}); "
                f"index rows {kinds.get('index', 0)}; nothing was committed"
            )

        # the manifest is small and built on the driver: pyarrow for local and S3 alike
        storage.write_bytes(
            join_uri(staged.table_path("manifest"), "part-00000.parquet"),
            to_arrow_parquet(sorted(manifest_rows), MANIFEST_DDL),
        )
        index_rdd = (
            results.filter(lambda r: r[0] == "index").map(lambda r: r[1])
            if results is not None
            else spark.sparkContext.emptyRDD()
        )
        task_rejects_rdd = (
            results.filter(lambda r: r[0] == "reject").map(lambda r: r[1])
            if results is not None
            else spark.sparkContext.emptyRDD()
        )
        input_rejects = rejects_of(tagged)
        if s3_out:  # written by the tasks, one part per partition: the driver never holds the rows
            write_parts(index_rdd, staged.table_path("record_index"), INDEX_DDL, ["record_id"], conf)
            all_rejects = task_rejects_rdd.union(input_rejects.rdd.map(tuple))
            write_parts(
                all_rejects, staged.table_path("rejects"), REJECT_DDL, ["asin", "stage", "reason", "image_uri"], conf
            )
        else:
            write_table(spark, staged, "record_index", spark.createDataFrame(index_rdd, INDEX_DDL), ["record_id"])
            rejects_df = spark.createDataFrame(task_rejects_rdd, REJECT_DDL).unionByName(input_rejects)
            write_table(spark, staged, "rejects", rejects_df, ["asin", "stage", "reason", "image_uri"])

        log.info("tables staged")
        summary = run_summary(
            run_id=run_id,
            job=job,
            labels_version=labels_version,
            conf=conf,
            out_dir=out_dir,
            inputs=inputs,
            facts=facts,
            parts=parts,
            shard_rows=shard_rows,
            stats=stats,
            strays=strays,
            reasons=reject_reasons + facts.reasons,
            label_width=label_width,
            records_written=records_written,
            rejected=rejected,
            started_at=started_at,
            seconds=time.monotonic() - started,
        )
        ShardSummary.from_dict(
            summary, "the shard job's summary"
        )  # its contract part must parse before it is committed
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
    found = storage.list_files(shards_uri)
    expected: dict[str, int] = {}
    for row in shard_rows:
        expected[row[0].removeprefix("shards/")] = row[6]
        expected[row[1].removeprefix("shards/")] = row[8]
    for rel, size in expected.items():
        if found.get(rel) != size:
            raise ShardCommitError(
                f"expected staged shard file {rel} of {size} bytes in {shards_uri}, found {found.get(rel)}"
            )
    strays = sorted(set(found) - set(expected) - {"_manifest.json"})
    for rel in strays:
        log.warning("removing %s from staging: not written by a successful task attempt", rel)
        storage.delete_tree(join_uri(shards_uri, rel))
    return strays
