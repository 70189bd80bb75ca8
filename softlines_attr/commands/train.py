"""``softlines-attr train``: the Inception-BN base model (or a from-scratch model) from RecordIO shards."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, config_from_args

log = logging.getLogger(__name__)

HELP = (
    "Train Inception-BN on RecordIO shards written by the shard job (base shards: title words, sigmoid "
    "cross-entropy; refine shards: one class, softmax); a checkpoint every epoch and a model bundle in --out."
)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, found {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train command's arguments."""
    parser.add_argument("--shards", required=True, help="the shard job's output folder (holding shards/_manifest.json), local")
    parser.add_argument("--out", required=True, help="output folder: checkpoints/ and bundle/")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the train split (default 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="initial SGD learning rate (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--wd", type=float, default=1e-4, help="weight decay (default 1e-4)")
    parser.add_argument("--lr-step-epochs", type=_int_list, default=(), help="epochs after which the rate is multiplied by --lr-factor, e.g. 30,60")
    parser.add_argument("--lr-factor", type=float, default=0.1, help="learning-rate step factor (default 0.1)")
    parser.add_argument("--width", type=float, default=1.0, help="Inception-BN width multiplier (default 1.0, the paper's network)")
    parser.add_argument("--input-size", type=int, default=None, help="network input side (default: the conf's images.input_size)")
    parser.add_argument("--loss", choices=["auto", "sigmoid", "softmax"], default="auto", help="auto: sigmoid for base shards, softmax for refine shards")
    parser.add_argument("--threads", type=int, default=2, help="image decoding threads per record iterator (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue after the last complete checkpoint in --out (same result as an uninterrupted run)")
    parser.add_argument("--gpus", type=_int_list, default=(), help="GPU ids, e.g. 0,1 (default: CPU)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train, write the bundle, print its path and metrics as JSON."""
    from softlines_attr.model.train import BUNDLE_DIR, TrainConfig, train

    conf = config_from_args(args)
    tc = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        momentum=args.momentum,
        weight_decay=args.wd,
        lr_step_epochs=args.lr_step_epochs,
        lr_factor=args.lr_factor,
        width=args.width,
        input_size=args.input_size,
        loss=args.loss,
        threads=args.threads,
        seed=args.seed,
        gpus=args.gpus,
    )
    manifest = train(args.shards, args.out, conf, tc, resume=args.resume)
    print(json.dumps({"bundle": f"{args.out}/{BUNDLE_DIR}", "heads": [h.name for h in manifest.heads], "metrics": manifest.metrics}, sort_keys=True))
    return 0
