"""``softlines-attr demo``: the whole pipeline on a generated catalog (the README's ``make demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from softlines_attr.commands.common import add_config_arguments, add_spark_arguments, config_from_args

HELP = "Run every pipeline stage end to end on a generated catalog, on local Spark, and print where the outputs are."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the demo."""
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="demo folder (default: demo-out)")
    parser.add_argument("--n", type=int, default=600, help="generated products (default 600)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the conf's)")
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load conf, run the demo, print the report."""
    from softlines_attr.demo import format_report, run_demo

    conf = config_from_args(args)
    result = run_demo(args.out, conf, n=args.n, seed=args.seed, master=args.master)
    print(format_report(result))
    print(f"summary of every stage: {result.out_dir / 'demo_summary.json'}")
    return 0
