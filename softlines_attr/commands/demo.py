"""``softlines-attr demo``: the whole pipeline on a generated catalog (the README's ``make demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from softlines_attr.commands.common import add_config_arguments, add_spark_arguments, config_from_args

HELP = "Run every pipeline stage end to end on a generated catalog, on local Spark, and print where the outputs are."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the demo."""
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="demo folder (default: demo-out)")
    parser.add_argument("--n", type=int, default=1000, help="generated products with human tags (default 1000)")
    parser.add_argument("--catalog-n", type=int, default=None,
                        help="generated products in all: the base model learns from their titles (default 4 x --n); at least --n")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the conf's)")
    training = parser.add_argument_group("demo models (small images, a narrow network: minutes on 2 cores)")
    training.add_argument("--base-epochs", type=int, default=None, help="epochs of the base model (title words)")
    training.add_argument("--epochs", type=int, default=None, help="epochs of each refined, from-scratch and multi-head model")
    training.add_argument("--width", type=float, default=None, help="Inception-BN width multiplier of the demo models")
    training.add_argument("--input-size", type=int, default=None, help="network input side; the shards store images 8 px larger")
    training.add_argument("--single-models", action="store_true", help="also train the ten per-attribute models (from the base and from scratch) for Table 3")
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load conf, run the demo, print the report."""
    import dataclasses
    import sys

    from softlines_attr.demo import DemoTraining, format_report, run_demo

    conf = config_from_args(args)
    training = DemoTraining()
    changes = {"base_epochs": args.base_epochs, "refine_epochs": args.epochs, "width": args.width, "single_models": args.single_models or None}
    if args.input_size is not None:
        changes.update(input_size=args.input_size, store_size=args.input_size + 8)
    if args.catalog_n is not None:
        if args.catalog_n < args.n:
            print(f"error: --catalog-n {args.catalog_n} must be at least --n {args.n} (the tagged products are part of the catalog)", file=sys.stderr)
            return 2
        changes["catalog_factor"] = args.catalog_n / args.n
    training = dataclasses.replace(training, **{k: v for k, v in changes.items() if v is not None})
    result = run_demo(args.out, conf, n=args.n, seed=args.seed, master=args.master, training=training)
    print(format_report(result))
    print(f"summary of every stage: {result.out_dir / 'demo_summary.json'}; the report: {result.out_dir / 'report.html'}")
    return 0
