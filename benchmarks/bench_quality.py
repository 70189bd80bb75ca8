"""Benchmark: the paper's method end to end on a real catalog: Table 3 and a learning curve, on the held-out val split.

What it measures: whether a base model trained on title words makes the refined attribute models
better than the same network trained from scratch (the paper's Table 3; issue 10), and how that
changes with the number of tagged products (the idea of the paper's Table 6). Every number is on
the **held-out val split** of the label job (split by parent), which is never trained on (the
recipe's defaults were chosen on it: docs/MODEL.md calls these dev numbers);
the val products are the same for every tagged-set size.

    .venv/bin/python benchmarks/bench_quality.py                       # the real dev set
    (../shared/data/myntra-dev); see "Time" below
    .venv/bin/python benchmarks/bench_quality.py --quick               # smoke run: base 1 epoch, refine 2, sizes
    200,all
    .venv/bin/python benchmarks/bench_quality.py --generated 1000      # the project's generated dresses instead
    .venv/bin/python benchmarks/bench_quality.py --base-args "--loss softmax" --refine-args "--backbone-lr-mult 1"
    .venv/bin/python benchmarks/bench_quality.py --write-docs          # also write the results into docs/MODEL.md

Pipeline (each stage a ``python -m softlines_attr.cli <stage>`` subprocess, its stdout/stderr in
``<work>/logs/``, so memory is freed between stages and a failure names its log):

1. **data**: ``--myntra DIR`` (default ``../shared/data/myntra-dev`` beside the repository): the
   adapter (``benchmarks/quality_data.py``) reads ``styles.csv`` and writes into the work folder a
   catalog Parquet (asin = id, parent = asin, title = productDisplayName, image_uri = the dev set's
   JPEG), a tags Parquet for ``article_type``, ``base_colour``, ``usage`` (lower_snake_case labels;
   classes with fewer than ``--min-class-count`` tagged products folded out, counted) and a taxonomy
   TOML. Or ``--generated N``: ``softlines-attr make-catalog`` (dresses, five attributes). Either way
   a conf TOML (``--conf``) sets the small-image sizes (``--store-size``, ``--input-size``,
   ``--resize-mode``) and ``score.product_types = []``.
2. **labels**, **shard base** (``--vocab-size``), **train base** (``--base-args``), **prior** (the mAP of
   predicting each word's train frequency, from the shards' labels, unless train reports ``val_prior_map``).
3. per size in ``--sizes`` (tagged **train** products; nested seeded subsets; every tagged val
   product kept): **tags**, **shard multi** (``--attribute all``), **refine base** (from the base
   bundle) and **refine scratch** (``--base none``, same width and input size), ``--refine-args``.
4. Report: per size and attribute, accuracy and average per-class accuracy, refined vs scratch and
   the difference in points; means over attributes; chance (1 / classes) and the majority class's
   share of the val split; the base's val mAP against the prior; the learning curve; the wall time
   of every stage with its estimate. ``<work>/quality.json`` holds every number; the Markdown block
   is printed and, with ``--write-docs``, written into docs/MODEL.md between
   ``<!-- bench_quality:begin -->`` and ``<!-- bench_quality:end -->``.

Recipe options: ``--base-args`` / ``--refine-args`` are passed verbatim (``shlex``) to ``train`` /
``refine`` AFTER the benchmark's defaults (printed at the start), so a flag given there wins
(``--lr-step-epochs ""`` removes the default step). Width and input size are the benchmark's own
``--width`` / ``--input-size`` (scratch and base must match).

Time (default: base 10 epochs, refine 12, sizes 500,1000,2000,all; ~6,400 train images): about
1,200 s of training at ~250 images/s (width 0.25, 64 px, an otherwise idle 2-core machine) plus six
Spark stages (labels, base shards, four multi shards; ~40-60 s each when idle), so 25-30 min. The
estimate of every stage is printed before it runs and beside its wall time after (training from the
base's measured rate). Measured on 2026-12-01 at load average 8-16 (other jobs on the 2 cores):
``--quick`` on the dev set took 21.7 min, of which the four Spark stages 12.8 min (2.7-4.0 min
each) and training 74 s (base, 1 epoch, 120 images/s) + 3.3 min per refine of all tags (2 epochs);
under such load the default run takes well over 30 minutes.

Caching: each stage's key is a hash of its command, its upstream stages' keys and (for training)
the project's model code; a re-run with the same key skips the stage (``--fresh`` forces all). So a
``--base-args`` change retrains the base and the refines from it only; a ``--refine-args`` change
reruns the refines only; shards are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from quality_data import (  # noqa: E402 - importable only after sys.path holds benchmarks/
    DataError,
    Prepared,
    base_label_stats,
    multi_label_counts,
    prepare_myntra,
    read_json,
    resolve_output,
    write_tag_subset,
)

DEFAULT_MYNTRA = REPO.parent / "shared" / "data" / "myntra-dev"
DOCS_FILE = REPO / "docs" / "MODEL.md"
BEGIN, END = "<!-- bench_quality:begin -->", "<!-- bench_quality:end -->"
ALL = "all"

# Rough throughput for the estimates (2 shared cores, width 0.25, 64 px crops, one training pass
# incl. decoding); replaced by the measured rate of the base model once it has run.
TRAIN_IMAGES_PER_S_AT_64 = 250.0
SPARK_STARTUP_S = 40.0  # session start + planning of a small job, idle 2-core machine
SHARD_IMAGES_PER_S = 400.0


def _spark_estimate(images: int) -> float:
    """A Spark stage's estimate, scaled by the machine's load (a shared machine's Spark planning slows with it)."""
    load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    return (SPARK_STARTUP_S + images / SHARD_IMAGES_PER_S) * load


@dataclasses.dataclass
class Settings:
    """The benchmark's resolved options."""

    source: str  # "myntra" or "generated"
    myntra: Path
    generated: int
    work: Path
    sizes: list[int | None]  # None = all tagged train products
    seed: int
    width: float
    input_size: int
    store_size: int
    resize_mode: str
    vocab_size: int
    min_class_count: int
    base_epochs: int
    refine_epochs: int
    base_args: list[str]
    refine_args: list[str]
    quick: bool
    fresh: bool


class StageError(RuntimeError):
    """A stage failed; the message names it, its exit code and its log."""


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _code_digest(*parts: str) -> str:
    """Hash of the project's source files under ``parts`` (so a code change invalidates the stages it feeds)."""
    h = hashlib.sha256()
    for part in parts:
        root = REPO / part
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(REPO)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class Runner:
    """Runs stages once per key: CLI subprocesses with logs, or Python functions; records estimates and wall times."""

    def __init__(self, work: Path, fresh: bool) -> None:
        self.work = work
        self.fresh = fresh
        self.logs = work / "logs"
        self.state = work / "stages"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}

    def _cached(self, name: str, key: str) -> dict[str, Any] | None:
        f = self.state / f"{name}.json"
        if self.fresh or not f.is_file():
            return None
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        return doc if doc.get("key") == key and doc.get("ok") else None

    def stage(
        self,
        name: str,
        inputs: dict[str, Any],
        fn: Callable[[], dict[str, Any]],
        *,
        estimate_s: float | None = None,
        outputs: tuple[Path, ...] = (),
    ) -> dict[str, Any]:
        """Run ``fn`` unless a previous run with the same inputs finished; return its result.

        Args:
            name: Stage name (file names under ``stages/`` and ``logs/``).
            inputs: Everything the result depends on (commands, upstream keys, code digests).
            fn: Runs the stage, returns a JSON-ready result.
            estimate_s: The estimated wall time, printed before and recorded beside the actual.
            outputs: Folders/files the stage writes, removed before it runs (no stale checkpoints).
        """
        key = _digest(inputs)
        self.keys[name] = key
        cached = self._cached(name, key)
        if cached is not None:
            self.timings[name] = {"estimated_s": estimate_s, "seconds": cached["seconds"], "cached": True}
            print(f"[{name}] cached (key {key}, took {_fmt_s(cached['seconds'])} when it ran)", flush=True)
            return cached["result"]
        for out in outputs:
            if out.is_dir():
                shutil.rmtree(out)
            elif out.exists():
                out.unlink()
        print(f"[{name}] running (estimate {_fmt_s(estimate_s)}) ...", flush=True)
        started = time.perf_counter()
        result = fn()
        seconds = round(time.perf_counter() - started, 1)
        self.timings[name] = {
            "estimated_s": None if estimate_s is None else round(estimate_s, 1),
            "seconds": seconds,
            "cached": False,
        }
        (self.state / f"{name}.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "ok": True,
                    "inputs": inputs,
                    "seconds": seconds,
                    "result": result,
                    "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                },
                indent=1,
                sort_keys=True,
                default=str,
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"[{name}] done in {_fmt_s(seconds)} (estimate {_fmt_s(estimate_s)})", flush=True)
        return result

    def cli(self, name: str, argv: list[str]) -> dict[str, Any]:
        """Run ``python -m softlines_attr.cli ARGV``; stdout -> ``logs/<name>.out``, stderr ->
        ``logs/<name>.log``; the last JSON line of stdout."""
        cmd = [sys.executable, "-m", "softlines_attr.cli", *argv]
        out_path, log_path = self.logs / f"{name}.out", self.logs / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with out_path.open("w", encoding="utf-8") as out, log_path.open("w", encoding="utf-8") as err:
            err.write("$ " + shlex.join(cmd) + "\n")
            err.flush()
            rc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=err, env=env, check=False).returncode
        if rc != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            raise StageError(
                f"stage {name} failed: expected exit code 0, found {rc}; command: {shlex.join(cmd)}\n"
                f"log: {log_path}\n--- last lines ---\n" + "\n".join(tail)
            )
        for line in reversed(out_path.read_text(encoding="utf-8", errors="replace").splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return {}


# ---------------------------------------------------------------------------------------------- stages


def _conf_text(s: Settings) -> str:
    lines = [
        "# Written by benchmarks/bench_quality.py: small images for 60x80 photos / quick runs; every product type "
        "scored.",
        "[images]",
        f"store_size = {s.store_size}",
        f"input_size = {s.input_size}",
        f'resize_mode = "{s.resize_mode}"',
        "",
        "[score]",
        "product_types = []",
        "",
    ]
    if s.source == "generated":
        lines[-1:-1] = ["[catalog]", "tag_share = 1.0", ""]
    return "\n".join(lines)


def stage_data(r: Runner, s: Settings) -> tuple[Prepared, Path]:
    """The catalog, tags, taxonomy and conf in ``<work>/data``."""
    data = s.work / "data"
    conf = data / "conf.toml"
    if s.source == "myntra":
        styles = s.myntra / "styles.csv"
        if not s.myntra.is_dir() or not styles.is_file():
            raise DataError(
                f"--myntra {s.myntra}: expected a folder with styles.csv and images/ (the dev set), found "
                + ("no folder" if not s.myntra.is_dir() else f"{sorted(p.name for p in s.myntra.iterdir())[:10]}")
            )
        st = styles.stat()
        inputs = {
            "source": str(s.myntra.resolve()),
            "styles": [st.st_size, st.st_mtime_ns],
            "min_class_count": s.min_class_count,
            "conf": _conf_text(s),
            "adapter": _code_digest("benchmarks/quality_data.py"),
        }

        def run() -> dict[str, Any]:
            p = prepare_myntra(s.myntra, data, min_class_count=s.min_class_count)
            conf.write_text(_conf_text(s), encoding="utf-8")
            return {
                "catalog": str(p.catalog),
                "tags": str(p.tags),
                "taxonomy": str(p.taxonomy),
                "classes": p.classes,
                "counts": p.counts,
            }

        res = r.stage("data", inputs, run, estimate_s=5, outputs=(data,))
    else:
        inputs = {
            "generated": s.generated,
            "seed": s.seed,
            "conf": _conf_text(s),
            "code": _code_digest("softlines_attr/synthetic"),
        }

        def run() -> dict[str, Any]:
            data.mkdir(parents=True, exist_ok=True)
            conf.write_text(_conf_text(s), encoding="utf-8")
            out = r.cli(
                "make-catalog",
                [
                    "make-catalog",
                    "--out",
                    str(data / "catalog"),
                    "--n",
                    str(s.generated),
                    "--seed",
                    str(s.seed),
                    "--conf",
                    str(conf),
                ],
            )
            from softlines_attr.config import load_taxonomy

            tax = load_taxonomy(None)
            summary = json.loads((data / "catalog" / "summary.json").read_text(encoding="utf-8"))
            return {
                "catalog": str(data / "catalog" / "catalog.parquet"),
                "tags": str(data / "catalog" / "tags.parquet"),
                "taxonomy": None,
                "classes": {a.name: list(a.classes) for a in tax.attributes},
                "counts": {"make_catalog": out or summary.get("tags", {})},
            }

        res = r.stage("data", inputs, run, estimate_s=10 + s.generated * 0.08, outputs=(data,))
    prepared = Prepared(
        catalog=Path(res["catalog"]),
        tags=Path(res["tags"]),
        taxonomy=Path(res["taxonomy"]) if res["taxonomy"] else None,
        classes=res["classes"],
        counts=res["counts"],
    )
    return prepared, conf


def _config_args(conf: Path, prepared: Prepared) -> list[str]:
    args = ["--conf", str(conf)]
    if prepared.taxonomy is not None:
        args += ["--taxonomy", str(prepared.taxonomy)]
    return args


def _last_value(argv: list[str], flag: str, default: str) -> str:
    """The last value of ``flag`` in ``argv`` (as the command's parser sees it), else ``default``."""
    from softlines_attr.model.distributed.argv import option_value

    value = option_value(argv, flag)
    return default if value is None else value


def _records(shards_dir: Path) -> dict[str, int]:
    doc = json.loads((resolve_output(shards_dir) / "shards" / "_manifest.json").read_text(encoding="utf-8"))
    counts = {"train": 0, "val": 0}
    for shard in doc["shards"]:
        counts[shard["split"]] = counts.get(shard["split"], 0) + int(shard["records"])
    return counts


def default_train_args(epochs: int, *, base: bool) -> list[str]:
    """The benchmark's defaults for ``train`` (base) and ``refine``: the epochs, batch 32, 2 decoding threads.

    Everything else is the project's own default recipe (train: softmax over the title words, lr
    0.05, one epoch of warm-up then cosine; refine: lr 0.01, backbone x 0.1, cosine), so that the
    benchmark measures what a user gets; ``--base-args`` / ``--refine-args`` change it.
    """
    return ["--epochs", str(epochs), "--batch-size", "32", "--threads", "2"]


class Estimator:
    """Training-time estimates: images processed / a rate, the rate measured on the base once it ran."""

    def __init__(self, s: Settings) -> None:
        self.rate = TRAIN_IMAGES_PER_S_AT_64 * (64.0 / s.input_size) ** 2 * (0.25 / s.width) ** 1.5
        self.measured = False

    def train(self, records: dict[str, int], epochs: int) -> float:
        # one training pass per epoch, plus evaluation passes (forward only, about 3x faster)
        return 15.0 + (records["train"] * epochs + records["val"] * max(1, epochs) / 3.0) / self.rate

    def observe(self, records: dict[str, int], epochs: int, seconds: float, cached: bool) -> None:
        if cached or seconds <= 20:
            return
        work = records["train"] * epochs + records["val"] * max(1, epochs) / 3.0
        self.rate, self.measured = work / max(seconds - 15.0, 1.0), True


def _print_plan(s: Settings, est: Estimator, n_products: int) -> None:
    """The whole run's estimate before it starts (train = 80 % of the products; every stage assumed uncached)."""
    train, val = int(0.8 * n_products), n_products - int(0.8 * n_products)
    base_e = int(_last_value([*default_train_args(s.base_epochs, base=True), *s.base_args], "--epochs", "10"))
    ref_e = int(_last_value([*default_train_args(s.refine_epochs, base=False), *s.refine_args], "--epochs", "10"))
    sizes = [train if x is None else min(x, train) for x in s.sizes]
    spark = (
        _spark_estimate(n_products // 4) + _spark_estimate(n_products) + sum(_spark_estimate(n + val) for n in sizes)
    )
    base = est.train({"train": train, "val": val}, base_e)
    refine = sum(2 * est.train({"train": n, "val": val}, ref_e) for n in sizes)
    print(
        f"plan (uncached, about {train} train / {val} val products): Spark stages ~{_fmt_s(spark)}, base "
        f"~{_fmt_s(base)}, "
        f"{2 * len(sizes)} refines ~{_fmt_s(refine)}; total ~{_fmt_s(spark + base + refine)} "
        f"(training at ~{est.rate:.0f} images/s, Spark scaled by the load average)",
        flush=True,
    )


def run_benchmark(s: Settings, command: str) -> dict[str, Any]:
    """Every stage in order; the result dict written to ``<work>/quality.json``."""
    started_at = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()
    wall0 = time.perf_counter()
    r = Runner(s.work, s.fresh)
    est = Estimator(s)
    prepared, conf = stage_data(r, s)
    cfg = _config_args(conf, prepared)
    attributes = list(prepared.classes)
    # every file a stage's result depends on: its code and the defaults it reads (conf/pipeline.toml holds
    # [train] / [refine])
    conf_code = _code_digest("conf", "softlines_attr/config.py", "softlines_attr/strict.py")
    labels_code = _code_digest("softlines_attr/labels", "softlines_attr/io")
    shard_code = _code_digest("softlines_attr/shard", "softlines_attr/images", "softlines_attr/io")
    train_code = _code_digest(
        "softlines_attr/model",
        "softlines_attr/train_config.py",
        "softlines_attr/pipeline.py",
        "softlines_attr/commands/train.py",
        "softlines_attr/commands/refine.py",
        "softlines_attr/commands/training.py",
        "softlines_attr/images",
        "conf/pipeline.toml",
    )
    n_products = prepared.counts.get("rows_used") or s.generated
    _print_plan(s, est, n_products)

    labels_dir = s.work / "labels"
    argv = ["labels", "--catalog", str(prepared.catalog), "--out", str(labels_dir), *cfg]
    r.stage(
        "labels",
        {"argv": argv, "data": r.keys["data"], "code": [labels_code, conf_code]},
        lambda: r.cli("labels", argv),
        estimate_s=_spark_estimate(n_products // 4),
        outputs=(labels_dir,),
    )
    labels_summary = read_json(labels_dir, "_summary.json")

    base_shards = s.work / "shards" / "base"
    labels_run = resolve_output(labels_dir)  # the committed run (versioned layout) or the folder itself
    argv = ["shard", "--labels", str(labels_run), "--out", str(base_shards), "--vocab-size", str(s.vocab_size), *cfg]
    r.stage(
        "shard-base",
        {"argv": argv, "labels": r.keys["labels"], "code": [shard_code, conf_code]},
        lambda: r.cli("shard-base", argv),
        estimate_s=_spark_estimate(n_products),
        outputs=(base_shards,),
    )
    base_records = _records(base_shards)

    base_dir = s.work / "models" / "base"
    base_argv = [
        "train",
        "--shards",
        str(resolve_output(base_shards)),
        "--out",
        str(base_dir),
        "--width",
        str(s.width),
        "--input-size",
        str(s.input_size),
        *cfg,
        *default_train_args(s.base_epochs, base=True),
        *s.base_args,
    ]
    base_epochs = int(_last_value(base_argv, "--epochs", "10"))
    base = r.stage(
        "train-base",
        {"argv": base_argv, "shards": r.keys["shard-base"], "code": train_code},
        lambda: r.cli("train-base", base_argv),
        estimate_s=est.train(base_records, base_epochs),
        outputs=(base_dir,),
    )
    est.observe(base_records, base_epochs, r.timings["train-base"]["seconds"], r.timings["train-base"]["cached"])
    base_bundle = Path(base["bundle"]) if base.get("bundle") else base_dir / "bundle"
    vocab_words = int(read_json(base_shards, "_summary.json").get("vocab_size") or s.vocab_size)
    num_words = _num_words(base_bundle, vocab_words)
    prior = r.stage(
        "prior",
        {"shards": r.keys["shard-base"], "words": num_words, "code": _code_digest("benchmarks/quality_data.py")},
        lambda: base_label_stats(base_shards, num_words),
        estimate_s=5,
    )

    refine_defaults = default_train_args(s.refine_epochs, base=False)
    refine_epochs = int(_last_value([*refine_defaults, *s.refine_args], "--epochs", "10"))
    runs: dict[str, dict[str, Any]] = {}
    tags_dir = s.work / "tags"
    seen_sizes: set[int] = set()
    for size in s.sizes:
        label = ALL if size is None else str(size)
        tags_file = tags_dir / f"tags-{label}.parquet"
        subset = r.stage(
            f"tags-{label}",
            {
                "tags": r.keys["data"],
                "labels": r.keys["labels"],
                "size": size,
                "seed": s.seed,
                "code": _code_digest("benchmarks/quality_data.py"),
            },
            lambda size=size, tags_file=tags_file: write_tag_subset(prepared.tags, labels_dir, tags_file, size, s.seed),
            estimate_s=3,
            outputs=(tags_file,),
        )
        if subset["train_products"] in seen_sizes:
            print(
                f"[tags-{label}] {subset['train_products']} tagged train products: the same set as a smaller "
                f"size, skipped",
                flush=True,
            )
            continue
        seen_sizes.add(subset["train_products"])
        shards = s.work / "shards" / f"multi-{label}"
        argv = [
            "shard",
            "--labels",
            str(labels_run),
            "--tags",
            str(tags_file),
            "--attribute",
            "all",
            "--out",
            str(shards),
            *cfg,
        ]
        shard_res = r.stage(
            f"shard-multi-{label}",
            {"argv": argv, "tags": r.keys[f"tags-{label}"], "code": [shard_code, conf_code]},
            lambda argv=argv, label=label: r.cli(f"shard-multi-{label}", argv),
            estimate_s=_spark_estimate(subset["train_products"] + subset["val_products"]),
            outputs=(shards,),
        )
        recs = _records(shards)
        models: dict[str, Any] = {}
        for kind in ("base", "scratch"):
            out = s.work / "models" / f"{kind}-{label}"
            src = ["--base", str(base_bundle)] if kind == "base" else ["--base", "none"]
            argv = [
                "refine",
                *src,
                "--shards",
                str(resolve_output(shards)),
                "--attribute",
                "all",
                "--out",
                str(out),
                "--width",
                str(s.width),
                "--input-size",
                str(s.input_size),
                *cfg,
                *refine_defaults,
                *s.refine_args,
            ]
            inputs = {"argv": argv, "shards": r.keys[f"shard-multi-{label}"], "code": train_code}
            if kind == "base":
                inputs["base"] = r.keys["train-base"]
            name = f"refine-{kind}-{label}"
            res = r.stage(
                name,
                inputs,
                lambda argv=argv, name=name: r.cli(name, argv),
                estimate_s=est.train(recs, refine_epochs),
                outputs=(out,),
            )
            models[kind] = {
                "bundle": res.get("bundle"),
                "metrics": res.get("metrics") or _bundle_metrics(Path(res.get("bundle") or out / "bundle")),
            }
        runs[label] = {
            "size": size,
            "subset": subset,
            "records": recs,
            "shard": {
                k: shard_res.get(k) for k in ("rows_in", "records_written", "rows_rejected", "rejects_by_reason")
            },
            "models": models,
        }

    # Val statistics (chance, majority class) from the largest size's multi shards (val is the same for all).
    largest = list(runs)[-1]
    counts = r.stage(
        "val-stats",
        {"shards": r.keys[f"shard-multi-{largest}"], "attributes": attributes},
        lambda: multi_label_counts(s.work / "shards" / f"multi-{largest}", attributes),
        estimate_s=5,
    )
    val_digests = {label: run["subset"]["val_asins_sha256"] for label, run in runs.items()}
    result = {
        "format_version": 1,
        "benchmark": "bench_quality",
        "command": command,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": [round(v, 2) for v in load_start],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(s).items()},
        "work": str(s.work),
        "data": prepared.counts,
        "classes": prepared.classes,
        "labels": {
            k: labels_summary.get(k)
            for k in ("rows_in", "rows_labelled", "rows_rejected", "rejects_by_reason", "labelled_by_split")
        },
        "base": {
            "argv": base_argv,
            "records": base_records,
            "metrics": base.get("metrics") or _bundle_metrics(base_bundle),
            "prior": prior,
        },
        "refine_argv_tail": [*refine_defaults, *s.refine_args],
        "val_split": {
            "same_val_products_for_every_size": len(set(val_digests.values())) == 1,
            "val_asins_sha256": val_digests,
            "counts": counts,
        },
        "runs": runs,
        "stages": r.timings,
        "stage_order": list(r.timings),
        "wall_seconds": round(time.perf_counter() - wall0, 1),
    }
    result["table3"] = table3(result)
    result["learning_curve"] = learning_curve(result)
    result["targets"] = targets(result)
    return result


def _bundle_metrics(bundle: Path) -> dict[str, Any]:
    """A bundle manifest's metrics (when a command printed none)."""
    try:
        return json.loads((bundle / "manifest.json").read_text(encoding="utf-8")).get("metrics") or {}
    except (OSError, json.JSONDecodeError):
        return {}


def _num_words(bundle: Path, default: int) -> int:
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        return len(manifest["heads"][0]["classes"])
    except (OSError, KeyError, IndexError, json.JSONDecodeError):
        return default


# ---------------------------------------------------------------------------------------------- results


def table3(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per size: per attribute accuracy / average per-class accuracy refined vs scratch, differences in points,
    chance, majority; and the means."""
    counts = res["val_split"]["counts"]
    out: dict[str, dict[str, Any]] = {}
    for label, run in res["runs"].items():
        rows: dict[str, Any] = {}
        for attr, classes in res["classes"].items():
            val = counts.get(attr, {}).get("val", {"records": 0, "class_counts": {}})
            majority = max(val["class_counts"].values()) / val["records"] if val["records"] else None
            row: dict[str, Any] = {
                "classes": len(classes),
                "chance": 1.0 / len(classes),
                "majority_share": majority,
                "val_tagged": val["records"],
                "train_tagged": None,
            }
            for kind in ("base", "scratch"):
                m = run["models"][kind]["metrics"]
                row[f"{kind}_acc"] = m.get(f"val_{attr}_accuracy")
                row[f"{kind}_class_acc"] = m.get(f"val_{attr}_mean_class_accuracy")
                row[f"{kind}_val_records"] = m.get(f"val_{attr}_records")
            row["diff_acc_points"] = _diff(row["base_acc"], row["scratch_acc"])
            row["diff_class_acc_points"] = _diff(row["base_class_acc"], row["scratch_class_acc"])
            rows[attr] = row
        mean = {}
        for key in ("base_acc", "scratch_acc", "base_class_acc", "scratch_class_acc", "chance", "majority_share"):
            vals = [row[key] for row in rows.values() if row[key] is not None]
            mean[key] = sum(vals) / len(vals) if len(vals) == len(rows) and vals else None
        mean["diff_acc_points"] = _diff(mean["base_acc"], mean["scratch_acc"])
        mean["diff_class_acc_points"] = _diff(mean["base_class_acc"], mean["scratch_class_acc"])
        out[label] = {
            "train_products": run["subset"]["train_products"],
            "val_products": run["subset"]["val_products"],
            "train_records": run["records"]["train"],
            "val_records": run["records"]["val"],
            "attributes": rows,
            "mean": mean,
        }
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(100.0 * (a - b), 2)


def learning_curve(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean accuracy (and average per-class accuracy) over attributes, refined vs scratch, by tagged train products."""
    return [
        {
            "size": label,
            "train_products": t["train_products"],
            **{
                k: t["mean"][k]
                for k in (
                    "base_acc",
                    "scratch_acc",
                    "diff_acc_points",
                    "base_class_acc",
                    "scratch_class_acc",
                    "diff_class_acc_points",
                )
            },
        }
        for label, t in res["table3"].items()
    ]


def targets(res: dict[str, Any]) -> dict[str, Any]:
    """Issue 10's targets: base val mAP >= 10x the prior; refined - scratch >= 5 points of mean accuracy at the
    smallest size, >= 2 at the largest."""
    metrics, prior = res["base"]["metrics"], res["base"]["prior"]
    val_map = metrics.get("val_map")
    prior_map = metrics.get("val_prior_map", prior["prior_map"])
    curve = res["learning_curve"]
    small, large = (curve[0], curve[-1]) if curve else ({}, {})
    out = {
        "base_map_over_prior": None if val_map is None or not prior_map else round(val_map / prior_map, 2),
        "smallest_size": small.get("train_products"),
        "smallest_diff_points": small.get("diff_acc_points"),
        "largest_size": large.get("train_products"),
        "largest_diff_points": large.get("diff_acc_points"),
    }
    out["base_map_10x_prior"] = None if out["base_map_over_prior"] is None else out["base_map_over_prior"] >= 10
    out["smallest_gain_5_points"] = None if out["smallest_diff_points"] is None else out["smallest_diff_points"] >= 5
    out["largest_gain_2_points"] = None if out["largest_diff_points"] is None else out["largest_diff_points"] >= 2
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _pts(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def markdown(res: dict[str, Any]) -> str:
    """The results as a Markdown block: command, date, load, recipe, base vs prior, Table 3 per size, learning
    curve, stage times."""
    s = res["settings"]
    m = res["machine"]
    base_m, prior = res["base"]["metrics"], res["base"]["prior"]
    src = (
        f"the real dev set `{s['myntra']}`"
        if s["source"] == "myntra"
        else f"a generated catalog of {s['generated']} products"
    )
    lines = [
        f"`{res['command']}`  ",
        f"{res['started_at'][:16].replace('T', ' ')} UTC, {m['cpus']} cores, load average "
        f"{m['loadavg_start'][0]:.2f} at the start, "
        f"{m['loadavg_end'][0]:.2f} at the end; **{_fmt_s(res['wall_seconds'])}** wall"
        + (" (**--quick**: smoke-run epochs, not a measurement)" if s["quick"] else "")
        + ".",
        "",
        f"Data: {src}. All accuracies are on the **held-out val split** (the label job's split by parent; never "
        f"trained on; the recipe's defaults were chosen on it: dev numbers), "
        f"the same val products for every size"
        + ("" if res["val_split"]["same_val_products_for_every_size"] else " (**NOT: check quality.json**)")
        + ".",
    ]
    d = res["data"]
    if s["source"] == "myntra":
        unusable = ", ".join(f"{k} {v}" for k, v in d.get("rows_unusable", {}).items()) or "none"
        folded = "; ".join(
            f"{a}: {t['classes_kept']} classes kept, {t['classes_folded']} folded ({t['tags_folded']} tags)"
            for a, t in d["tags"].items()
        )
        lines.append(
            f"Rows read {d['rows_read']}, used {d['rows_used']} (unusable: {unusable}); classes with < "
            f"{d['min_class_count']} tagged products folded out: {folded}."
        )
    lab = res["labels"]
    lines += [
        f"Label job: {lab.get('rows_labelled')} of {lab.get('rows_in')} products labelled "
        f"({lab.get('labelled_by_split')}), rejects {lab.get('rejects_by_reason')}.",
        f"Images: stored {s['store_size']} px ({s['resize_mode']}), {s['input_size']} px crops; Inception-BN "
        f"width {s['width']}.",
        f"Base: `train {shlex.join(_tail(res['base']['argv']))}`; refine (both): `refine ... "
        f"{shlex.join(res['refine_argv_tail'])}`.",
        "",
        f"**Base model** (title words, {prior['words']} words, {res['base']['records']['train']} train / "
        f"{res['base']['records']['val']} val images): "
        f"val mAP **{_num(base_m.get('val_map'))}** vs the prior baseline (each word's train frequency) "
        + (
            f"{_num(base_m['val_prior_map'])} as train computes it "
            f"({_ratio(base_m.get('val_map'), base_m['val_prior_map'])}), "
            if base_m.get("val_prior_map") is not None
            else ""
        )
        + f"{_num(prior['prior_map'])} as the benchmark computes it (val prevalence, the tie-aware AP of a "
        f"constant score; "
        f"{_ratio(base_m.get('val_map'), prior['prior_map'])}); precision@1 "
        f"{_num(base_m.get('val_precision_at_1'))} vs the prior's "
        f"{_num(prior['prior_precision_at_1'])}.",
        "Train's val metrics: "
        + ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in sorted(base_m.items()))
        + ".",
        "",
    ]
    for label, t in res["table3"].items():
        lines += [
            f"**Table 3, {t['train_products']} tagged train products** "
            f"({'all' if label == ALL else 'seeded subset'}; {t['train_records']} train / {t['val_records']} val "
            f"images):",
            "",
            "| attribute | classes | chance | majority (val) | refined from base: acc / per-class | from scratch: "
            "acc / per-class | difference (points): acc / per-class |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for attr, row in t["attributes"].items():
            lines.append(
                f"| {attr} | {row['classes']} | {_pct(row['chance'])} | {_pct(row['majority_share'])} | "
                f"{_pct(row['base_acc'])} / {_pct(row['base_class_acc'])} "
                f"| {_pct(row['scratch_acc'])} / {_pct(row['scratch_class_acc'])} | "
                f"{_pts(row['diff_acc_points'])} / {_pts(row['diff_class_acc_points'])} |"
            )
        mean = t["mean"]
        lines += [
            f"| **mean** | | {_pct(mean['chance'])} | {_pct(mean['majority_share'])} | {_pct(mean['base_acc'])} / "
            f"{_pct(mean['base_class_acc'])} "
            f"| {_pct(mean['scratch_acc'])} / {_pct(mean['scratch_class_acc'])} | {_pts(mean['diff_acc_points'])} "
            f"/ {_pts(mean['diff_class_acc_points'])} |",
            "",
        ]
    lines += [
        "**Learning curve** (mean over attributes, val split):",
        "",
        "| tagged train products | refined: mean acc | scratch: mean acc | difference (points) | refined: mean "
        "per-class | scratch: mean per-class | difference (points) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in res["learning_curve"]:
        lines.append(
            f"| {p['train_products']} | {_pct(p['base_acc'])} | {_pct(p['scratch_acc'])} | "
            f"{_pts(p['diff_acc_points'])} | {_pct(p['base_class_acc'])} "
            f"| {_pct(p['scratch_class_acc'])} | {_pts(p['diff_class_acc_points'])} |"
        )
    tg = res["targets"]
    lines += [
        "",
        f"Issue 10 targets: base mAP >= 10x prior: {_yes(tg['base_map_10x_prior'])} ({tg['base_map_over_prior']}x); "
        f"refined - scratch >= 5 points at {tg['smallest_size']}: {_yes(tg['smallest_gain_5_points'])} "
        f"({_pts(tg['smallest_diff_points'])}); "
        f">= 2 points at {tg['largest_size']}: {_yes(tg['largest_gain_2_points'])} "
        f"({_pts(tg['largest_diff_points'])}).",
        "",
        "Wall time per stage (estimate / actual; cached = reused from an earlier run with the same inputs):",
        "",
        "| stage | estimate | actual |",
        "|---|---:|---:|",
    ]
    for name in res.get("stage_order") or list(res["stages"]):
        t = res["stages"][name]
        lines.append(
            f"| {name} | {_fmt_s(t['estimated_s'])} | {_fmt_s(t['seconds'])}{' (cached)' if t['cached'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def _tail(argv: list[str]) -> list[str]:
    """A train/refine argv without the work-folder paths (for the report)."""
    out, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--shards", "--out", "--conf", "--taxonomy", "--base"):
            skip = True
            continue
        out.append(a)
    return out


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.1f}x"


def _yes(v: bool | None) -> str:
    return "-" if v is None else ("met" if v else "**not met**")


def write_docs(block: str, path: Path) -> None:
    """Replace the text between the markers in ``path`` (a "Quality benchmark" section is appended when absent)."""
    text = path.read_text(encoding="utf-8")
    body = f"{BEGIN}\n{block}{END}"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + (
            "\n\n## Quality benchmark (`benchmarks/bench_quality.py`)\n\n"
            "The paper's method end to end (labels, base shards, base model, multi shards, refine from the base "
            "and from scratch at "
            "several tagged-set sizes); numbers on the held-out val split. Written by `bench_quality.py "
            "--write-docs`.\n\n" + body + "\n"
        )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- CLI


def _sizes(text: str) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == ALL:
            out.append(None)
            continue
        try:
            n = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--sizes: expected comma-separated integers or 'all', found {part!r}"
            ) from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"--sizes: expected sizes >= 1, found {n}")
        out.append(n)
    if not out:
        raise argparse.ArgumentTypeError("--sizes: expected at least one size")
    return sorted(set(x for x in out if x is not None)) + ([None] if None in out else [])


def parse_args(argv: list[str] | None = None) -> Settings:
    """The command line -> :class:`Settings` (``--quick`` sets tiny epochs and sizes 200,all unless given)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--myntra",
        type=Path,
        default=None,
        help=f"the real dev set folder (styles.csv, images/) (default {DEFAULT_MYNTRA})",
    )
    src.add_argument(
        "--generated",
        type=int,
        default=None,
        metavar="N",
        help="use softlines-attr make-catalog with N generated dresses instead",
    )
    p.add_argument(
        "--work", type=Path, default=None, help="work folder (default /tmp/bench_quality/<myntra|generated-N>[-quick])"
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="tagged TRAIN products per run, e.g. 500,1000,2000,all (default; --quick: 200,all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the tagged subsets (and of make-catalog) (default 0)")
    p.add_argument(
        "--width", type=float, default=0.25, help="Inception-BN width of the base and the scratch models (default 0.25)"
    )
    p.add_argument(
        "--input-size", type=int, default=64, help="network input side (conf images.input_size) (default 64)"
    )
    p.add_argument(
        "--store-size",
        type=int,
        default=72,
        help="stored image side in the shards (conf images.store_size) (default 72)",
    )
    p.add_argument(
        "--resize-mode",
        choices=["pad_square", "shorter_side"],
        default="pad_square",
        help="conf images.resize_mode (default pad_square)",
    )
    p.add_argument("--vocab-size", type=int, default=500, help="base shards' vocabulary (default 500)")
    p.add_argument(
        "--min-class-count",
        type=int,
        default=20,
        help="dev set: a class with fewer tagged products is folded out (default 20)",
    )
    p.add_argument("--base-epochs", type=int, default=None, help="base epochs in the defaults (default 10; --quick 1)")
    p.add_argument(
        "--refine-epochs", type=int, default=None, help="refine epochs in the defaults (default 12; --quick 2)"
    )
    p.add_argument(
        "--base-args",
        default="",
        help='extra `train` options for the base, passed verbatim after the defaults, e.g. "--loss softmax"',
    )
    p.add_argument(
        "--refine-args",
        default="",
        help='extra `refine` options for both refines, after the defaults, e.g. "--backbone-lr-mult 1"',
    )
    p.add_argument("--quick", action="store_true", help="smoke run: base 1 epoch, refine 2, sizes 200,all")
    p.add_argument("--fresh", action="store_true", help="rerun every stage (ignore cached results)")
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="write the Markdown block into docs/MODEL.md between the bench_quality markers",
    )
    p.add_argument("--docs-file", type=Path, default=DOCS_FILE, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    source = "generated" if a.generated is not None else "myntra"
    if a.generated is not None and a.generated < 50:
        p.error(f"--generated: expected at least 50 products, found {a.generated}")
    myntra = (a.myntra or DEFAULT_MYNTRA).expanduser().resolve()
    name = "myntra" if source == "myntra" else f"generated-{a.generated}"
    work = (a.work or Path("/tmp/bench_quality") / (name + ("-quick" if a.quick else ""))).expanduser().resolve()
    if work == REPO or REPO in work.parents:
        p.error(
            f"--work {work}: expected a folder outside the repository (the benchmark writes catalogs, shards and "
            f"models there)"
        )
    try:
        base_args, refine_args = shlex.split(a.base_args), shlex.split(a.refine_args)
    except ValueError as exc:
        p.error(f"--base-args / --refine-args: expected a shell-quoted option string, found an error: {exc}")
    return Settings(
        source=source,
        myntra=myntra,
        generated=a.generated or 0,
        work=work,
        sizes=a.sizes or ([200, None] if a.quick else [500, 1000, 2000, None]),
        seed=a.seed,
        width=a.width,
        input_size=a.input_size,
        store_size=a.store_size,
        resize_mode=a.resize_mode,
        vocab_size=a.vocab_size,
        min_class_count=a.min_class_count,
        base_epochs=a.base_epochs or (1 if a.quick else 10),
        refine_epochs=a.refine_epochs or (2 if a.quick else 12),
        base_args=base_args,
        refine_args=refine_args,
        quick=a.quick,
        fresh=a.fresh,
    ), a


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the Markdown block; exit 2 with the failing stage and its log on an error."""
    s, a = parse_args(argv)
    command = "python benchmarks/bench_quality.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if s.store_size < s.input_size:
        print(f"error: --store-size {s.store_size} must be at least --input-size {s.input_size}", file=sys.stderr)
        return 2
    if s.source == "myntra" and not (s.myntra / "styles.csv").is_file():
        found = (
            "no folder"
            if not s.myntra.is_dir()
            else f"a folder holding {sorted(p.name for p in s.myntra.iterdir())[:10]}"
        )
        print(
            f"error: --myntra {s.myntra}: expected the dev set folder (styles.csv and images/), found {found}",
            file=sys.stderr,
        )
        return 2
    s.work.mkdir(parents=True, exist_ok=True)
    print(
        f"bench_quality: {s.source} -> {s.work}; sizes {[ALL if x is None else x for x in s.sizes]}; width "
        f"{s.width}, input {s.input_size}, "
        f"store {s.store_size} {s.resize_mode}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(f"  base train:  {shlex.join(default_train_args(s.base_epochs, base=True) + s.base_args)}", flush=True)
    print(f"  refine:      {shlex.join(default_train_args(s.refine_epochs, base=False) + s.refine_args)}", flush=True)
    try:
        res = run_benchmark(s, command)
    except (StageError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = s.work / "quality.json"
    out.write_text(json.dumps(res, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    block = markdown(res)
    print("\n" + block)
    print(f"every number: {out}", flush=True)
    if a.write_docs:
        write_docs(block, a.docs_file)
        print(f"written into {a.docs_file} between {BEGIN} and {END}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
