"""``softlines-attr quantize``: an INT8 copy of a model bundle, calibrated on a shard split, for scoring."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, config_from_args

log = logging.getLogger(__name__)

HELP = (
    "Quantise an fp32 model bundle to INT8 (MXNet oneDNN), calibrated on images of a shard split "
    "(the validation split by default); writes a new bundle that `score --models` takes like any other."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The quantize command's arguments."""
    parser.add_argument("--model", required=True, help="the fp32 model bundle folder")
    parser.add_argument(
        "--shards", required=True, help="a shard job's output folder whose records calibrate the scales"
    )
    parser.add_argument("--out", required=True, help="the INT8 bundle folder to write")
    parser.add_argument(
        "--split", choices=["val", "train"], default="val", help="the shard split to calibrate on (default val)"
    )
    parser.add_argument("--num-calib", type=int, default=128, help="calibration images (default 128)")
    parser.add_argument(
        "--calib-mode",
        choices=["naive", "entropy"],
        default="naive",
        help="naive: layer min/max; entropy: KL thresholds",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    add_config_arguments(parser, taxonomy=False)


def run(args: argparse.Namespace) -> int:
    """Calibrate, quantise, write the bundle, print its path and calibration as JSON."""
    from softlines_attr.pipeline import quantize_stage

    manifest = quantize_stage(
        args.model,
        args.shards,
        args.out,
        config_from_args(args),
        split=args.split,
        num_calib=args.num_calib,
        calib_mode=args.calib_mode,
        overwrite=args.overwrite,
    )
    print(
        json.dumps(
            {"bundle": args.out, "precision": manifest.precision, "calibration": manifest.calibration}, sort_keys=True
        )
    )
    return 0
