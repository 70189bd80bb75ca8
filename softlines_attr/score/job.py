"""The scoring job's driver: catalog + model bundles -> attributes, wide and errors tables.

Output layout of one run, under ``<out>/runs/<run_id>/`` (tables as in ``contract/score_tables.json``,
docs/SCORING.md), made the current version by ``<out>/_current.json``::

    attributes/attribute=<name>/   Parquet: one row per asin and attribute
    wide/                          Parquet: one row per asin, a column per attribute, keywords
    errors/                        Parquet: one row per catalog row not scored (and not skipped)
    _summary.json                  the run summary, written last

Everything is written into the run folder and committed by one pointer write
(:class:`softlines_attr.io.commit.StagedOutput`): a reader following the pointer sees the previous run
whole until the commit and the new one whole after it; a failed run leaves the previous version current.
A run in which no row reaches ``attributes/`` commits empty tables with the contract's schema.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, replace

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from softlines_attr.config import PipelineConfig, config_to_dict
from softlines_attr.io.commit import StagedOutput
from softlines_attr.io.storage import parse_uri
from softlines_attr.io.tables import new_run_id
from softlines_attr.labels.contract import cap_message
from softlines_attr.score.accounting import attribute_counts, check_accounting
from softlines_attr.score.errors import ScoreInputError
from softlines_attr.score.incremental import plan_rows, read_previous
from softlines_attr.score.inputs import read_catalog, tag_catalog
from softlines_attr.score.models import BundlePayload, check_payloads, payload_summary
from softlines_attr.score.outputs import input_facts, wide_view
from softlines_attr.score.profile import cache_summary, sum_profiles
from softlines_attr.score.resources import (
    check_cache_bound,
    decode_in_fetch_threads,
    load_models,
    partitions_for,
    task_slots,
    threads_per_task,
)
from softlines_attr.score.schema import conform, fingerprint, partition_by, schema_version
from softlines_attr.score.task import TASK_DDL, ScoreTaskSpec, score_partition
from softlines_attr.score.written import check_written_table

log = logging.getLogger(__name__)

TABLES = ("attributes", "wide", "errors")


@dataclass(frozen=True)
class ScoreJob:
    """What to score.

    Attributes:
        catalog_path: The catalog (Parquet, JSON Lines or CSV): ``asin``, ``image_uri``, ``product_type``.
        model_dirs: Bundle folders, or folders of bundle folders (local or s3://).
        out_dir: Output folder (a local path, or a Hadoop URI such as s3:// on EMR).
        previous_dir: A previous run's output: incremental mode.
        input_format: The catalog's format when its suffix does not tell.
    """

    catalog_path: str
    model_dirs: tuple[str, ...]
    out_dir: str
    previous_dir: str | None = None
    input_format: str | None = None

    def validate(self) -> None:
        """Check the arguments that need no I/O.

        Raises:
            ScoreInputError: no model folder, or an output URI of an unknown scheme.
        """
        if not self.model_dirs:
            raise ScoreInputError("expected at least one --models DIR, found none")
        parse_uri(self.out_dir)


def run_score_job(
    spark: SparkSession,
    conf: PipelineConfig,
    job: ScoreJob,
    *,
    run_id: str | None = None,
    payloads: list[BundlePayload] | None = None,
) -> dict:
    """Score a catalog with model bundles and commit the tables; returns the run summary.

    Args:
        spark: The active session.
        conf: The pipeline config (``score``, ``images``).
        job: What to score and where.
        run_id: The run id (default: a new one).
        payloads: The bundles of ``job.model_dirs`` already loaded by :func:`load_models` (the command
            loads them before starting Spark, so a bad bundle fails fast); loaded here when None.

    Returns:
        The summary written to ``<out>/runs/<run_id>/_summary.json``.

    Raises:
        ScoreInputError, ScoreModelError, BundleError, InputSchemaError, InputFormatError: bad inputs.
        ScoreAccountingError: rows in != scored + carried + errors + skipped, or a duplicate row (nothing committed).
        RunIdError, OutputLocationError: an unsafe run id; an ``--out`` that is a file, read-only or
            another job's output (found before any work).
    """
    job.validate()
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = run_id or new_run_id()
    out_dir = job.out_dir if parse_uri(job.out_dir).scheme != "file" else os.path.abspath(parse_uri(job.out_dir).key)
    timings: dict[str, float] = {}
    mark = time.monotonic()
    staged = StagedOutput(out_dir, run_id, job="score", keep_versions=conf.output.keep_versions)
    staged.prepare()  # before the work: a bad --out fails now, a dead run's folder is removed
    try:
        return _run(spark, conf, job, staged, payloads, started, now, timings, mark)
    except BaseException:
        staged.abort()  # no-op once committed
        raise


def _run(
    spark: SparkSession,
    conf: PipelineConfig,
    job: ScoreJob,
    staged: StagedOutput,
    payloads: list[BundlePayload] | None,
    started: float,
    now: dt.datetime,
    timings: dict[str, float],
    mark: float,
) -> dict:
    """The scoring job after its output is prepared: models, plan, tasks, tables, accounting, commit."""
    run_id, out_dir = staged.run_id, staged.out_dir
    if payloads is None:
        payloads, attributes = load_models(job.model_dirs, conf)
    else:
        attributes = check_payloads(payloads)
        check_cache_bound(payloads, conf)
    timings["load_models"] = time.monotonic() - mark
    previous = previous_summary = None
    if job.previous_dir is not None:
        previous, previous_summary = read_previous(spark, job.previous_dir)
        if previous_summary.get("run_id") == run_id:
            raise ScoreInputError(
                f"--previous {job.previous_dir} was written by run {run_id}; expected a new run id for an "
                f"incremental run"
            )
    log.info(
        "score run %s: %d models %s, catalog %s -> %s%s",
        run_id,
        len(payloads),
        attributes,
        job.catalog_path,
        out_dir,
        f" (incremental over {job.previous_dir})" if previous is not None else "",
    )

    saved_ts = spark.conf.get("spark.sql.parquet.outputTimestampType", None)
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # not the legacy INT96
    tagged = tag_catalog(read_catalog(spark, job.catalog_path, job.input_format), conf.score.product_types)
    planned = None
    results = None
    persisted: list = []
    try:
        mark = time.monotonic()
        planned, carried = plan_rows(tagged, payloads, previous)
        planned = planned.persist(StorageLevel.MEMORY_AND_DISK)
        facts = input_facts(planned)
        timings["inputs"] = time.monotonic() - mark
        slots = task_slots(spark)
        n_parts = partitions_for(facts["to_score"], slots, conf)
        threads = threads_per_task(spark, conf)
        log.info(
            "%d rows in: %d to score, %d carried, %d catalog errors, %d skipped -> %d partitions, %d threads per task",
            facts["rows_in"],
            facts["to_score"],
            facts["carried_rows"],
            sum(facts["input_errors"].values()),
            facts["skipped"],
            n_parts,
            threads,
        )

        mark = time.monotonic()
        broadcasts = tuple(spark.sparkContext.broadcast(p) for p in payloads)
        spec = ScoreTaskSpec(
            bundles=broadcasts,
            models=tuple(p.light() for p in payloads),
            batch_size=conf.score.batch_size,
            fetch_threads=conf.score.fetch_threads,
            threads=threads,
            top_k=conf.score.top_k,
            device=conf.score.device,
            images=conf.images,
            fetch=replace(
                conf.shard,
                fetch_threads=conf.score.fetch_threads,
                fetch_timeout_s=conf.score.fetch_timeout_s,
                fetch_retries=conf.score.fetch_retries,
                max_image_bytes=conf.score.max_image_bytes,
            ),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None,
            model_cache_models=conf.score.model_cache_models,
            model_cache_mb=conf.score.model_cache_mb,
            decode_in_fetch_threads=decode_in_fetch_threads(conf),
        )
        to_score = planned.filter(F.exists("need", lambda x: x)).select("asin", "image_uri", "need")
        # round robin, not by asin: every task gets the same number of rows (+-1), so no core idles at the end
        # of the phase behind a larger hash partition; Spark sorts before a round-robin repartition, so a
        # retried task gets the same rows
        results = (
            to_score.repartition(n_parts)
            .mapInArrow(functools.partial(score_partition, spec), TASK_DDL)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        stats_json = F.when(F.col("kind") == "stats", F.col("message")).alias("stats")
        # one Spark job runs the scoring tasks, tallies their rows by kind and reason, and counts the attribute rows
        # for the accounting (rows, distinct asins, distinct (asin, attribute) pairs, abstained)
        tally = results.groupBy("kind", "stage", "reason", stats_json).agg(*attribute_counts()).collect()
        stats = [json.loads(r["stats"]) for r in tally if r["kind"] == "stats"]
        timings["score"] = time.monotonic() - mark
        task_errors = Counter({r["reason"]: r["rows"] for r in tally if r["kind"] == "error"})
        errors_by_stage: Counter = Counter()
        for r in tally:
            if r["kind"] == "error":
                errors_by_stage[r["stage"]] += r["rows"]

        mark = time.monotonic()
        ts = F.lit(now.isoformat()).cast(
            "timestamp"
        )  # with its +00:00 offset: the same instant whatever the session time zone
        scored = results.filter(F.col("kind") == "attr").withColumn("run_id", F.lit(run_id)).withColumn("scored_at", ts)
        attrs_df = conform(scored, "attributes")
        if carried is None:
            out_counts = next((r.asDict() for r in tally if r["kind"] == "attr"), {})
            out_counts["scored_rows"] = out_counts.get("rows", 0)
        else:
            failed = results.filter(F.col("kind") == "error").select("asin")
            attrs_df = attrs_df.unionByName(conform(carried.join(failed, "asin", "left_anti"), "attributes"))
            attrs_df = attrs_df.persist(StorageLevel.MEMORY_AND_DISK)  # counted, written and made wide: read once
            persisted.append(attrs_df)
            out_counts = attrs_df.agg(*attribute_counts(run_id)).first().asDict()
        attrs_path = staged.table_path("attributes")
        attrs_df.sortWithinPartitions("attribute", "asin").write.mode("overwrite").partitionBy(
            *partition_by("attributes")
        ).parquet(attrs_path)
        if not staged.data_files("attributes"):  # no row reached the table: a partitioned write leaves no file
            # one empty file with the contract's columns (the partition column is last in the contract, as read back)
            attrs_df.limit(0).coalesce(1).write.mode("overwrite").parquet(attrs_path)

        input_errors = planned.filter(F.col("status") == "error").select(
            "asin", "image_uri", "stage", "reason", "message"
        )
        task_error_rows = results.filter(F.col("kind") == "error").select(
            "asin", "image_uri", "stage", "reason", "message"
        )
        errors_df = conform(
            input_errors.unionByName(task_error_rows)
            .withColumn("run_id", F.lit(run_id))
            .withColumn("message", cap_message(F.col("message"))),
            "errors",
        )
        errors_df.coalesce(1).sortWithinPartitions("stage", "reason", "asin").write.mode("overwrite").parquet(
            staged.table_path("errors")
        )
        # the wide view of the rows just written (the persisted rows: the two tables always agree)
        wide_view(attrs_df, attributes, run_id).write.mode("overwrite").parquet(staged.table_path("wide"))
        # what was written, checked from the files' footers (no read back): the contract's columns in every file of
        # every table, and the attributes table's rows per attribute and in all (compared below with the counts)
        written = {t: check_written_table(staged, t, attributes if t == "wide" else ()) for t in TABLES}
        timings["write"] = time.monotonic() - mark

        n_task_errors = sum(task_errors.values())
        n_input_errors = sum(facts["input_errors"].values())
        rows_scored = facts["to_score"] - n_task_errors
        rows_carried = facts["carried_rows"]
        rows_errors = n_input_errors + n_task_errors
        out_rows = int(out_counts.get("rows") or 0)
        check_accounting(
            {**facts, "rows_scored": rows_scored, "rows_carried": rows_carried},
            sum(s["rows"] for s in stats),  # from the successful attempt of each task only
            out_counts,
            written,
            attributes,
            rows_errors,
        )

        summary = {
            "job": "score",
            "run_id": run_id,
            "schema_version": schema_version(),
            "schema_fingerprint": fingerprint(),
            "catalog": job.catalog_path,
            "out": out_dir,
            "previous": job.previous_dir,
            "previous_run_id": previous_summary.get("run_id") if previous_summary else None,
            "scored_at": now.isoformat(),
            "rows_in": facts["rows_in"],
            "rows_scored": rows_scored,
            "rows_carried": rows_carried,
            "rows_errors": rows_errors,
            "rows_skipped": facts["skipped"],
            "rows_in_equals_scored_plus_carried_plus_errors_plus_skipped": True,
            "errors_by_reason": dict(sorted((facts["input_errors"] + task_errors).items())),
            "errors_by_stage": dict(
                sorted((Counter({"catalog": n_input_errors} if n_input_errors else {}) + errors_by_stage).items())
            ),
            "skipped_by_product_type": facts["skipped_by_type"],
            "attribute_rows": out_rows,
            "attribute_rows_scored": int(out_counts.get("scored_rows") or 0),
            "attribute_rows_carried": out_rows - int(out_counts.get("scored_rows") or 0),
            "attribute_rows_abstained": int(out_counts.get("abstained") or 0),
            "attributes": attributes,
            "models": payload_summary(payloads),
            "tables": {t: t for t in TABLES},
            "partitions": n_parts,
            "task_slots": slots,
            "threads_per_task": threads,
            "device": conf.score.device,
            "tasks": len(stats),
            "task_retries_seen": sum(1 for s in stats if s["attempt"] > 0),
            "model_loads_per_process_max": max(
                (n for s in stats for n in s["model_loads_in_process"].values()), default=0
            ),
            "peak_task_rss_mb": max((s["peak_rss_mb"] for s in stats), default=0.0),
            "model_cache": cache_summary(stats, conf.score),
            "task_seconds_max": max((s["seconds"] for s in stats), default=0.0),
            "forward_seconds": round(sum(s["forward_seconds"] for s in stats), 3),
            "fetch_wait_seconds": round(sum(s["fetch_wait_seconds"] for s in stats), 3),
            "profile_seconds": sum_profiles(s.get("profile", {}) for s in stats),
            "images_per_second": round(rows_scored / timings["score"], 2)
            if timings.get("score") and rows_scored
            else 0.0,
            "phase_seconds": {k: round(v, 3) for k, v in timings.items()},
            "config": {"score": config_to_dict(conf.score), "images": config_to_dict(conf.images)},
            "started_at": now.isoformat(),
            "seconds": round(time.monotonic() - started, 3),
        }
        staged.commit(summary)
    finally:
        for df in (results, planned, *persisted):
            if df is not None:
                df.unpersist()
        if saved_ts is None:
            spark.conf.unset("spark.sql.parquet.outputTimestampType")
        else:
            spark.conf.set("spark.sql.parquet.outputTimestampType", saved_ts)
    log.info(
        "score run %s: %d rows in = %d scored + %d carried + %d errors + %d skipped; %d attribute rows",
        run_id,
        summary["rows_in"],
        rows_scored,
        rows_carried,
        rows_errors,
        facts["skipped"],
        out_rows,
    )
    return summary
