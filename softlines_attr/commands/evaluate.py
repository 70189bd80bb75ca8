"""``softlines-attr evaluate``: a model bundle on a split of refine (or multi) shards: metrics, report, thresholds."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from softlines_attr.commands.common import add_config_arguments, config_from_args

log = logging.getLogger(__name__)

HELP = (
    "Evaluate a model bundle on a split of attribute shards: accuracy, average per-class accuracy, per-class table, "
    "confusion matrix, top-k, precision/coverage per confidence threshold and the abstain threshold; writes "
    "evaluation.json, report.md and report.html."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluate command's arguments."""
    parser.add_argument("--model", required=True, type=Path, help="the model bundle folder (checksums are verified)")
    parser.add_argument(
        "--shards",
        required=True,
        type=Path,
        help="the shard job's output folder of refine or multi shards (human tags)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <model>-evaluation-<split>, beside the bundle)"
    )
    parser.add_argument(
        "--split", choices=["val", "train"], default="val", help="the split to evaluate on (default val)"
    )
    parser.add_argument(
        "--write-thresholds",
        action="store_true",
        help="write the abstain thresholds and metrics into the bundle's manifest.json",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per forward pass (default: the conf's evaluate.batch_size)"
    )
    parser.add_argument(
        "--target-precision",
        type=float,
        default=None,
        help="abstain target precision for every head (default: the conf's evaluate section)",
    )
    parser.add_argument("--threads", type=int, default=2, help="image decoding threads (default 2)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id to run the model on (default: CPU)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the outputs, print a JSON summary (output folder, per-head accuracy and thresholds)."""
    import dataclasses

    import mxnet as mx

    from softlines_attr.errors import ConfigError
    from softlines_attr.model.evaluate import evaluate_model
    from softlines_attr.model.evaluation import EVALUATION_FILE

    conf = config_from_args(args)
    settings = conf.evaluate
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size: expected >= 1, found {args.batch_size}")
        settings = dataclasses.replace(settings, batch_size=args.batch_size)
    if args.target_precision is not None:
        if not 0.0 < args.target_precision <= 1.0:
            raise ConfigError(f"--target-precision: expected 0 < value <= 1, found {args.target_precision}")
        settings = dataclasses.replace(
            settings, target_precision=args.target_precision, target_precision_by_attribute={}
        )
    ctx = mx.gpu(args.gpu) if args.gpu is not None else mx.cpu()
    ev, out = evaluate_model(
        args.model,
        args.shards,
        settings,
        out_dir=args.out,
        split=args.split,
        write_to_bundle=args.write_thresholds,
        threads=args.threads,
        ctx=ctx,
    )
    summary = {
        "evaluation": str(out / EVALUATION_FILE),
        "report": str(out / "report.html"),
        "heads": {
            h.head: {
                "accuracy": h.accuracy,
                "average_per_class_accuracy": h.average_per_class_accuracy,
                "abstain_threshold": h.abstain.threshold,
                "target_reached": h.abstain.reached,
            }
            for h in ev.heads
        },
        "thresholds_written": bool(args.write_thresholds),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0
