"""The ``softlines-attr`` console command: one subcommand per pipeline stage.

Each subcommand lives in ``softlines_attr/commands/<name>.py`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``, and optionally ``parents()``: argparse parent
parsers of flags several commands share (train and refine's training settings). Command modules import Spark and
MXNet only
inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from softlines_attr import __version__
from softlines_attr.errors import SoftlinesAttrError

log = logging.getLogger(__name__)

# subcommand -> module under softlines_attr.commands, in pipeline order
COMMANDS: dict[str, str] = {
    "make-catalog": "make_catalog",
    "labels": "labels",
    "shard": "shard",
    "train": "train",
    "refine": "refine",
    "evaluate": "evaluate",
    "quantize": "quantize",
    "promote": "promote",
    "score": "score",
    "audit": "audit",
    "pipeline": "pipeline",
    "emr": "emr",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="softlines-attr",
        description="Tag fashion product images with visual attributes: Spark jobs, MXNet models, Parquet out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"softlines_attr.commands.{module_name}")
        parents = module.parents() if hasattr(module, "parents") else []
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=parents)
        module.add_arguments(cmd)
        cmd.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, and map package errors to exit code 2 with a clear message."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args._run(args) or 0)
    except SoftlinesAttrError as exc:
        print(f"softlines-attr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
