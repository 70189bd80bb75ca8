"""``softlines-attr train``: the Inception-BN base model (or a from-scratch model) from RecordIO shards."""

from __future__ import annotations

import argparse
import json
import logging

from softlines_attr.commands.common import add_config_arguments, add_spark_arguments, config_from_args

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


def common_train_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields that ``train`` and ``refine`` take from the same flags (:func:`add_training_arguments`)."""
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.wd,
        "lr_schedule": args.lr_schedule,
        "lr_step_epochs": args.lr_step_epochs,
        "lr_factor": args.lr_factor,
        "warmup_epochs": args.warmup_epochs,
        "width": args.width,
        "input_size": args.input_size,
        "label_smoothing": args.label_smoothing,
        "bn_weight_decay": args.bn_weight_decay,
        "prior_init": not args.no_prior_init,
        "color_jitter": args.color_jitter,
        "threads": args.threads,
        "seed": args.seed,
        "gpus": args.gpus,
        "log_every": args.log_every,
        "val_every": args.val_every,
    }


def add_training_arguments(parser: argparse.ArgumentParser, *, epochs: int, lr: float, warmup_epochs: float) -> None:
    """The training flags ``train`` and ``refine`` share (their defaults differ only where given)."""
    parser.add_argument("--epochs", type=int, default=epochs, help=f"passes over the train split (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--lr", type=float, default=lr, help=f"SGD learning rate after warm-up (default {lr})")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--wd", type=float, default=1e-4, help="weight decay, not applied to BN gamma/beta and biases (default 1e-4)")
    parser.add_argument("--lr-schedule", choices=["cosine", "step"], default="cosine", help="cosine: to 0 at the last update; step: x --lr-factor after each --lr-step-epochs (default cosine)")
    parser.add_argument("--lr-step-epochs", type=_int_list, default=(), help="step schedule: epochs after which the rate is multiplied by --lr-factor, e.g. 30,60")
    parser.add_argument("--lr-factor", type=float, default=0.1, help="step schedule: the factor (default 0.1)")
    parser.add_argument("--warmup-epochs", type=float, default=warmup_epochs, help=f"linear learning-rate warm-up from 0, in epochs, at most half the run (default {warmup_epochs:g})")
    parser.add_argument("--width", type=float, default=1.0, help="Inception-BN width multiplier (default 1.0, the paper's network; a base bundle brings its own)")
    parser.add_argument("--input-size", type=int, default=None, help="network input side (default: a base bundle's, else the conf's images.input_size)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="softmax losses: share of the target spread over all classes (default 0)")
    parser.add_argument("--bn-weight-decay", action="store_true", help="also decay BN's gamma (by default BN parameters and biases get no weight decay)")
    parser.add_argument("--no-prior-init", action="store_true", help="initialise the heads' biases at 0 instead of the log of the train label frequencies")
    parser.add_argument("--color-jitter", action="store_true", help="training augmentation: random hue, saturation and lightness shifts")
    parser.add_argument("--threads", type=int, default=2, help="image decoding threads per record iterator (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue after the last complete checkpoint in --out (same result as an uninterrupted run of the same settings)")
    parser.add_argument("--gpus", type=_int_list, default=(), help="GPU ids, e.g. 0,1 (default: CPU); with --launch local they are dealt to the workers in equal groups")
    parser.add_argument("--log-every", type=int, default=50, help="a progress line (images/s, running loss) every N batches; 0 = none (default 50)")
    parser.add_argument("--val-every", type=int, default=1, help="validate every N epochs (and after the last); 0 = only after the last (default 1)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train command's arguments."""
    parser.add_argument("--shards", required=True, help="the shard job's output folder (holding shards/_manifest.json), local")
    parser.add_argument("--out", required=True, help="output folder: checkpoints/, history.json and bundle/")
    add_training_arguments(parser, epochs=10, lr=0.05, warmup_epochs=1.0)
    parser.add_argument("--loss", choices=["auto", "sigmoid", "softmax", "softmax_multi"], default="auto",
                        help="base shards: softmax_multi (one softmax against the title's words, the auto default), sigmoid (one per word) "
                             "or softmax (the title's most frequent word); refine shards: softmax")
    dist = parser.add_argument_group("distributed training (docs/MODEL.md, Distributed; docs/EMR.md)")
    dist.add_argument("--kv-store", choices=["local", "device", "dist_sync", "dist_device_sync"], default="local",
                      help="local/device: one process; dist_sync/dist_device_sync: a ps-lite worker (start it with --launch)")
    dist.add_argument("--launch", choices=["none", "local", "spark"], default="none",
                      help="local: start scheduler, servers and --num-workers workers on this machine; spark: one Spark "
                           "barrier stage whose tasks are the workers (under spark-submit, jobs/train_dist.py); none: run as given")
    dist.add_argument("--num-workers", type=int, default=2, help="--launch: workers (spark: barrier tasks, one per GPU node) (default 2)")
    dist.add_argument("--num-servers", type=int, default=1, help="--launch local: parameter servers; --launch spark: servers beside each worker (default 1)")
    dist.add_argument("--launch-timeout", type=float, default=None, help="--launch: seconds before the run is stopped as hung (default: none)")
    dist.add_argument("--launch-logs", default=None, help="--launch local: folder for every role's stdout/stderr (default: <out>/launch-logs)")
    dist.add_argument("--worker-dump", default=None, help="debug: every worker writes its final params and the labels it read here")
    add_config_arguments(parser)
    add_spark_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Train, write the bundle, print its path and metrics as JSON (with ``--launch``: start the workers that do)."""
    if args.launch != "none":
        return _launch(args)
    from softlines_attr.model.train import BUNDLE_DIR, TrainConfig, train

    conf = config_from_args(args)
    tc = TrainConfig(
        **common_train_settings(args),
        loss=args.loss,
        kv_store=args.kv_store,
        worker_dump=args.worker_dump,
    )
    manifest = train(args.shards, args.out, conf, tc, resume=args.resume)
    if manifest is None:  # a dist worker other than rank 0: no bundle
        print(json.dumps({"bundle": None, "heads": [], "metrics": {}}, sort_keys=True))
        return 0
    print(json.dumps({"bundle": f"{args.out}/{BUNDLE_DIR}", "heads": [h.name for h in manifest.heads], "metrics": manifest.metrics}, sort_keys=True))
    return 0


def worker_command_line(args: argparse.Namespace) -> list[str]:
    """The workers' ``train ...`` command line: these arguments without the launcher's own options."""
    from softlines_attr.model.distributed import argv_from_namespace

    parser = argparse.ArgumentParser(prog="softlines-attr train")
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return ["train", *argv_from_namespace(parser, args)]


def _launch(args: argparse.Namespace) -> int:
    """``--launch local|spark``: start the ps-lite roles, wait, print rank 0's JSON line."""
    from softlines_attr.model.distributed import DIST_KV_STORES, SparkLaunch, launch_local, launch_spark, split_gpus
    from softlines_attr.model.errors import DistributedLaunchError

    if args.kv_store not in DIST_KV_STORES:
        raise DistributedLaunchError(f"--launch {args.launch} starts ps-lite workers: expected --kv-store among {list(DIST_KV_STORES)}, found {args.kv_store!r}")
    argv = worker_command_line(args)
    if args.launch == "local":
        logs = args.launch_logs or f"{args.out}/launch-logs"
        result = launch_local(args.num_workers, args.num_servers, argv, timeout_s=args.launch_timeout, log_dir=logs,
                              worker_gpus=split_gpus(args.gpus, args.num_workers))
        printed = result.chief_output()
        if printed is None:
            raise DistributedLaunchError(f"expected one worker to print its bundle, found none (worker logs in {result.log_dir})")
        printed["workers"] = args.num_workers
        print(json.dumps(printed, sort_keys=True))
        return 0
    from softlines_attr.spark import build_session

    conf = config_from_args(args)
    spark = build_session(conf.spark, app_name="softlines-attr-train", master=args.master)
    try:
        reports = launch_spark(spark, SparkLaunch(args.num_workers, tuple(argv), servers_per_worker=args.num_servers, timeout_s=args.launch_timeout))
    finally:
        spark.stop()
    chief = [r for r in reports if json.loads(r["stdout"] or "{}").get("bundle")]
    print(json.dumps({"bundle": f"{args.out}/bundle", "workers": args.num_workers, "tasks": reports,
                      "metrics": json.loads(chief[0]["stdout"])["metrics"] if chief else {}}, sort_keys=True))
    return 0
