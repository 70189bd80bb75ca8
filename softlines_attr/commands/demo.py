"""``softlines-attr demo``: the whole pipeline on a generated catalog (the README's ``make demo``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from softlines_attr.commands.common import add_config_arguments, add_spark_arguments, config_from_args
from softlines_attr.config import PipelineConfig
from softlines_attr.errors import ConfigError

HELP = "Run every pipeline stage end to end on a generated catalog, on local Spark, and print where the outputs are."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the demo."""
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="demo folder (default: demo-out)")
    parser.add_argument("--n", type=int, default=1000, help="generated products with human tags (default 1000)")
    parser.add_argument(
        "--catalog-n",
        type=int,
        default=None,
        help="generated products in all: the base model learns from their titles (default 4 x --n); at least --n",
    )
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: the conf's)")
    training = parser.add_argument_group("demo models (small images, a narrow network: minutes on 2 cores)")
    training.add_argument(
        "--base-epochs", type=int, default=None, help="epochs of the base model (title words) (conf key train.epochs)"
    )
    training.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of each refined, from-scratch and multi-head model (conf key refine.epochs)",
    )
    training.add_argument("--width", type=float, default=None, help="Inception-BN width multiplier of the demo models")
    training.add_argument(
        "--input-size", type=int, default=None, help="network input side; the shards store images 8 px larger"
    )
    training.add_argument(
        "--single-models",
        action="store_true",
        help="also train the ten per-attribute models (from the base and from scratch) for Table 3 (conf key "
        "demo.single_models)",
    )
    add_config_arguments(parser)
    add_spark_arguments(parser)


def demo_overrides(conf: PipelineConfig, args: argparse.Namespace) -> PipelineConfig:
    """The demo's conf with its command-line flags laid over it (each names the conf key it changes).

    Raises:
        ConfigError: ``--catalog-n`` below ``--n``, or a training value out of range.
    """
    from softlines_attr.train_config import with_overrides

    train: dict[str, Any] = {}
    refine: dict[str, Any] = {}
    if args.base_epochs is not None:
        train["epochs"] = args.base_epochs
    if args.epochs is not None:
        refine["epochs"] = args.epochs
    if args.width is not None:
        train["width"] = refine["width"] = args.width
    images = conf.images
    if args.input_size is not None:
        images = dataclasses.replace(images, input_size=args.input_size, store_size=args.input_size + 8)
    demo = conf.demo
    if args.catalog_n is not None:
        if args.catalog_n < args.n:
            raise ConfigError(
                f"--catalog-n: expected at least --n ({args.n}: the tagged products are part of the catalog), "
                f"found {args.catalog_n}"
            )
        demo = dataclasses.replace(demo, catalog_factor=args.catalog_n / args.n)
    if args.single_models:
        demo = dataclasses.replace(demo, single_models=True)
    return dataclasses.replace(
        conf,
        images=images,
        demo=demo,
        train=with_overrides(conf.train, train, source="command line", section="train"),
        refine=with_overrides(conf.refine, refine, source="command line", section="refine"),
    )


def run(args: argparse.Namespace) -> int:
    """Load the demo's conf (``conf/demo.toml`` over the defaults, then ``--conf``), run the demo, print the report."""
    from softlines_attr.demo import demo_conf_path, run_demo
    from softlines_attr.demo_tables import format_report

    conf = demo_overrides(config_from_args(args, overlays=[demo_conf_path()]), args)
    result = run_demo(args.out, conf, n=args.n, seed=args.seed, master=args.master)
    print(format_report(result))
    print(
        f"summary of every stage: {result.out_dir / 'demo_summary.json'}; the report: {result.out_dir / 'report.html'}"
    )
    return 0
