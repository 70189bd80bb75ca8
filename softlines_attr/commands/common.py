"""Arguments and set-up shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from softlines_attr.config import PipelineConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser, *, taxonomy: bool = True) -> None:
    """``--conf FILE`` (laid over conf/pipeline.toml) and, where a stage uses one, ``--taxonomy FILE``."""
    parser.add_argument("--conf", type=Path, default=None, help="a TOML file overriding keys of conf/pipeline.toml")
    if taxonomy:
        parser.add_argument("--taxonomy", type=Path, default=None, help="a taxonomy TOML replacing conf/taxonomy.toml")


def add_spark_arguments(parser: argparse.ArgumentParser) -> None:
    """``--master`` and ``--spark-profile`` for the Spark jobs."""
    parser.add_argument("--master", default=None, help="Spark master URL (default: the profile's, local[*]; spark-submit's when submitted)")
    parser.add_argument("--spark-profile", default=None, help="conf/spark profile name or .toml path (default: the conf's spark_profile)")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """Load the configuration once from the parsed arguments."""
    return load_config(
        conf_path=getattr(args, "conf", None),
        taxonomy_path=getattr(args, "taxonomy", None),
        spark_profile=getattr(args, "spark_profile", None),
    )
