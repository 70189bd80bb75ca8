"""Benchmark: the scoring job against the raw forward limit, a naive job, and INT8.

    .venv/bin/python benchmarks/bench_score.py                  # 320 images, full width at 224, all cores
    .venv/bin/python benchmarks/bench_score.py --n 400 --repeat 2 --batch 16
    .venv/bin/python benchmarks/bench_score.py --n 2000 --repeat 3 --skip-naive --skip-int8 --overlap-arm
                                                # + the job with score.decode_overlap = "on", arms rotated
    .venv/bin/python benchmarks/bench_score.py --n 2000 --repeat 2 --skip-naive --skip-int8 --s3-latency-ms 0 20
                                                # + the job and the peer on the photos behind a loopback S3

What it does, in one command:

1. Generates ``--n`` realistic product photos once (``make-catalog`` with 1000x1333 images, about
   75 KB JPEGs, dresses only; the generator's minimum of one bad row of each kind stays in, and the
   job puts those rows in its errors table), reused by later runs from ``benchmarks/.cache``.
2. Builds full-width Inception-BN bundles at ``--input-size`` (Xavier weights and non-trivial BN
   statistics; speed does not depend on the values): one multi-head bundle with a head per
   taxonomy attribute, five single-attribute bundles, and an INT8 copy of the multi-head bundle
   (``softlines-attr quantize``'s library, calibrated on 32 of the images).
3. **Forward limit**: decodes every image once (the scoring preprocessing), then times
   :class:`Predictor.predict` on the preloaded tensors in this process (``--cores`` OpenMP threads),
   and once more with one thread, times the cores (what ``local[C]``'s single-threaded tasks can reach
   together when one process's OpenMP threads scale poorly).
4. **The job**: ``run_score_job`` on ``local[C]`` with the multi-head bundle (rows scored / the
   job's wall time, catalog read and Parquet commit included; the session is started and warmed
   before); the **naive job**: the same job run once per single-attribute bundle, in turn (what
   scoring looks like without a shared backbone); and the job with the INT8 bundle.
5. Prints images/s for each (the jobs both end to end and over their scoring phase alone: the
   tasks that fetch, decode and run the network, without the fixed cost of the job's other Spark
   jobs, which a catalog of millions pays once) and the ratios the issue asks for (job / forward limit, job / naive,
   INT8 / fp32), and each run's peak Python-worker memory (``peak_rss_mb`` from the run summary)
   and the JVM's peak resident memory (``VmHWM``).

6. With ``--s3-latency-ms L [L ...]``, per repeat and per L, the **job and the peer once more on S3**
   (``score_s3.py``): the same catalog with each ``image_uri`` rewritten to ``s3://bench-photos/<key>``
   (``catalog-s3.parquet`` beside the cached one, bad rows included), the photos served by a loopback
   S3 server (``s3_server.py``) that waits L ms before every response (first-byte latency, no CPU). The
   job fetches on ``score.fetch_threads`` threads ahead of the forward pass; the peer GETs each row's
   object in turn inside its predict function. Per L: images/s of both end to end and their ratio, the
   GETs the server answered (checked against the rows each arm fetched), the output check job vs peer,
   and the job's errors table against the local-file run's (same asins, stages and reasons).

Repeats alternate the measurements (A B C A B C) so that machine noise hits all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

CATALOG_CONF = """[catalog]
min_size = [1000, 1333]
max_size = [1000, 1333]
bad_row_share = 0.0
non_dress_share = 0.0
"""


def _conf(cache: Path, input_size: int, batch: int):
    from softlines_attr.config import load_config

    path = cache / f"bench-score-{input_size}-{batch}.toml"
    path.write_text(
        CATALOG_CONF
        + f"\n[images]\ninput_size = {input_size}\nstore_size = {max(input_size, round(input_size * 256 / 224))}\n"
        + f"\n[score]\nbatch_size = {batch}\nrows_per_task = 100000\n"
    )
    return load_config(conf_path=path)


def make_catalog(cache: Path, conf, n: int) -> Path:
    """The generated catalog of ``n`` 1000x1333 product photos (cached)."""
    from softlines_attr.synthetic import generate_catalog

    out = cache / f"score-catalog-{n}"
    if (out / "catalog.parquet").exists() and not _images_in_place(out):
        _relocate(out)
    if not (out / "catalog.parquet").exists() or not _images_in_place(out):
        print(f"generating {n} product photos under {out} ...", flush=True)
        generate_catalog(out, conf, n=n, seed=7)
    return out


def _images_in_place(catalog: Path) -> bool:
    """Whether the cached catalog's photos are where its rows say (a moved cache keeps the old paths)."""
    import pyarrow.parquet as pq

    uris = [u for u in pq.read_table(catalog / "catalog.parquet", columns=["image_uri"]).column(0).to_pylist() if u]
    found = sum(Path(u).exists() for u in uris[:50])
    return found >= len(uris[:50]) // 2


