"""``softlines-attr score``: score a catalog's images with model bundles -> attribute tables for the search indexer."""

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
    "Score every catalog image of the configured product types with one or more model bundles and write "
    "the attributes table (partitioned by attribute), a wide table (one row per asin, keywords) and an "
    "errors table; --previous scores only what changed since a previous run."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The score command's arguments."""
    parser.add_argument(
        "--catalog",
        required=True,
        help="the catalog (Parquet file/folder, JSON Lines or CSV): asin, image_uri, product_type",
    )
    parser.add_argument(
        "--models",
        required=True,
        nargs="+",
        metavar="DIR",
        help="model bundle folders, or folders of bundles (local or s3://)",
    )
    parser.add_argument("--out", required=True, help="output folder (local path; s3:// on EMR)")
    parser.add_argument(
        "--previous",
        default=None,
        help="a previous run's output folder: score only ASINs whose image_uri or model changed, carry the rest",
    )
    parser.add_argument(
        "--input-format",
        default=None,
        choices=["parquet", "jsonl", "csv"],
        help="the catalog's format when its suffix does not tell",
    )
    add_run_arguments(parser)
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the scoring job; exit 0 unless the job as a whole failed (bad images are error rows)."""
    from softlines_attr.score import ScoreJob, run_score_job
    from softlines_attr.score.resources import load_models
    from softlines_attr.spark import job_session

    job = ScoreJob(
        catalog_path=args.catalog,
        model_dirs=tuple(args.models),
        out_dir=args.out,
        previous_dir=args.previous,
        input_format=args.input_format,
    )
    job.validate()
    check_run_id(args)
    conf = config_from_args(args)
    payloads, _ = load_models(job.model_dirs, conf)  # a missing or corrupted bundle fails before Spark starts
    with job_session(conf.spark, app_name="softlines-attr-score", master=args.master) as spark:
        summary = run_score_job(spark, conf, job, run_id=args.run_id, payloads=payloads)
    keys = (
        "run_id",
        "rows_in",
        "rows_scored",
        "rows_carried",
        "rows_errors",
        "rows_skipped",
        "errors_by_reason",
        "attribute_rows",
        "out",
    )
    print(json.dumps({k: summary[k] for k in keys}, sort_keys=True))
    return 0
