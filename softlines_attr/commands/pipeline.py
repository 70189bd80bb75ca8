"""``softlines-attr pipeline``: the scheduled method's steps run locally, in order, each reading the committed
output of the step before it."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from softlines_attr.commands.common import add_run_arguments, add_spark_arguments, check_run_id, config_from_args

log = logging.getLogger(__name__)

HELP = (
    "Run the whole method locally, the same steps as the EMR schedule: labels -> base shards -> multi (or refine) "
    "shards -> train base -> refine -> evaluate -> promote -> score -> audit (with --audit-tags); each step reads "
    "the committed output of the one before under --out; prints one summary of every step's rows in / out / "
    "rejected and the gate's decision. Without --catalog a generated catalog (like the demo's) is used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The pipeline command's arguments."""
    parser.add_argument(
        "--conf", required=True, type=Path, help="a TOML file overriding keys of conf/pipeline.toml (the run's conf)"
    )
    parser.add_argument("--taxonomy", type=Path, default=None, help="a taxonomy TOML replacing conf/taxonomy.toml")
    parser.add_argument("--out", required=True, type=Path, help="the pipeline's folder: every step's output under it")
    parser.add_argument("--catalog", default=None, help="the catalog snapshot (default: a generated catalog)")
    parser.add_argument(
        "--tags", default=None, help="the human tags (asin, attribute, label) for refine; required with --catalog"
    )
    parser.add_argument(
        "--audit-tags",
        default=None,
        help="later human tags to audit the scores against (default: none with --catalog; a generated sample of "
        "untagged products otherwise)",
    )
    parser.add_argument("--since", default=None, help="audit only tags on or after this date (YYYY-MM-DD)")
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="generated catalog: tagged products (default: catalog-n / the conf's demo.catalog_factor)",
    )
    parser.add_argument(
        "--catalog-n", type=int, default=None, help="generated catalog: products in all (default: the conf's catalog.n)"
    )
    parser.add_argument(
        "--attribute",
        default="all",
        help="refine one taxonomy attribute (refine shards), or 'all' (multi shards, one head per attribute; default)",
    )
    add_run_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run every step, print the pipeline's summary as JSON; exit 0 also when the gate refused the candidate."""
    from softlines_attr.pipeline_local import PipelineRequest, run_pipeline

    check_run_id(args)
    conf = config_from_args(args)
    request = PipelineRequest(
        out_dir=args.out,
        catalog=args.catalog,
        tags=args.tags,
        audit_tags=args.audit_tags,
        since=args.since,
        n=args.n,
        catalog_n=args.catalog_n,
        attribute=args.attribute,
        run_id=args.run_id,
    )
    summary = run_pipeline(request, conf, master=args.master)
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
