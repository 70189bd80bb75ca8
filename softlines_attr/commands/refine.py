"""``softlines-attr refine``: the paper's refined model (a base bundle's backbone, a new head), or the same
network from scratch."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, config_from_args
from softlines_attr.commands.training import refine_parser, training_parser, training_settings

log = logging.getLogger(__name__)

HELP = (
    "Fine-tune a base model bundle on one attribute's human tags (a new softmax head with the attribute's "
    "classes from the taxonomy; --base none trains the same network from scratch), or, with --attribute all "
    "on multi shards, one shared backbone with a head per attribute. Class weights and focal loss as options."
)


def parents() -> list[argparse.ArgumentParser]:
    """The shared training flags and refine's own (:mod:`softlines_attr.commands.training`)."""
    return [training_parser(), refine_parser()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The refine command's arguments."""
    parser.add_argument(
        "--base",
        required=True,
        help="the base model bundle folder (softlines-attr train's <out>/bundle), or 'none' to train from scratch",
    )
    parser.add_argument(
        "--shards",
        required=True,
        help="refine shards of the attribute (shard --tags T --attribute NAME), or multi shards (--attribute all)",
    )
    parser.add_argument(
        "--attribute",
        required=True,
        help="the taxonomy attribute to refine; 'all' for a multi-head model on multi shards",
    )
    parser.add_argument("--out", required=True, help="output folder: checkpoints/ and bundle/")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Refine (or train from scratch), write the bundle, print its path, heads and metrics as JSON."""
    from softlines_attr.model.bundle import BUNDLE_DIR
    from softlines_attr.pipeline import refine_stage

    conf = config_from_args(args)
    tc = training_settings(args, conf.refine, name="refine")
    manifest = refine_stage(
        args.shards, args.out, conf, tc, base=args.base, attribute=args.attribute, resume=args.resume
    )
    print(
        json.dumps(
            {
                "bundle": f"{args.out}/{BUNDLE_DIR}",
                "base_model": manifest.base_model,
                "heads": [h.name for h in manifest.heads],
                "metrics": manifest.metrics,
            },
            sort_keys=True,
        )
    )
    return 0
