"""``softlines-attr refine``: the paper's refined model (a base bundle's backbone, a new head), or the same network from scratch."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, config_from_args
from softlines_attr.commands.train import add_training_arguments, common_train_settings

log = logging.getLogger(__name__)

HELP = (
    "Fine-tune a base model bundle on one attribute's human tags (a new softmax head with the attribute's "
    "classes from the taxonomy; --base none trains the same network from scratch), or, with --attribute all "
    "on multi shards, one shared backbone with a head per attribute. Class weights and focal loss as options."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The refine command's arguments."""
    parser.add_argument("--base", required=True, help="the base model bundle folder (softlines-attr train's <out>/bundle), or 'none' to train from scratch")
    parser.add_argument("--shards", required=True, help="refine shards of the attribute (shard --tags T --attribute NAME), or multi shards (--attribute all)")
    parser.add_argument("--attribute", required=True, help="the taxonomy attribute to refine; 'all' for a multi-head model on multi shards")
    parser.add_argument("--out", required=True, help="output folder: checkpoints/ and bundle/")
    add_training_arguments(parser, epochs=15, lr=0.01, warmup_epochs=0.0)
    parser.add_argument("--backbone-lr-mult", type=float, default=0.1, help="backbone learning rate = --lr x this when refining a base (default 0.1; ignored with --base none)")
    parser.add_argument("--freeze-backbone", action="store_true", help="train only the new head(s); the base's backbone weights stay as they are")
    parser.add_argument("--head-warmup-epochs", type=int, default=0, help="refining a base: the first N epochs train only the new head(s), then the backbone joins (default 0)")
    parser.add_argument("--bn-stats", choices=["batch", "frozen"], default="batch",
                        help="refining a base: batch (BN re-estimates its statistics on the tagged set) or frozen (the base's statistics are kept) (default batch)")
    parser.add_argument("--class-weights", choices=["none", "inverse", "effective"], default="none",
                        help="per-class loss weights from the train split's label counts: inverse frequency, or effective number of samples (Cui et al. 2019)")
    parser.add_argument("--cb-beta", type=float, default=0.999, help="beta of the effective number of samples, (1 - beta^n) / (1 - beta) (default 0.999)")
    parser.add_argument("--focal-gamma", type=float, default=0.0, help="focal-loss exponent gamma; 0 = cross-entropy (default 0)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Refine (or train from scratch), write the bundle, print its path, heads and metrics as JSON."""
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.refine import check_refine_inputs
    from softlines_attr.model.train import BUNDLE_DIR, TrainConfig, train
    from softlines_attr.shard.contract import read_shard_set

    conf = config_from_args(args)
    shards = read_shard_set(args.shards)
    check_refine_inputs(shards, args.attribute, conf.taxonomy)
    base = None if args.base.strip().lower() == "none" else load_bundle(args.base)
    input_size = args.input_size
    if base is not None and input_size is None:
        input_size = base.manifest.input_shape[1]
    tc = TrainConfig(
        **{**common_train_settings(args), "input_size": input_size},
        loss="softmax",
        backbone_lr_mult=args.backbone_lr_mult,
        freeze_backbone=args.freeze_backbone,
        head_warmup_epochs=args.head_warmup_epochs,
        bn_stats=args.bn_stats,
        class_weights=args.class_weights,
        cb_beta=args.cb_beta,
        focal_gamma=args.focal_gamma,
    )
    manifest = train(args.shards, args.out, conf, tc, resume=args.resume, base=base)
    print(json.dumps({"bundle": f"{args.out}/{BUNDLE_DIR}", "base_model": manifest.base_model, "heads": [h.name for h in manifest.heads], "metrics": manifest.metrics}, sort_keys=True))
    return 0