def _relocate(catalog: Path) -> None:
    """Point a moved cached catalog's rows at its photos' new place (the part of each path from
    ``score-catalog-<n>/`` on is kept), when every photo that was there is found there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(catalog / "catalog.parquet")
    marker = f"/{catalog.name}/"
    uris = table.column("image_uri").to_pylist()
    moved = [str(catalog.resolve()) + "/" + u.split(marker, 1)[1] if u and marker in u else u for u in uris]
    if not any(u and Path(u).exists() for u in moved):
        return
    print(f"the cached catalog {catalog} moved: its rows now name the photos under it", flush=True)
    column = table.schema.get_field_index("image_uri")
    table = table.set_column(column, "image_uri", pa.array(moved, pa.string()))
    pq.write_table(table, catalog / "catalog.parquet")


def _random_params(sym, input_size: int, seed: int):
    import mxnet as mx
    import numpy as np

    from softlines_attr.model.inception_bn import DATA_NAME

    mx.random.seed(seed)
    labels = [n for n in sym.list_arguments() if n.endswith("_label")]
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=labels, context=mx.cpu())
    mod.bind(
        data_shapes=[(DATA_NAME, (1, 3, input_size, input_size))],
        label_shapes=[(n, (1,)) for n in labels],
        for_training=False,
    )
    mod.init_params(mx.init.Xavier(magnitude=2.0))
    arg, aux = mod.get_params()
    rng = np.random.default_rng(seed)
    for name, value in aux.items():  # BN statistics of a trained network, roughly
        shape = value.shape
        aux[name] = mx.nd.array(
            rng.uniform(0.5, 1.5, shape) if name.endswith("moving_var") else rng.normal(0, 0.1, shape)
        )
    return arg, aux


def make_bundles(cache: Path, conf, width: float, input_size: int, catalog: Path) -> dict[str, object]:
    """Multi-head, five single-attribute and INT8 bundles (cached by width and size)."""
    import mxnet as mx

    from softlines_attr.model.bundle import save_bundle
    from softlines_attr.model.inception_bn import classification_head, inception_bn_features
    from softlines_attr.model.manifest import Head

    root = cache / f"score-models-w{width}-s{input_size}"
    attrs = conf.taxonomy.attributes
    multi, singles, int8 = root / "multi", {a.name: root / "single" / a.name for a in attrs}, root / "int8"
    if not multi.exists():
        features = inception_bn_features(width)
        heads = [Head(a.name, tuple(a.classes), attribute=a.name) for a in attrs]
        sym = mx.sym.Group([classification_head(features, len(h.classes), h.name) for h in heads])
        arg, aux = _random_params(sym, input_size, seed=1)
        save_bundle(multi, sym, arg, aux, heads=heads, images=conf.images, thresholds={h.name: 0.0 for h in heads})
        for head in heads:  # the same backbone with one head each: the naive job's models
            sym1 = classification_head(inception_bn_features(width), len(head.classes), head.name)
            keep = set(sym1.list_arguments())
            save_bundle(
                singles[head.name],
                sym1,
                {k: v for k, v in arg.items() if k in keep},
                aux,
                heads=[head],
                images=conf.images,
            )
    if not int8.exists():
        from softlines_attr.model.bundle import load_bundle
        from softlines_attr.model.quantize import quantize_bundle

        bundle = load_bundle(multi)
        quantize_bundle(
            bundle, decode_all(catalog, bundle, conf, limit=32)[0], int8, batch_size=16, source=str(catalog)
        )
    return {"multi": multi, "singles": singles, "int8": int8}


def decode_all(catalog: Path, bundle, conf, limit: int | None = None):
    """Every catalog image through the bundle's scoring preprocessing; returns (tensors, [(asin, uri)] decoded).

    The generator's few bad rows on purpose (missing, corrupt) are left out, as the job errors them.
    """
    import numpy as np
    import pyarrow.parquet as pq

    from softlines_attr.images import ImageError

    prep = bundle.manifest.preprocessing
    table = pq.read_table(catalog / "catalog.parquet", columns=["asin", "image_uri"])
    out, rows = [], []
    for asin, uri in zip(table.column("asin").to_pylist(), table.column("image_uri").to_pylist()):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(prep.network_input(Path(uri).read_bytes(), conf.images.max_pixels))
        except (TypeError, OSError, ImageError):
            continue
        rows.append((asin, uri))
    if not out:
        raise SystemExit(f"no photo of {catalog / 'catalog.parquet'} could be read; expected its image files in place")
    return np.stack(out), rows


def forward_rate(bundle, tensors, batch: int, threads: int) -> float:
    """Images/s of the bound predictor on preloaded tensors with ``threads`` OpenMP threads (one warm-up batch
    first)."""
    from softlines_attr.model.predictor import Predictor
    from softlines_attr.score.model_cache import set_threads

    set_threads(threads)
    pred = Predictor(bundle, batch)
    pred.predict(tensors[:batch])
    start = time.perf_counter()
    pred.predict(tensors)
    return len(tensors) / (time.perf_counter() - start)


def _jvm_hwm_mb(spark) -> float | None:
    pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def job_rate(spark, conf, catalog_file: Path, models: list[Path], out: Path) -> tuple[float, dict]:
    """Rows scored per second of wall time for one run of the scoring job on the catalog Parquet ``catalog_file``,
    and its summary."""
    from softlines_attr.score.job import ScoreJob, run_score_job

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = run_score_job(
        spark,
        conf,
        ScoreJob(catalog_path=str(catalog_file), model_dirs=tuple(map(str, models)), out_dir=str(out)),
    )
    seconds = time.perf_counter() - start
    return summary["rows_scored"] / seconds, summary


def score_phase_rate(summary: dict) -> float:
    """Rows scored per second of the job's scoring phase (its tasks: fetch, decode, forward), the steady-state rate."""
    return summary["rows_scored"] / summary["phase_seconds"]["score"]


