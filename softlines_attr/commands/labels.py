"""``softlines-attr labels``: build title-word vocabularies and weak labels from a catalog."""

from __future__ import annotations

import argparse
import json

from softlines_attr.commands.common import (
    add_config_arguments,
    add_run_arguments,
    add_spark_arguments,
    check_run_id,
    config_from_args,
)

HELP = "Build the title-word vocabularies (top 500 / 2000 / all) and per-ASIN weak labels from a catalog (Spark)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the label job."""
    parser.add_argument(
        "--catalog", required=True, help="catalog: Parquet (file or folder), JSON Lines or CSV; local path or URI"
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: each run writes runs/<run_id>/{labels,vocabulary,rejects,_summary.json}; "
        "_current.json names the current one",
    )
    parser.add_argument(
        "--input-format",
        choices=["parquet", "jsonl", "csv"],
        default=None,
        help="override the format detected from the suffix",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="commit a run that labels no row over labels that had rows (refused by default)",
    )
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load conf, run the label job in the job's session (stopped at the end if this command started it)."""
    from softlines_attr.labels.job import run_label_job
    from softlines_attr.spark import job_session

    check_run_id(args)
    conf = config_from_args(args)
    with job_session(conf.spark, app_name="softlines-attr-labels", master=args.master) as spark:
        result = run_label_job(
            spark,
            conf,
            catalog_path=args.catalog,
            out_dir=args.out,
            input_format=args.input_format,
            run_id=args.run_id,
            allow_empty=args.allow_empty,
        )
    s = result.summary
    print(
        f"run {s['run_id']} committed: {result.out_dir}/_current.json -> {result.version_dir} (labels/, "
        f"vocabulary/, rejects/)"
    )
    print(f"rows in {s['rows_in']} = labelled {s['rows_labelled']} + rejected {s['rows_rejected']}")
    print("rejects by reason: " + json.dumps({k: v for k, v in s["rejects_by_reason"].items() if v}))
    print(
        "vocabulary words per size: "
        + json.dumps(s["vocabulary_words"])
        + f"; summary: {result.version_dir}/_summary.json"
    )
    return 0
