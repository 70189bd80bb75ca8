"""Benchmark: training images/s on real shards vs synthetic batches, and full-width forward images/s.

    .venv/bin/python benchmarks/bench_train.py                                  # width 0.25 at 224, ~2-3 min
    .venv/bin/python benchmarks/bench_train.py --width 1.0 --batches 4 --skip-forward   # the paper's network
    .venv/bin/python benchmarks/bench_train.py --skip-forward --threads 1,2     # one shards arm per thread count

The first run also makes the shards (~2.5 min, then cached).

What it does, in one process:

1. **Shards** (once, cached under ``benchmarks/.cache/``): runs the real pipeline on a generated
   catalog: ``softlines-attr make-catalog`` (``--n`` products, drawn dresses, JPEG), ``labels``
   (Spark, ``local[2]``) and ``shard --vocab-size 500`` (Spark, ``local[2]``; ``store_size`` 256,
   JPEG quality 90, from ``conf/pipeline.toml``). The train split of that output is what is read.
2. **Training, shards vs synthetic**: one ``mx.mod.Module`` built and initialised as
   :func:`softlines_attr.model.train.train` builds it (Inception-BN at ``--width``, sigmoid
   cross-entropy over the vocabulary, SGD with momentum and weight decay), and the training step of
   its epoch loop (``forward_backward``, ``update``, ``update_metric``). Arm **A** reads the batches
   from :func:`softlines_attr.model.train.record_iter` (``ImageRecordIter``: JPEG decode, random
   crop and mirror, mean/std, multi-hot labels; a fresh iterator per run as train() makes one per
   epoch); arm **B** reuses one pre-built ``DataBatch`` of the same shapes held in memory. After
   ``--warmup`` untimed steps, the arms alternate (A B A B ...) with the same batch size and number
   of timed batches (default: one epoch of the train split), so machine noise hits both; A's clock
   starts before its iterator is made, so every image it trains on is decoded inside the timed
   span. The ratio A/B is the figure (target >= 0.9x: the data pipeline is not the bottleneck),
   in wall time and in this process's CPU time (steadier on a shared machine). Also measured: the
   pipeline alone (the same iterator for an epoch, no training step): the rate it can supply with
   the cores to itself, and its CPU cost per image.
3. **Forward**: Inception-BN at full width, 1000 classes, ``--forward-size`` input, one bound
   executor per batch size (``grad_req='null'``), ``forward(is_train=False)`` on tensors made
   before timing, reused across batches; images/s and GMAC/s (MACs from
   :func:`~softlines_attr.model.inception_bn.count_macs`: convolutions and FC only).

MXNet's CPU operators use OpenMP threads (``OMP_NUM_THREADS``; unset = MXNet's default, the
number of cores) and ``MXNET_CPU_WORKER_NTHREADS`` engine workers (unset = 1); ``--omp-threads``
sets the former before MXNet is imported. Both settings and the load average at the start and the
end are printed and written to the JSON result.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench_train")

VOCAB = 500
FORWARD_CLASSES = 1000


def load_average() -> str:
    """The 1, 5 and 15 minute load averages from /proc/loadavg ("" where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def ensure_shards(cache: Path, n: int, seed: int, cores: int) -> Path:
    """Run make-catalog, labels and shard once into ``cache`` (reused while the marker matches).

    Args:
        cache: Working folder (``catalog/``, ``labels/``, ``shards/``).
        n: Products in the generated catalog.
        seed: Catalog seed.
        cores: Spark ``local[cores]`` for the label and shard jobs.

    Returns:
        The shard job's output folder.
    """
    marker = cache / ".bench"
    key = f"n={n} seed={seed} vocab={VOCAB}"
    out = cache / "shards"
    if marker.is_file() and marker.read_text() == key and (out / "shards" / "_manifest.json").is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    cli = [sys.executable, "-m", "softlines_attr.cli"]
    steps = [
        ["make-catalog", "--out", str(cache / "catalog"), "--n", str(n), "--seed", str(seed)],
        [
            "labels",
            "--catalog",
            str(cache / "catalog" / "catalog.parquet"),
            "--out",
            str(cache / "labels"),
            "--master",
            f"local[{cores}]",
        ],
        [
            "shard",
            "--labels",
            str(cache / "labels"),
            "--out",
            str(out),
            "--vocab-size",
            str(VOCAB),
            "--master",
            f"local[{cores}]",
        ],
    ]
    for step in steps:
        started = time.perf_counter()
        proc = subprocess.run(
            [*cli, *step, "--log-level", "WARNING"], cwd=REPO, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"{step[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        log.info("%s done in %.0f s", step[0], time.perf_counter() - started)
    marker.write_text(key)
    return out


def cycle(make_iter: Callable[[], Any]) -> Iterator[Any]:
    """Batches of ``make_iter()``'s iterator forever: reset and go on when it is exhausted."""
    it = make_iter()
    while True:
        yield from it
        it.reset()


def timed_steps(
    step: Callable[[Any], None], make_batches: Callable[[], Iterator[Any]], count: int
) -> tuple[float, float]:
    """Wall and CPU seconds for ``count`` calls of ``step`` on the batches of ``make_batches()``, made after the
    clocks start.

    The batch source is created inside the timed span (an ImageRecordIter starts decoding when it
    is made) and closed after it, so that its prefetch threads do not run during another arm. CPU
    seconds are this process's, all threads (``time.process_time``): the work done, which other
    processes on a shared machine disturb much less than the wall time.
    """
    import mxnet as mx

    mx.nd.waitall()
    started, cpu_started = time.perf_counter(), time.process_time()
    batches = make_batches()
    for _ in range(count):
        step(next(batches))
    mx.nd.waitall()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    batches.close()  # type: ignore[attr-defined]  # a generator object: close() exists at run time
    del batches
    gc.collect()
    return seconds, cpu_seconds


def bench_training(args: argparse.Namespace, shards_dir: Path) -> dict[str, Any]:
    """Training images/s: real shards through record_iter (A) vs a reused in-memory batch (B), alternated."""
    import mxnet as mx
    import numpy as np

    from softlines_attr.config import load_config
    from softlines_attr.model.data import record_iter
    from softlines_attr.model.inception_bn import DATA_NAME, DEFAULT_HEAD, count_macs, inception_bn
    from softlines_attr.model.metrics import train_metric as _metric
    from softlines_attr.shard.contract import read_shard_set
    from softlines_attr.train_config import TrainConfig

    conf = load_config()
    shards = read_shard_set(shards_dir)
    tc = TrainConfig(batch_size=args.batch_size, width=args.width, input_size=args.input_size, seed=args.seed)
    thread_counts = args.threads or [tc.threads]
    size = tc.input_size or conf.images.input_size
    label_name = f"{DEFAULT_HEAD}_label"

    # the module as train() builds it for base shards (sigmoid cross-entropy), initialiser and optimizer included
    mx.random.seed(tc.seed)
    np.random.seed(tc.seed)
    sym = inception_bn(shards.num_classes, tc.width, multi_label=True, head=DEFAULT_HEAD)
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=[label_name], context=[mx.cpu()])
    mod.bind(
        data_shapes=[(DATA_NAME, (tc.batch_size, 3, size, size))],
        label_shapes=[(label_name, (tc.batch_size, shards.num_classes))],
    )
    mod.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    mod.init_optimizer(
        kvstore="local",
        optimizer="sgd",
        optimizer_params={
            "learning_rate": tc.learning_rate,
            "momentum": tc.momentum,
            "wd": tc.weight_decay,
            "rescale_grad": 1.0 / tc.batch_size,
        },
    )
    metric = _metric(True)

    def step(batch: mx.io.DataBatch) -> None:  # train()'s epoch loop body
        mod.forward_backward(batch)
        mod.update()
        mod.update_metric(metric, batch.label)

    def shard_iter(run: int, threads: int) -> Callable[[], mx.io.DataIter]:
        run_tc = dataclasses.replace(tc, seed=tc.seed + run, threads=threads)
        return lambda: record_iter(
            shards.train, shards, conf, run_tc, train=True, label_name=label_name, multi_label=True
        )

    rng = np.random.default_rng(args.seed)
    labels = np.zeros((tc.batch_size, shards.num_classes), np.float32)
    labels[np.arange(tc.batch_size)[:, None], rng.integers(0, shards.num_classes, (tc.batch_size, 4))] = 1.0
    synthetic = mx.io.DataBatch(
        data=[mx.nd.array(rng.normal(0, 1, (tc.batch_size, 3, size, size)).astype(np.float32))],
        label=[mx.nd.array(labels)],
        provide_data=[mx.io.DataDesc(DATA_NAME, (tc.batch_size, 3, size, size))],
        provide_label=[mx.io.DataDesc(label_name, labels.shape)],
    )

    def forever(batch: mx.io.DataBatch) -> Iterator[mx.io.DataBatch]:
        while True:
            yield batch

    epoch = -(-shards.train_records // tc.batch_size)
    count = args.batches or epoch
    for _ in range(args.warmup):  # operator set-up (MKL-DNN primitives, memory) before any clock starts
        step(synthetic)
    mx.nd.waitall()
    images = count * tc.batch_size
    runs: list[dict[str, Any]] = []
    for run in range(args.repeat):
        row: dict[str, Any] = {}
        for threads in thread_counts:
            # A: the clock starts before the iterator is made, so no batch is decoded ahead of it
            row[f"shards_t{threads}_s"] = timed_steps(
                step, lambda run=run, threads=threads: cycle(shard_iter(run, threads)), count
            )
        # B: the same steps on one in-memory batch
        row["synthetic_s"] = timed_steps(step, lambda: forever(synthetic), count)
        for threads in thread_counts:
            # the pipeline alone: the same iterator, no training step (what it supplies with the cores to itself)
            row[f"pipeline_t{threads}_s"] = timed_steps(
                lambda batch: batch.data[0].wait_to_read(),
                lambda run=run, threads=threads: cycle(shard_iter(run, threads)),
                epoch,
            )
        synth_s, synth_cpu = row["synthetic_s"]
        figures: dict[str, Any] = {
            "synthetic_images_per_s": images / synth_s,
            "synthetic_images_per_cpu_s": images / synth_cpu,
            "shards": {},
        }
        for threads in thread_counts:
            shard_s, shard_cpu = row[f"shards_t{threads}_s"]
            pipe_s, pipe_cpu = row[f"pipeline_t{threads}_s"]
            a = figures["shards"][str(threads)] = {
                "images_per_s": images / shard_s,
                "ratio": synth_s / shard_s,
                "images_per_cpu_s": images / shard_cpu,
                "cpu_ratio": synth_cpu / shard_cpu,
                "pipeline_only_images_per_s": epoch * tc.batch_size / pipe_s,
                "pipeline_only_images_per_cpu_s": epoch * tc.batch_size / pipe_cpu,
            }
            log.info(
                "training run %d, %d decode threads: shards %.1f images/s, synthetic %.1f images/s, ratio %.3f "
                "(CPU time: %.3f), "
                "pipeline alone %.1f images/s",
                run + 1,
                threads,
                a["images_per_s"],
                images / synth_s,
                a["ratio"],
                a["cpu_ratio"],
                a["pipeline_only_images_per_s"],
            )
        runs.append(figures)
    macs = count_macs(sym, (3, size, size))
    return {
        "width": tc.width,
        "input_size": size,
        "batch_size": tc.batch_size,
        "timed_batches": count,
        "batches_per_epoch": epoch,
        "warmup_batches": args.warmup,
        "decode_threads": thread_counts,
        "classes": shards.num_classes,
        "train_records": shards.train_records,
        "store_size": shards.image_size,
        "macs_per_image": macs,
        "runs": _rounded(runs),
        "ratio_mean": {
            str(t): round(sum(r["shards"][str(t)]["ratio"] for r in runs) / len(runs), 3) for t in thread_counts
        },
        "cpu_ratio_mean": {
            str(t): round(sum(r["shards"][str(t)]["cpu_ratio"] for r in runs) / len(runs), 3) for t in thread_counts
        },
    }


def bench_recipe(args: argparse.Namespace, shards_dir: Path) -> dict[str, Any]:
    """The training recipe's cost per image: train()'s epoch loop and the softmax_multi objective against the bare step.

    Three arms on one in-memory batch (so only the training step differs), alternated:
    **bare**: ``forward_backward`` + ``update`` + ``update_metric`` of the sigmoid network (the loop
    of the earlier recipe); **loop**: the same network through :func:`softlines_attr.model.epoch.run_epoch`
    (what train() runs: per-batch cross-entropy for the progress lines and the epoch's mean loss);
    **recipe**: the default recipe's network (``softmax_multi`` head, BN without weight decay, warm-up +
    cosine schedule) through ``run_epoch``. The figures are the ratios loop/bare and recipe/bare of
    images/s (target: recipe >= 0.9x, i.e. no more than 10 % slower per image at the same width).
    """
    import mxnet as mx
    import numpy as np

    from softlines_attr.model.epoch import run_epoch
    from softlines_attr.model.inception_bn import DATA_NAME, DEFAULT_HEAD, inception_bn
    from softlines_attr.model.losses import LossConfig
    from softlines_attr.model.manifest import Head
    from softlines_attr.model.metrics import train_metric
    from softlines_attr.model.network import build_network
    from softlines_attr.model.optim import lr_scheduler, no_decay_names
    from softlines_attr.shard.contract import read_shard_set
    from softlines_attr.train_config import TrainConfig

    shards = read_shard_set(shards_dir)
    classes = shards.num_classes
    size = args.input_size
    count = args.batches or -(-shards.train_records // args.batch_size)
    tc = TrainConfig(epochs=1, batch_size=args.batch_size, width=args.width, input_size=size, log_every=50)
    label_name = f"{DEFAULT_HEAD}_label"
    mx.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    labels = np.zeros((tc.batch_size, classes), np.float32)
    labels[np.arange(tc.batch_size)[:, None], rng.integers(0, classes, (tc.batch_size, 4))] = 1.0
    batch = mx.io.DataBatch(
        data=[mx.nd.array(rng.normal(0, 1, (tc.batch_size, 3, size, size)).astype(np.float32))],
        label=[mx.nd.array(labels)],
    )

    def module(sym: mx.sym.Symbol, scheduler: Any = None) -> mx.mod.Module:
        mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=[label_name], context=[mx.cpu()])
        mod.bind(
            data_shapes=[(DATA_NAME, (tc.batch_size, 3, size, size))],
            label_shapes=[(label_name, (tc.batch_size, classes))],
        )
        mod.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
        params = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4, "rescale_grad": 1.0 / tc.batch_size}
        if scheduler is not None:
            params["lr_scheduler"] = scheduler
        mod.init_optimizer(kvstore="local", optimizer="sgd", optimizer_params=params)
        return mod

    sigmoid = module(inception_bn(classes, tc.width, multi_label=True, head=DEFAULT_HEAD))
    head = Head(DEFAULT_HEAD, tuple(f"w{i}" for i in range(classes)))
    recipe_sym = build_network([head], LossConfig(), base=None, width=tc.width, masked=False, loss="softmax_multi")
    recipe = module(
        recipe_sym,
        lr_scheduler("cosine", base_lr=0.01, epochs=args.repeat * 4 + 4, batches_per_epoch=count, warmup_epochs=1),
    )
    recipe._optimizer.set_wd_mult({n: 0.0 for n in no_decay_names(recipe_sym.list_arguments())})

    def forever() -> Iterator[mx.io.DataBatch]:
        while True:
            yield batch

    def bare() -> None:
        metric = train_metric(True)
        for _, b in zip(range(count), forever()):
            sigmoid.forward_backward(b)
            sigmoid.update()
            sigmoid.update_metric(metric, b.label)

    arms: dict[str, Callable[[], Any]] = {
        "bare": bare,
        "loop": lambda: run_epoch(sigmoid, forever(), train_metric(True), 0, tc, count, "sigmoid", None),
        "recipe": lambda: run_epoch(recipe, forever(), train_metric(True), 0, tc, count, "softmax_multi", None),
    }
    for fn in arms.values():  # operator set-up before any clock starts
        fn()
    mx.nd.waitall()
    runs = []
    for run in range(args.repeat):
        row = {}
        for name, fn in arms.items():
            mx.nd.waitall()
            started, cpu = time.perf_counter(), time.process_time()
            fn()
            mx.nd.waitall()
            row[name] = (time.perf_counter() - started, time.process_time() - cpu)
        figures = {
            "bare_images_per_s": count * tc.batch_size / row["bare"][0],
            "loop_ratio": row["bare"][0] / row["loop"][0],
            "loop_cpu_ratio": row["bare"][1] / row["loop"][1],
            "recipe_ratio": row["bare"][0] / row["recipe"][0],
            "recipe_cpu_ratio": row["bare"][1] / row["recipe"][1],
        }
        log.info(
            "recipe run %d: bare %.1f images/s; loop/bare %.3f (CPU %.3f); recipe/bare %.3f (CPU %.3f)",
            run + 1,
            figures["bare_images_per_s"],
            figures["loop_ratio"],
            figures["loop_cpu_ratio"],
            figures["recipe_ratio"],
            figures["recipe_cpu_ratio"],
        )
        runs.append(figures)
    mean = {
        k: round(sum(r[k] for r in runs) / len(runs), 3)
        for k in ("loop_ratio", "loop_cpu_ratio", "recipe_ratio", "recipe_cpu_ratio")
    }
    return {
        "width": tc.width,
        "input_size": size,
        "batch_size": tc.batch_size,
        "classes": classes,
        "timed_batches": count,
        "runs": _rounded(runs),
        "mean": mean,
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def bench_forward(args: argparse.Namespace) -> dict[str, Any]:
    """Forward (inference) images/s and GMAC/s of full-width Inception-BN per batch size."""
    import mxnet as mx
    import numpy as np

    from softlines_attr.model.inception_bn import DATA_NAME, count_macs, count_parameters, inception_bn

    size = args.forward_size
    sym = inception_bn(FORWARD_CLASSES, 1.0)
    macs = count_macs(sym, (3, size, size))
    init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    rng = np.random.default_rng(args.seed)
    executors, inputs = {}, {}
    for bs in args.forward_batch_sizes:
        exe = sym.simple_bind(mx.cpu(), grad_req="null", **{DATA_NAME: (bs, 3, size, size)})
        for name, arr in exe.arg_dict.items():
            if name != DATA_NAME and not name.endswith("_label"):
                init(mx.init.InitDesc(name), arr)
        for name, arr in exe.aux_dict.items():  # BN moving statistics: mean 0, variance 1
            arr[:] = 1.0 if name.endswith("moving_var") else 0.0
        executors[bs] = exe
        inputs[bs] = [mx.nd.array(rng.normal(0, 1, (bs, 3, size, size)).astype(np.float32)) for _ in range(2)]
    results: dict[int, list[float]] = {bs: [] for bs in args.forward_batch_sizes}
    for run in range(args.repeat):
        for bs in args.forward_batch_sizes:
            exe, data = executors[bs], inputs[bs]
            exe.forward(is_train=False, **{DATA_NAME: data[0]})
            exe.outputs[0].wait_to_read()
            n = max(2, -(-args.forward_images // bs))
            started = time.perf_counter()
            for i in range(n):
                exe.forward(is_train=False, **{DATA_NAME: data[i % 2]})
                exe.outputs[0].wait_to_read()
            rate = n * bs / (time.perf_counter() - started)
            results[bs].append(rate)
            log.info("forward run %d, batch %d: %.1f images/s, %.1f GMAC/s", run + 1, bs, rate, rate * macs / 1e9)
    return {
        "width": 1.0,
        "input_size": size,
        "classes": FORWARD_CLASSES,
        "parameters": count_parameters(sym, (3, size, size)),
        "macs_per_image": macs,
        "batch_sizes": {
            str(bs): {
                "images_per_s_runs": [round(r, 2) for r in rates],
                "images_per_s_best": round(max(rates), 2),
                "gmac_per_s_best": round(max(rates) * macs / 1e9, 1),
                "ms_per_batch_best": round(1000 * bs / max(rates), 1),
            }
            for bs, rates in results.items()
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=float, default=0.25, help="training network width multiplier (default 0.25)")
    parser.add_argument("--input-size", type=int, default=224, help="training input side (default 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument(
        "--batches",
        type=int,
        default=0,
        help="timed training batches per arm and run (default 0: one epoch of the train split, every image "
        "decoded once)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed training steps before the first timed run (default 2)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each measurement, alternating the arms (default 2)"
    )
    parser.add_argument(
        "--threads",
        type=lambda v: [int(t) for t in v.split(",")],
        default=None,
        help="ImageRecordIter decode threads, comma-separated for one shards arm each (default: TrainConfig's)",
    )
    parser.add_argument("--forward-size", type=int, default=224, help="forward input side (default 224)")
    parser.add_argument(
        "--forward-batch-sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1, 8, 32],
        help="comma-separated forward batch sizes (default 1,8,32)",
    )
    parser.add_argument(
        "--forward-images", type=int, default=64, help="timed images per batch size and run (default 64)"
    )
    parser.add_argument(
        "--omp-threads", type=int, default=0, help="set OMP_NUM_THREADS before importing MXNet (default: leave as is)"
    )
    parser.add_argument("--n", type=int, default=1000, help="products in the generated catalog (default 1000)")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] for the label and shard jobs (default 2)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cache", type=Path, default=HERE / ".cache", help="where the catalog and shards are kept")
    parser.add_argument("--skip-train", action="store_true", help="forward only")
    parser.add_argument("--skip-forward", action="store_true", help="training only")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "bench_train.json", help="JSON result file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write the JSON result."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.omp_threads:
        os.environ["OMP_NUM_THREADS"] = str(args.omp_threads)
    import mxnet as mx

    started_at = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "command": " ".join(
            [".venv/bin/python", "benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started_utc": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} nproc={os.cpu_count()}, python {platform.python_version()}, mxnet "
        f"{mx.__version__}",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset: MXNet default)"),
        "MXNET_CPU_WORKER_NTHREADS": os.environ.get("MXNET_CPU_WORKER_NTHREADS", "(unset: 1)"),
        "mkldnn": mx.runtime.Features().is_enabled("MKLDNN"),
    }
    shards_dir = None
    if not args.skip_train:
        shards_dir = ensure_shards(args.cache / f"bench_train_n{args.n}_s{args.seed}", args.n, args.seed, args.cores)
        result["shards"] = str(shards_dir.relative_to(REPO) if shards_dir.is_relative_to(REPO) else shards_dir)
    result["load_average_start"] = load_average()
    if shards_dir is not None:
        result["training"] = bench_training(args, shards_dir)
        result["recipe"] = bench_recipe(args, shards_dir)
    if not args.skip_forward:
        result["forward"] = bench_forward(args)
    result["load_average_end"] = load_average()
    result["seconds"] = round((dt.datetime.now(dt.UTC) - started_at).total_seconds(), 1)

    print(
        f"machine: {result['machine']}; OMP_NUM_THREADS={result['OMP_NUM_THREADS']}, "
        f"MXNET_CPU_WORKER_NTHREADS={result['MXNET_CPU_WORKER_NTHREADS']}; load {result['load_average_start']} -> "
        f"{result['load_average_end']}"
    )
    if "training" in result:
        t = result["training"]
        print(
            f"\ntraining: width {t['width']} at {t['input_size']}, batch {t['batch_size']}, {t['timed_batches']} "
            f"timed batches "
            f"(an epoch: {t['batches_per_epoch']}), {t['classes']} classes; shards = record_iter with N decode threads"
        )
        print(
            "| run | decode threads | shards images/s | synthetic images/s | ratio | shards / synthetic images "
            "per CPU-s | CPU ratio | pipeline alone images/s |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for i, r in enumerate(t["runs"], 1):
            for threads, a in r["shards"].items():
                print(
                    f"| {i} | {threads} | {a['images_per_s']:.1f} | {r['synthetic_images_per_s']:.1f} | "
                    f"{a['ratio']:.2f}x "
                    f"| {a['images_per_cpu_s']:.1f} / {r['synthetic_images_per_cpu_s']:.1f} | "
                    f"{a['cpu_ratio']:.2f}x | {a['pipeline_only_images_per_s']:.1f} |"
                )
    if "recipe" in result:
        r = result["recipe"]
        print(
            f"\nrecipe: width {r['width']} at {r['input_size']}, batch {r['batch_size']}, {r['classes']} classes, "
            f"{r['timed_batches']} batches per arm, in-memory batch"
        )
        print("| run | bare step images/s | train() loop / bare | CPU | softmax_multi recipe / bare | CPU |")
        print("|---:|---:|---:|---:|---:|---:|")
        for i, x in enumerate(r["runs"], 1):
            print(
                f"| {i} | {x['bare_images_per_s']:.1f} | {x['loop_ratio']:.3f} | {x['loop_cpu_ratio']:.3f} | "
                f"{x['recipe_ratio']:.3f} | {x['recipe_cpu_ratio']:.3f} |"
            )
        print(
            f"mean: loop {r['mean']['loop_ratio']:.3f}x (CPU {r['mean']['loop_cpu_ratio']:.3f}), recipe "
            f"{r['mean']['recipe_ratio']:.3f}x (CPU {r['mean']['recipe_cpu_ratio']:.3f})"
        )
    if "forward" in result:
        f = result["forward"]
        print(
            f"\nforward: full width, {f['input_size']}x{f['input_size']}, {f['parameters']:,} parameters, "
            f"{f['macs_per_image'] / 1e9:.3f} GMAC/image"
        )
        print("| batch | images/s (runs) | best images/s | ms/batch | GMAC/s |")
        print("|---:|---|---:|---:|---:|")
        for bs, r in f["batch_sizes"].items():
            print(
                f"| {bs} | {', '.join(f'{v:.1f}' for v in r['images_per_s_runs'])} | {r['images_per_s_best']:.1f} "
                f"| {r['ms_per_batch_best']} | {r['gmac_per_s_best']} |"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
