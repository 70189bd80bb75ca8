"""Arguments and set-up shared by the subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from softlines_attr.config import PipelineConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser, *, taxonomy: bool = True) -> None:
    """``--conf FILE`` (laid over conf/pipeline.toml) and, where a stage uses one, ``--taxonomy FILE``."""
    parser.add_argument("--conf", type=Path, default=None, help="a TOML file overriding keys of conf/pipeline.toml")
    if taxonomy:
        parser.add_argument("--taxonomy", type=Path, default=None, help="a taxonomy TOML replacing conf/taxonomy.toml")


def add_spark_arguments(parser: argparse.ArgumentParser) -> None:
    """``--master`` and ``--spark-profile`` for the Spark jobs."""
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master URL (default: the profile's, local[*]; spark-submit's when submitted)",
    )
    parser.add_argument(
        "--spark-profile",
        default=None,
        help="conf/spark profile name or .toml path (default: the conf's spark_profile)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run-id`` for the jobs that commit an output version."""
    parser.add_argument(
        "--run-id",
        default=None,
        help="run id: names runs/<run_id>/ and the summary (default: UTC time + random hex); letters, digits, "
        "'.', '_', '-'",
    )


def check_run_id(args: argparse.Namespace) -> None:
    """Refuse an unsafe ``--run-id`` before any work (RunIdError, exit 2)."""
    from softlines_attr.io.commit import validate_run_id

    if getattr(args, "run_id", None) is not None:
        validate_run_id(args.run_id)


def config_from_args(args: argparse.Namespace, *, overlays: Sequence[Path] = ()) -> PipelineConfig:
    """Load the configuration once from the parsed arguments; ``overlays`` are laid over the defaults before
    ``--conf``."""
    user = getattr(args, "conf", None)
    return load_config(
        conf_path=[*overlays, *([user] if user is not None else [])],
        taxonomy_path=getattr(args, "taxonomy", None),
        spark_profile=getattr(args, "spark_profile", None),
    )
