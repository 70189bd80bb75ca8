"""The audit driver: a committed scored attributes table against later human tags -> ``matched/``, ``rejects/``,
``audit.json``, ``report.md``, ``report.html`` under ``<out>/runs/<run_id>/``, committed by one pointer write.

Layout of one run (``DIR`` = ``<out>/runs/<run_id>``)::

    DIR/matched/       one row per tag that checks a scored row (asin, attribute, label, value, best, confidence,
                       model_version)
    DIR/rejects/       one row per tag row not counted (asin, attribute, label, reason, message)
    DIR/audit.json     per attribute and class: tags, received, accuracy received / if all, coverage, confusion
    DIR/report.md, DIR/report.html
    DIR/_summary.json  tag_rows_in = tag_rows_matched + tag_rows_rejected, rejects_by_reason, Table 4 per attribute
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from softlines_attr.audit.errors import AuditAccountingError, AuditInputError
from softlines_attr.audit.metrics import audit_attributes
from softlines_attr.audit.report import (
    AUDIT_FILE,
    HTML_FILE,
    MARKDOWN_FILE,
    audit_to_json,
    render_html,
    render_markdown,
)
from softlines_attr.audit.tags import MATCHED_COLUMNS, REASONS, REJECT_COLUMNS, match_tags, read_tags, scored_rows
from softlines_attr.config import PipelineConfig
from softlines_attr.io.commit import StagedOutput, read_current
from softlines_attr.io.filesystem import filesystem_for
from softlines_attr.io.storage import join_uri
from softlines_attr.io.tables import new_run_id, read_table, require_columns

log = logging.getLogger(__name__)

JOB = "audit"
SCORE_JOB = "score"


@dataclass(frozen=True)
class AuditJob:
    """What one audit run is asked.

    Attributes:
        scores_dir: The score job's ``--out`` (its pointer is followed) or one of its run folders.
        tags_path: The later human tags (``asin``, ``attribute``, ``label``; a date column for ``since``).
        out_dir: The audit's output folder (local or s3://).
        since: Only tags dated on or after this day (``YYYY-MM-DD``); None = every tag.
        input_format: The tags' format when the suffix does not tell.
    """

    scores_dir: str
    tags_path: str
    out_dir: str
    since: str | None = None
    input_format: str | None = None

    def since_date(self) -> dt.date | None:
        """``since`` as a date.

        Raises:
            AuditInputError: not a ``YYYY-MM-DD`` date.
        """
        if self.since is None:
            return None
        try:
            return dt.date.fromisoformat(self.since)
        except ValueError:
            raise AuditInputError(f"--since: expected a date YYYY-MM-DD, found {self.since!r}") from None

    def validate(self) -> None:
        """Refuse unusable arguments before Spark starts (AuditInputError)."""
        self.since_date()
        for name, value in (("--scores", self.scores_dir), ("--tags", self.tags_path), ("--out", self.out_dir)):
            if not value or not value.strip():
                raise AuditInputError(f"{name}: expected a path, found {value!r}")


def _write_file(staged: StagedOutput, name: str, text: str) -> None:
    _, path = filesystem_for(join_uri(staged.run_dir, name))
    with staged.fs.open_output_stream(path) as fh:
        fh.write(text.encode("utf-8"))


def run_audit_job(spark: SparkSession, conf: PipelineConfig, job: AuditJob, *, run_id: str | None = None) -> dict:
    """Audit the scores' current version against the tags; commit the tables, the JSON and the report.

    Returns:
        The summary written to ``<out>/runs/<run_id>/_summary.json``.

    Raises:
        AuditInputError: ``--scores`` is not a score job's output, a bad ``--since``, no date column for it.
        InputSchemaError: the tags or the attributes table lack a column.
        AuditAccountingError: tag rows in != matched + rejected (nothing is committed).
    """
    job.validate()
    since = job.since_date()
    staged = StagedOutput(job.out_dir, run_id or new_run_id(), job=JOB, keep_versions=conf.output.keep_versions)
    scores = read_current(job.scores_dir)
    if scores.job not in (None, SCORE_JOB):
        raise AuditInputError(
            f"--scores {job.scores_dir}: expected the score job's output, found the {scores.job} job's (run "
            f"{scores.run_id})"
        )
    attributes_uri = join_uri(scores.uri, "attributes")
    fs, path = filesystem_for(attributes_uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise AuditInputError(
            f"--scores {job.scores_dir}: expected the score job's output (its attributes table at {attributes_uri}), "
            "found none"
        )
    staged.prepare()
    try:
        attributes = require_columns(
            spark.read.parquet(attributes_uri),
            {
                "asin": "string",
                "attribute": "string",
                "value": "string",
                "confidence": "float",
                "top_k": "array<struct<value:string,probability:float>>",
                "model_version": "string",
            },
            source=attributes_uri,
        )
        raw = read_table(spark, job.tags_path, job.input_format)
        tags = read_tags(raw, job.tags_path, date_column=conf.audit.tagged_at_column, since=since)
        rows = match_tags(spark, tags, scored_rows(attributes), conf.taxonomy, since).cache()
        matched = rows.filter(F.col("reason").isNull()).select(*MATCHED_COLUMNS)
        rejects = rows.filter(F.col("reason").isNotNull()).select(*REJECT_COLUMNS)
        matched.write.parquet(staged.table_path("matched"))
        rejects.write.parquet(staged.table_path("rejects"))
        tag_rows_in = rows.count()
        by_reason = {
            r["reason"]: r["count"]
            for r in rows.filter(F.col("reason").isNotNull()).groupBy("reason").count().collect()
        }
        audits = audit_attributes(matched, conf.taxonomy)
        n_matched = sum(a.tags for a in audits)
        n_rejected = sum(by_reason.values())
        if tag_rows_in != n_matched + n_rejected:
            raise AuditAccountingError(
                f"tag rows in {tag_rows_in}: expected matched {n_matched} + rejected {n_rejected}; nothing committed"
            )
        facts: dict[str, Any] = {
            "job": JOB,
            "run_id": staged.run_id,
            "scores": {"out": scores.out, "run_id": scores.run_id, "uri": scores.uri},
            "tags": job.tags_path,
            "since": job.since,
            "tag_rows_in": tag_rows_in,
            "tag_rows_matched": n_matched,
            "tag_rows_rejected": n_rejected,
            "rejects_by_reason": {r: by_reason.get(r, 0) for r in REASONS},
        }
        doc = audit_to_json(audits, facts)
        _write_file(staged, AUDIT_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        _write_file(staged, MARKDOWN_FILE, render_markdown(audits, facts))
        _write_file(staged, HTML_FILE, render_html(audits, facts))
        summary = {
            **facts,
            "attributes": {
                a.attribute: {
                    "tags": a.tags,
                    "accuracy_received": a.accuracy_received,
                    "accuracy_if_all": a.accuracy_if_all,
                    "coverage": a.coverage,
                }
                for a in audits
            },
            "out": staged.out_dir,
        }
        staged.commit(summary)
        rows.unpersist()
    except BaseException:
        staged.abort()
        raise
    log.info("audit %s: %d tag rows, %d matched, %d rejected", staged.run_id, tag_rows_in, n_matched, n_rejected)
    return summary
