"""``softlines-attr shard``: images -> MXNet RecordIO shards (base-model or refine data)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from softlines_attr.commands.common import (
    add_config_arguments,
    add_run_arguments,
    add_spark_arguments,
    check_run_id,
    config_from_args,
)

if TYPE_CHECKING:  # pragma: no cover
    from softlines_attr.shard import ShardJob

log = logging.getLogger(__name__)

HELP = (
    "Fetch, decode, resize and re-encode product images into MXNet RecordIO shards (.rec + .idx), with a "
    "shard manifest, a record index and a rejects table. Base shards: --labels DIR --vocab-size N; "
    "refine shards: --labels DIR --tags PATH --attribute NAME; multi shards (one class index per attribute, -1 = "
    "no tag, "
    "for a multi-head model): --attribute all."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shard command's arguments."""
    parser.add_argument("--labels", required=True, help="the label job's output folder (labels/, vocabulary/)")
    parser.add_argument("--out", required=True, help="output folder, a local path or s3://bucket/prefix")
    parser.add_argument(
        "--vocab-size", type=int, default=None, help="base-model shards: the vocabulary (500, 2000, 0 = all words)"
    )
    parser.add_argument("--tags", default=None, help="refine shards: the human tags table (asin, attribute, label)")
    parser.add_argument(
        "--attribute",
        default=None,
        help="refine shards: the taxonomy attribute to shard (e.g. neck_style), or 'all' for multi shards",
    )
    parser.add_argument(
        "--catalog",
        default=None,
        help="refine shards: the catalog snapshot, for images of tagged asins missing from the labels table",
    )
    add_run_arguments(parser)
    add_config_arguments(parser)
    add_spark_arguments(parser)


def shard_job(args: argparse.Namespace) -> ShardJob:
    """The run asked for by the parsed arguments, checked (also what the EMR spec checks a shard step with).

    Raises:
        ShardInputError: neither or both of base (``--vocab-size``) and refine (``--tags`` + ``--attribute``).
    """
    from softlines_attr.shard import ShardJob

    job = ShardJob(
        labels_dir=args.labels,
        out_dir=args.out,
        vocab_size=args.vocab_size,
        tags_path=args.tags,
        attribute=args.attribute,
        catalog_path=args.catalog,
    )
    job.validate()
    return job


def run(args: argparse.Namespace) -> int:
    """Run the shard job; exit 0 unless the job as a whole failed (bad images are rejects, not failures)."""
    from softlines_attr.shard import run_shard_job
    from softlines_attr.spark import job_session

    job = shard_job(args)
    check_run_id(args)
    conf = config_from_args(args)
    with job_session(conf.spark, app_name="softlines-attr-shard", master=args.master) as spark:
        summary = run_shard_job(spark, conf, job, run_id=args.run_id)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("run_id", "rows_in", "records_written", "rows_rejected", "shards", "rejects_by_reason", "out")
            },
            sort_keys=True,
        )
    )
    return 0
