"""``softlines-attr audit``: the paper's production audit (its Table 4): the scored attributes the index received
against human tags that arrived later."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import (
    add_config_arguments,
    add_run_arguments,
    add_spark_arguments,
    check_run_id,
    config_from_args,
)

log = logging.getLogger(__name__)

HELP = (
    "Audit a committed scored attributes table against human tags that arrived later: per attribute and class the "
    "accuracy of the values the index received, the accuracy had the abstained rows been given their best class, "
    "coverage, and the confusion matrix; writes audit.json, report.md and report.html (Spark)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The audit command's arguments."""
    parser.add_argument(
        "--scores",
        required=True,
        help="the score job's output folder (its _current.json is followed to the committed attributes table)",
    )
    parser.add_argument(
        "--tags",
        required=True,
        help="the later human tags (Parquet, JSON Lines or CSV): asin, attribute, label (and the conf's "
        "audit.tagged_at_column for --since)",
    )
    parser.add_argument(
        "--since",
        default=None,
        help="only tags with audit.tagged_at_column on or after this date (YYYY-MM-DD)",
    )
    parser.add_argument("--out", required=True, help="output folder (local path or s3://): runs/<run_id>/ + pointer")
    parser.add_argument(
        "--input-format",
        default=None,
        choices=["parquet", "jsonl", "csv"],
        help="the tags' format when its suffix does not tell",
    )
    add_run_arguments(parser)
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the audit job; exit 0 unless the job as a whole failed (bad tag rows are counted by reason)."""
    from softlines_attr.audit.job import AuditJob, run_audit_job
    from softlines_attr.spark import job_session

    job = AuditJob(
        scores_dir=args.scores, tags_path=args.tags, out_dir=args.out, since=args.since, input_format=args.input_format
    )
    job.validate()
    check_run_id(args)
    conf = config_from_args(args)
    with job_session(conf.spark, app_name="softlines-attr-audit", master=args.master) as spark:
        summary = run_audit_job(spark, conf, job, run_id=args.run_id)
    keys = ("run_id", "tag_rows_in", "tag_rows_matched", "tag_rows_rejected", "rejects_by_reason", "attributes", "out")
    print(json.dumps({k: summary[k] for k in keys}, sort_keys=True))
    return 0
