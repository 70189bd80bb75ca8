"""``softlines-attr make-catalog``: generate the bundled demo/test catalog (images, titles, tags, truth)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from softlines_attr.commands.common import add_config_arguments, config_from_args

log = logging.getLogger(__name__)

HELP = "Generate a synthetic dress catalog: images with known attributes, vendor titles, human tags, truth, bad rows."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--conf``, ``--taxonomy``, ``--out``, ``--n``, ``--seed`` and ``--workers``."""
    add_config_arguments(parser)
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (created; a previous catalog there is replaced)"
    )
    parser.add_argument("--n", type=int, default=None, help="number of products (default: conf catalog.n)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: conf seed)")
    parser.add_argument(
        "--workers", type=int, default=None, help="drawing processes, 0 = one per core (default: conf catalog.workers)"
    )


def run(args: argparse.Namespace) -> int:
    """Load the config, generate the catalog, print where it is and a short summary."""
    import dataclasses

    from softlines_attr.synthetic import generate_catalog

    conf = config_from_args(args)
    if args.workers is not None:
        conf = dataclasses.replace(conf, catalog=dataclasses.replace(conf.catalog, workers=args.workers))
    summary = generate_catalog(args.out, conf, n=args.n, seed=args.seed)
    out = Path(summary["out_dir"])
    types = ", ".join(f"{k} {v}" for k, v in summary["products_by_type"].items())
    bad = ", ".join(f"{k} {v}" for k, v in summary["bad_rows"]["by_kind"].items() if v)
    print(f"catalog written to {out} in {summary['elapsed_s']:.1f} s")
    print(f"  catalog.parquet   {summary['rows']} rows ({types}; {summary['parents']} parents)")
    print(f"  images/           {summary['images']['written']} files, {summary['images']['bytes'] / 1e6:.1f} MB")
    print(f"  tags.parquet      {summary['tags']['rows']} human tags ({summary['tags']['wrong']} wrong on purpose)")
    print(f"  truth.parquet     {summary['truth_rows']} rows (every dress x attribute)")
    print(f"  bad_rows.parquet  {summary['bad_rows']['total']} rows ({bad or 'none'})")
    print(f"  summary.json      seed {summary['seed']}, spam titles {summary['spam_titles']}")
    return 0