def _job_arm(spark, conf, catalog_file, bundles, out, cores, rep, runs, cpu, profiles, memory, name="job") -> dict:
    """One run of the scoring job with the multi-head bundle into ``out``: its rates, CPU per image, profile and
    memory; returns its summary.

    ``name`` is ``job`` (the conf's ``score.decode_overlap``), ``job_overlap_on`` (the arm with
    ``--overlap-arm``: the fetch threads decode beside the forward pass) or ``job_s3_<L>ms`` (the photos on
    the loopback S3 with L ms of latency)."""
    key = "job_multi_head" if name == "job" else f"job_multi_head_{name.removeprefix('job_')}"
    rate, summary = job_rate(spark, conf, catalog_file, [bundles["multi"]], out)
    runs.setdefault(key, []).append(rate)
    runs.setdefault(f"{key}_score_phase", []).append(score_phase_rate(summary))
    prof = summary["profile_seconds"]
    prefix = name
    cpu.setdefault(f"{prefix}_task_cpu_ms_per_image", []).append(1000 * prof["task_cpu"] / summary["rows_scored"])
    cpu.setdefault(f"{prefix}_steady_cpu_ms_per_image", []).append(
        1000 * (prof["task_cpu"] - prof["model_load_cpu"]) / summary["rows_scored"]
    )
    profiles[f"repeat {rep + 1}" + ("" if name == "job" else f" {name}")] = {
        "ms_per_image": _per_image_ms(prof, summary["rows_scored"]),
        "score_phase_s": summary["phase_seconds"]["score"],
        "phase_seconds": summary["phase_seconds"],
        "tasks": summary["tasks"],
        "cores_busy": round(prof["task_cpu"] / (summary["phase_seconds"]["score"] * cores), 3),
        "model_cache": summary["model_cache"],
    }
    memory[key] = {"worker_peak_rss_mb": summary.get("peak_task_rss_mb")}
    return summary


