"""``softlines-attr train``: the Inception-BN base model (or a from-scratch model) from RecordIO shards."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, add_spark_arguments, config_from_args
from softlines_attr.commands.training import training_parser, training_settings
from softlines_attr.config import PipelineConfig
from softlines_attr.train_config import TrainConfig

log = logging.getLogger(__name__)

HELP = (
    "Train Inception-BN on RecordIO shards written by the shard job (base shards: title words, sigmoid "
    "cross-entropy; refine shards: one class, softmax); a checkpoint every epoch and a model bundle in --out."
)


def parents() -> list[argparse.ArgumentParser]:
    """The shared training flags (:mod:`softlines_attr.commands.training`)."""
    return [training_parser()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train command's arguments."""
    parser.add_argument(
        "--shards", required=True, help="the shard job's output folder (holding shards/_manifest.json), local"
    )
    parser.add_argument("--out", required=True, help="output folder: checkpoints/, history.json and bundle/")
    parser.add_argument(
        "--loss",
        choices=["auto", "sigmoid", "softmax", "softmax_multi"],
        default=argparse.SUPPRESS,
        help="(conf key train.loss) base shards: softmax_multi (one softmax against the title's words, the auto "
        "default), sigmoid (one per word) "
        "or softmax (the title's most frequent word); refine shards: softmax",
    )
    dist = parser.add_argument_group("distributed training (docs/MODEL.md, Distributed; docs/EMR.md)")
    dist.add_argument(
        "--kv-store",
        choices=["local", "device", "dist_sync", "dist_device_sync"],
        default="local",
        help="local/device: one process; dist_sync/dist_device_sync: a ps-lite worker (start it with --launch)",
    )
    dist.add_argument(
        "--launch",
        choices=["none", "local", "spark"],
        default="none",
        help="local: start scheduler, servers and --num-workers workers on this machine; spark: one Spark "
        "barrier stage whose tasks are the workers (under spark-submit, jobs/train_dist.py); none: run as given",
    )
    dist.add_argument(
        "--num-workers",
        type=int,
        default=2,
        help="--launch: workers (spark: barrier tasks, one per GPU node) (default 2)",
    )
    dist.add_argument(
        "--num-servers",
        type=int,
        default=1,
        help="--launch local: parameter servers; --launch spark: servers beside each worker (default 1)",
    )
    dist.add_argument(
        "--launch-timeout",
        type=float,
        default=None,
        help="--launch: seconds before the run is stopped as hung (default: none)",
    )
    dist.add_argument(
        "--launch-logs",
        default=None,
        help="--launch local: folder for every role's stdout/stderr (default: <out>/launch-logs)",
    )
    dist.add_argument(
        "--settings-json",
        default=None,
        help="a worker's settings, set by --launch: the launcher's resolved [train] as JSON (flags given still "
        "override)",
    )
    dist.add_argument(
        "--worker-dump", default=None, help="debug: every worker writes its final params and the labels it read here"
    )
    add_config_arguments(parser)
    add_spark_arguments(parser)


def train_settings(args: argparse.Namespace, conf: PipelineConfig) -> TrainConfig:
    """The run's settings: the conf's ``[train]`` (or a launcher's ``--settings-json``) with the flags given laid
    over it."""
    from softlines_attr.train_config import from_json

    section = conf.train if args.settings_json is None else from_json(args.settings_json, source="--settings-json")
    return training_settings(args, section, name="train", kv_store=args.kv_store, worker_dump=args.worker_dump or "")


def run(args: argparse.Namespace) -> int:
    """Train, write the bundle, print its path and metrics as JSON (with ``--launch``: start the workers that do)."""
    if args.launch != "none":
        return _launch(args)
    from softlines_attr.model.bundle import BUNDLE_DIR
    from softlines_attr.pipeline import train_stage

    conf = config_from_args(args)
    manifest = train_stage(args.shards, args.out, conf, train_settings(args, conf), resume=args.resume)
    if manifest is None:  # a dist worker other than rank 0: no bundle
        print(json.dumps({"bundle": None, "heads": [], "metrics": {}}, sort_keys=True))
        return 0
    print(
        json.dumps(
            {
                "bundle": f"{args.out}/{BUNDLE_DIR}",
                "heads": [h.name for h in manifest.heads],
                "metrics": manifest.metrics,
            },
            sort_keys=True,
        )
    )
    return 0


def worker_command_line(args: argparse.Namespace, tc: TrainConfig) -> list[str]:
    """The workers' ``train ...`` command line: the data paths, the conf files and the resolved settings as JSON.

    The launcher's own options are not passed on; the settings travel whole (``--settings-json``, the
    conf's ``[train]`` with the flags given already laid over it), so a worker trains exactly what
    the launcher resolved; only the run's own fields (``--kv-store``, ``--worker-dump``) stay flags.
    """
    from softlines_attr.train_config import to_json

    argv = [
        "train",
        "--shards",
        str(args.shards),
        "--out",
        str(args.out),
        "--settings-json",
        to_json(tc),
        "--kv-store",
        tc.kv_store,
    ]
    for flag, value in (("--conf", args.conf), ("--taxonomy", args.taxonomy), ("--worker-dump", args.worker_dump)):
        if value is not None:
            argv += [flag, str(value)]
    if args.resume:
        argv.append("--resume")
    return [*argv, "--log-level", args.log_level]


def _launch(args: argparse.Namespace) -> int:
    """``--launch local|spark``: start the ps-lite roles, wait, print rank 0's JSON line."""
    from softlines_attr.model.distributed.barrier import SparkLaunch, launch_spark
    from softlines_attr.model.distributed.kvstore import DIST_KV_STORES
    from softlines_attr.model.distributed.launch import launch_local, split_gpus
    from softlines_attr.model.errors import DistributedLaunchError

    if args.kv_store not in DIST_KV_STORES:
        raise DistributedLaunchError(
            f"--launch {args.launch} starts ps-lite workers: expected --kv-store among {list(DIST_KV_STORES)}, "
            f"found {args.kv_store!r}"
        )
    tc = train_settings(args, config_from_args(args))
    argv = worker_command_line(args, tc)
    if args.launch == "local":
        logs = args.launch_logs or f"{args.out}/launch-logs"
        result = launch_local(
            args.num_workers,
            args.num_servers,
            argv,
            timeout_s=args.launch_timeout,
            log_dir=logs,
            worker_gpus=split_gpus(tc.gpus, args.num_workers),
        )
        printed = result.chief_output()
        if printed is None:
            raise DistributedLaunchError(
                f"expected one worker to print its bundle, found none (worker logs in {result.log_dir})"
            )
        printed["workers"] = args.num_workers
        print(json.dumps(printed, sort_keys=True))
        return 0
    from softlines_attr.spark import job_session

    conf = config_from_args(args)
    with job_session(conf.spark, app_name="softlines-attr-train", master=args.master) as spark:
        reports = launch_spark(
            spark,
            SparkLaunch(
                args.num_workers, tuple(argv), servers_per_worker=args.num_servers, timeout_s=args.launch_timeout
            ),
        )
    chief = [r for r in reports if json.loads(r["stdout"] or "{}").get("bundle")]
    print(
        json.dumps(
            {
                "bundle": f"{args.out}/bundle",
                "workers": args.num_workers,
                "tasks": reports,
                "metrics": json.loads(chief[0]["stdout"])["metrics"] if chief else {},
            },
            sort_keys=True,
        )
    )
    return 0
