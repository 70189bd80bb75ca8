"""``softlines-attr promote``: the promotion gate: a candidate bundle becomes the registry's current model only if
it is at least as good as the current one on the val split."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, add_run_arguments, check_run_id, config_from_args

log = logging.getLogger(__name__)

HELP = (
    "Evaluate a candidate model bundle and the registry's current model on the val split of refine (or multi) "
    "shards; if the candidate passes the gate of conf [promote] (per-attribute accuracy not lower by more than "
    "max_accuracy_drop points, coverage at the target precision not below min_coverage), make it the registry's "
    "current model with one atomic pointer write. A refusal exits 0 with the pointer unchanged; the decision and "
    "its reasons are printed and written as JSON under the registry's decisions/."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The promote command's arguments."""
    parser.add_argument(
        "--candidate", required=True, help="the candidate model bundle folder (refine's <out>/bundle; local or s3://)"
    )
    parser.add_argument(
        "--shards",
        required=True,
        help="the shard job's output of refine or multi shards (human tags); both models are evaluated on its val "
        "split",
    )
    parser.add_argument(
        "--models",
        required=True,
        help="the model registry folder (local or s3://): runs/<run_id>/bundle/ behind _current.json; "
        "score --models REGISTRY reads its current bundle",
    )
    add_run_arguments(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the gate; exit 0 whether the candidate is promoted or refused (the decision is in the printed JSON)."""
    from softlines_attr.promote.job import run_promote

    check_run_id(args)
    conf = config_from_args(args)
    decision = run_promote(args.candidate, args.shards, args.models, conf, run_id=args.run_id)
    print(json.dumps(decision, sort_keys=True))
    return 0