def _s3_arms(spark, server, latency: float, rep: int, a: argparse.Namespace, ctx: dict, s3: dict) -> None:
    """The job and the peer once each (job first in even repeats, peer first in odd ones) on the photos behind
    ``server`` with ``latency`` ms of first-byte latency; their rates, the GETs the server answered against the
    rows each fetched, and (first repeat) the output check job vs peer and the job's errors against the local
    run's, into ``s3[<L>ms]`` (and the rates into ``ctx["runs"]``)."""
    from score_peer import compare_with_job, peer_run
    from score_s3 import driver_endpoint, error_rows, fetched_rows

    label = f"{latency:g}ms"
    fig = s3.setdefault(
        label,
        {
            "latency_ms": latency,
            "images_per_s": {"job": [], "peer": []},
            "job_score_phase_images_per_s": [],
            "steady_cpu_ms_per_image": {"job": [], "peer": []},
            "requests": [],
        },
    )
    runs, work, rows = ctx["runs"], ctx["work"], ctx["s3_rows"]
    server.latency_ms = latency
    served: dict[str, int] = {}
    fetched: dict[str, int] = {"peer": len(rows)}
    peer_out = None
    for arm in ("job", "peer") if rep % 2 == 0 else ("peer", "job"):
        server.reset()
        if arm == "job":
            with driver_endpoint(server.endpoint):
                summary = _job_arm(
                    spark,
                    ctx["conf"],
                    ctx["s3_file"],
                    ctx["bundles"],
                    work / f"multi-s3-{label}",
                    a.cores,
                    rep,
                    runs,
                    ctx["cpu"],
                    ctx["profiles"],
                    ctx["memory"],
                    f"job_s3_{label}",
                )
            fig["images_per_s"]["job"].append(runs[f"job_multi_head_s3_{label}"][-1])
            fig["job_score_phase_images_per_s"].append(runs[f"job_multi_head_s3_{label}_score_phase"][-1])
            fig["steady_cpu_ms_per_image"]["job"].append(ctx["cpu"][f"job_s3_{label}_steady_cpu_ms_per_image"][-1])
            fetched["job"] = fetched_rows(summary)
        elif not a.skip_peer:
            threads = max(1, (os.cpu_count() or 1) // a.cores)
            seconds, peer_out, peer_cpu = peer_run(
                spark,
                ctx["bundles"]["multi"],
                ctx["s3_file"],
                rows,
                a.batch,
                threads,
                a.cores,
                work / f"peer-s3-{label}",
                from_s3=True,
            )
            runs.setdefault(f"peer_predict_batch_udf_s3_{label}", []).append(len(rows) / seconds)
            fig["images_per_s"]["peer"].append(len(rows) / seconds)
            fig["steady_cpu_ms_per_image"]["peer"].append(peer_cpu["steady_cpu_ms_per_image"])
            ctx["cpu"].setdefault(f"peer_s3_{label}_cpu_ms_per_image", []).append(peer_cpu["cpu_ms_per_image"])
            ctx["cpu"].setdefault(f"peer_s3_{label}_steady_cpu_ms_per_image", []).append(
                peer_cpu["steady_cpu_ms_per_image"]
            )
        else:
            continue
        served[arm] = sum(server.requests().values())
    requests = {
        arm: {"served": served[arm], "rows_fetched": fetched[arm], "match": served[arm] == fetched[arm]}
        for arm in served
    }
    fig["requests"].append(requests)
    print(f"  S3 {label}, repeat {rep + 1}: GETs answered vs rows fetched: {requests}", flush=True)
    if peer_out is not None and "output_check_job_vs_peer" not in fig:
        from softlines_attr.io.commit import resolve_current

        job_rows = spark.read.parquet(f"{resolve_current(str(work / f'multi-s3-{label}'))}/attributes").collect()
        fig["output_check_job_vs_peer"] = compare_with_job(job_rows, peer_out, ctx["heads"])
    if "errors_vs_local_job" not in fig:
        local, remote = error_rows(spark, work / "multi"), error_rows(spark, work / f"multi-s3-{label}")
        fig["errors_vs_local_job"] = {
            "local": sorted(map(list, local), key=str),
            "s3": sorted(map(list, remote), key=str),
            "same_asins_stages_reasons": local == remote,
        }


def _s3_summary(s3: dict) -> None:
    """Per latency: the best rates, best job / best peer and the ratio per repeat (in place)."""
    for fig in s3.values():
        job, peer = fig["images_per_s"]["job"], fig["images_per_s"]["peer"]
        fig["best"] = {"job": max(job), "peer": max(peer) if peer else None}
        if peer:
            fig["job_end_to_end_over_peer"] = max(job) / max(peer)
            fig["job_over_peer_per_repeat"] = [j / p for j, p in zip(job, peer)]
        fig["requests_match_rows"] = all(r["match"] for rs in fig["requests"] for r in rs.values())


def _per_image_ms(profile: dict, rows: int) -> dict[str, float]:
    return {k: round(1000 * v / max(1, rows), 2) for k, v in profile.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=320, help="product photos (default 320; the issue's whole-job size 2000)"
    )
    parser.add_argument(
        "--width", type=float, default=1.0, help="Inception-BN width (default 1.0, the paper's network)"
    )
    parser.add_argument("--input-size", type=int, default=224, help="network input side (default 224)")
    parser.add_argument("--batch", type=int, default=16, help="scoring batch size (default 16)")
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count() or 1, help="local[C] task slots (default: all cores)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternating repetitions (default 1)")
    parser.add_argument("--skip-naive", action="store_true", help="do not run the naive five-model job")
    parser.add_argument("--skip-int8", action="store_true", help="do not run the INT8 forward and job")
    parser.add_argument("--skip-peer", action="store_true", help="do not run the predict_batch_udf peer")
    parser.add_argument(
        "--overlap-arm",
        action="store_true",
        help="also run the job with score.decode_overlap = 'on' (fetch threads decode beside the forward pass)",
    )
    parser.add_argument(
        "--s3-latency-ms",
        type=float,
        nargs="+",
        default=[],
        metavar="L",
        help="per L, also run the job and the peer on the photos behind a loopback S3 server that answers after L ms",
    )
    parser.add_argument(
        "--json", type=Path, default=HERE / "out" / "bench_score.json", help="where to write the figures"
    )
    args = parser.parse_args(argv)
    if any(lat < 0 for lat in args.s3_latency_ms):
        parser.error(f"--s3-latency-ms: expected latencies >= 0, found {args.s3_latency_ms}")

    cache = HERE / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    conf = _conf(cache, args.input_size, args.batch)
    catalog = make_catalog(cache, conf, args.n)
    bundles = make_bundles(cache, conf, args.width, args.input_size, catalog)
    catalog_file = catalog / "catalog.parquet"

    from score_limit import process_limit, stage_costs
    from score_peer import compare_with_job, peer_run

    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.spark import build_session

    multi = load_bundle(bundles["multi"])
    tensors, good_rows = decode_all(catalog, multi, conf)
    prep = multi.manifest.preprocessing
    stages = stage_costs([u for _, u in good_rows[:64]], prep, conf.images.max_pixels)
    load_start = open("/proc/loadavg").read().split()[:3]
    spark = build_session(conf.spark, app_name="bench-score", master=f"local[{args.cores}]")
    spark.range(4).count()  # JVM and Python workers up before any timing
    runs: dict[str, list[float]] = {}
    memory: dict[str, dict] = {}
    profiles: dict[str, dict] = {}
    cpu: dict[str, list[float]] = {}
    work = HERE / ".cache" / "score-out"
    check: dict = {}
    s3: dict[str, dict] = {}
    server = None
    stack = contextlib.ExitStack()
    if args.s3_latency_ms:
        from s3_server import S3Server
        from score_s3 import BUCKET, s3_rows, worker_env, write_s3_catalog

        server = stack.enter_context(S3Server(catalog, BUCKET))
        worker_env(spark, server.endpoint)  # before the first Python worker: every arm shares the same workers
        s3_ctx = {
            "runs": runs, "cpu": cpu, "profiles": profiles, "memory": memory, "work": work, "conf": conf,
            "bundles": bundles, "s3_file": write_s3_catalog(catalog), "s3_rows": s3_rows(good_rows, catalog),
            "heads": {h.name: tuple(h.classes) for h in multi.manifest.heads},
        }  # fmt: skip
    try:
        for rep in range(args.repeat):
            limit = process_limit(
                bundles["multi"], [u for _, u in good_rows], tensors[: 4 * args.batch], args.batch, args.cores, work
            )
            for key in ("forward_1thread_x_cores", "decode_forward_1thread_x_cores"):
                runs.setdefault(key, []).append(limit[key])
            for key in ("forward_cpu_ms_per_image", "decode_forward_cpu_ms_per_image"):
                cpu.setdefault(key, []).append(limit[key])
            peer_out = None
            # the job and the peer alternate their order per repeat, so a load that changes during the run
            # does not always favour the same one
            arms = ["job", "peer"] + (["job_overlap_on"] if args.overlap_arm else [])
            for arm in arms[rep % len(arms) :] + arms[: rep % len(arms)]:  # rotated per repeat
                if arm.startswith("job"):
                    arm_conf = conf
                    if arm == "job_overlap_on":
                        arm_conf = replace(conf, score=replace(conf.score, decode_overlap="on"))
                    _job_arm(
                        spark,
                        arm_conf,
                        catalog_file,
                        bundles,
                        work / "multi",
                        args.cores,
                        rep,
                        runs,
                        cpu,
                        profiles,
                        memory,
                        arm,
                    )
                elif not args.skip_peer:
                    threads = max(1, (os.cpu_count() or 1) // args.cores)  # the job's threads_per_task locally
                    seconds, peer_out, peer_cpu = peer_run(
                        spark, bundles["multi"], catalog_file, good_rows, args.batch, threads, args.cores, work / "peer"
                    )
                    runs.setdefault("peer_predict_batch_udf", []).append(len(good_rows) / seconds)
                    cpu.setdefault("peer_cpu_ms_per_image", []).append(peer_cpu["cpu_ms_per_image"])
                    cpu.setdefault("peer_steady_cpu_ms_per_image", []).append(peer_cpu["steady_cpu_ms_per_image"])
            if peer_out is not None and not check:
                from softlines_attr.io.commit import resolve_current

                job_rows = spark.read.parquet(f"{resolve_current(str(work / 'multi'))}/attributes").collect()
                check = compare_with_job(job_rows, peer_out, {h.name: tuple(h.classes) for h in multi.manifest.heads})
            for latency in args.s3_latency_ms:
                _s3_arms(spark, server, latency, rep, args, s3_ctx, s3)
            if not args.skip_int8:
                int8 = load_bundle(bundles["int8"])
                runs.setdefault("forward_int8_1process", []).append(forward_rate(int8, tensors, args.batch, args.cores))
                rate, summary = job_rate(spark, conf, catalog_file, [bundles["int8"]], work / "int8")
                runs.setdefault("job_int8", []).append(rate)
                runs.setdefault("job_int8_score_phase", []).append(score_phase_rate(summary))
                memory["job_int8"] = {"worker_peak_rss_mb": summary.get("peak_task_rss_mb")}
            if not args.skip_naive:
                start = time.perf_counter()
                score_seconds = 0.0
                for name, path in bundles["singles"].items():
                    _, single = job_rate(spark, conf, catalog_file, [path], work / f"naive-{name}")
                    score_seconds += single["phase_seconds"]["score"]
                runs.setdefault("job_naive_five_models", []).append(
                    single["rows_scored"] / (time.perf_counter() - start)
                )
                runs.setdefault("job_naive_five_models_score_phase", []).append(single["rows_scored"] / score_seconds)
            print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
            print(f"  profile {profiles[f'repeat {rep + 1}']}", flush=True)
        jvm_hwm = _jvm_hwm_mb(spark)
    finally:
        spark.stop()
        stack.close()
    _s3_summary(s3)
    best = {k: max(v) for k, v in runs.items()}
    fwd_ms = 1000 * args.cores / best["forward_1thread_x_cores"]  # one core's forward per image
    formula_limit = args.cores / ((fwd_ms + stages["decode"] + stages["resize"] + stages["tensor"]) / 1000)
    limit = best["decode_forward_1thread_x_cores"]
    ratios = {
        "job score phase / limit (target >= 0.8)": best["job_multi_head_score_phase"] / limit,
        "job end to end / limit (target >= 0.7 at 2000 photos)": best["job_multi_head"] / limit,
        "job score phase / formula limit": best["job_multi_head_score_phase"] / formula_limit,
        "limit CPU per image / job CPU per image": min(cpu["decode_forward_cpu_ms_per_image"])
        / min(cpu["job_task_cpu_ms_per_image"]),
    }
    if "peer_cpu_ms_per_image" in cpu:
        ratios["peer CPU per image / job CPU per image (steady, > 1: the job does less work)"] = min(
            cpu["peer_steady_cpu_ms_per_image"]
        ) / min(cpu["job_steady_cpu_ms_per_image"])
    if "peer_predict_batch_udf" in best:
        ratios["job end to end / peer (target > 1)"] = best["job_multi_head"] / best["peer_predict_batch_udf"]
        ratios["job score phase / peer"] = best["job_multi_head_score_phase"] / best["peer_predict_batch_udf"]
        per_repeat = [j / p for j, p in zip(runs["job_multi_head"], runs["peer_predict_batch_udf"])]
        ratios["job end to end / peer, worst repeat"] = min(per_repeat)
    if "job_multi_head_overlap_on" in best:
        ratios["job (decode_overlap auto) / job (on), end to end"] = (
            best["job_multi_head"] / best["job_multi_head_overlap_on"]
        )
        ratios["job (auto) / job (on), score phase"] = (
            best["job_multi_head_score_phase"] / best["job_multi_head_overlap_on_score_phase"]
        )
    if "job_int8" in best:
        ratios["job_int8 / job_multi_head"] = best["job_int8"] / best["job_multi_head"]
    if "job_naive_five_models" in best:
        ratios["job_multi_head / job_naive_five_models"] = best["job_multi_head"] / best["job_naive_five_models"]
        ratios["score phases: multi_head / naive_five_models"] = (
            best["job_multi_head_score_phase"] / best["job_naive_five_models_score_phase"]
        )
    result = {
        "n": args.n,
        "rows_scored": len(good_rows),
        "width": args.width,
        "input_size": args.input_size,
        "batch": args.batch,
        "cores": args.cores,
        "repeat": args.repeat,
        "images_per_s": runs,
        "best": best,
        "formula_limit": formula_limit,
        "stage_ms_per_image_one_thread": stages,
        "cpu_ms_per_image": cpu,
        "job_profiles": profiles,
        "ratios": ratios,
        "output_check_job_vs_peer": check,
        "s3": s3,
        "memory": memory,
        "jvm_peak_rss_mb": jvm_hwm,
        "loadavg_start": load_start,
        "loadavg_end": open("/proc/loadavg").read().split()[:3],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'measurement':<36}{'images/s (best)':>16}")
    for k, v in best.items():
        print(f"{k:<36}{v:>16.2f}")
    print(f"{'formula limit':<36}{formula_limit:>16.2f}")
    print(f"stage costs, ms per image on one thread: {stages}")
    print(f"CPU ms per image: {cpu}")
    for k, v in ratios.items():
        print(f"{k:<60}{v:>8.2f}x")
    print(f"job output vs peer: {check}")
    for label, fig in s3.items():
        ratio = fig.get("job_end_to_end_over_peer")
        print(
            f"S3 {label}: job {fig['best']['job']:.2f} images/s, peer {fig['best']['peer'] or float('nan'):.2f}, "
            f"job / peer {ratio if ratio is not None else float('nan'):.2f}x (per repeat "
            f"{[round(r, 2) for r in fig.get('job_over_peer_per_repeat', [])]}); GETs answered == rows fetched: "
            f"{fig['requests_match_rows']} {fig['requests']}; job vs peer: {fig.get('output_check_job_vs_peer')}; "
            f"errors as with local files: {fig['errors_vs_local_job']['same_asins_stages_reasons']}"
        )
    print(
        f"memory: {memory}; JVM peak RSS {jvm_hwm} MB; load {result['loadavg_start']} -> {result['loadavg_end']}; "
        f"figures in {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
