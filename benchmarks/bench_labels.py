"""Benchmark: the label job on generated titles, against the same work done by a single-process engine (DuckDB).

    .venv/bin/python benchmarks/bench_labels.py              # 2 million titles
    .venv/bin/python benchmarks/bench_labels.py --n 18000000 # the paper's catalog size
    .venv/bin/python benchmarks/bench_labels.py --counting   # also the counting phase alone, both engines

In this one process, on the same Parquet input, alternated per ``--repeat``:

* **DuckDB whole job** (``labels_duckdb.py``): clean, dedupe, tokens (the regular expressions and
  translation table of ``softlines_attr.labels.tokenize``, applied by DuckDB's RE2), split by parent
  (Spark's xxhash64), reject reasons, document frequency, ranking, vocabularies, label indices per
  product, and the three Parquet tables. The same-work baseline.
* **Spark whole job**: ``run_label_job`` on ``local[*]`` (the same, plus the job's own checks of the
  written tables and its versioned commit).
* with ``--counting``: the counting phase alone in each engine (tokens, document frequency, ranking).

It checks that both whole jobs write the same rows (labels: asin, parent, image_uri, product_type,
split and every label column; rejects: every column, message included; vocabulary: every row), then prints titles/s
for each and the ratios, and writes them as JSON. Spark's session start-up is excluded from its
timings (it is paid once per job, not per title).

Where Spark runs (``--jvm``):

* ``fresh`` (the default): each repeat's Spark job runs in a new JVM of its own (a child process of this
  benchmark that builds the session, starts it, then times the job), as ``spark-submit`` runs a real
  label job: the JIT's warm-up is in every Spark figure. The ratio of record is the median of the
  repeats' ratios (each repeat: that repeat's DuckDB run against its Spark run).
* ``shared``: one JVM for every repeat (the first repeat cold, the later ones warm: the JIT's warm-up
  then counts once); the ratio printed is best against best.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from softlines_attr.config import LabelsConfig, load_config  # noqa: E402 - after the sys.path set-up above
from softlines_attr.labels import tokenize as tk  # noqa: E402 - after the sys.path set-up above


def ensure_titles(path: Path, n: int, seed: int) -> Path:
    """Generate ``n`` titles into ``path`` once (reused by later runs with the same n and seed)."""
    if path.exists():
        return path
    from softlines_attr.synthetic import write_titles_parquet

    conf = load_config()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.parquet")
    t0 = time.perf_counter()
    write_titles_parquet(tmp, n, seed, conf.taxonomy)
    tmp.rename(path)
    print(f"generated {n:,} titles in {time.perf_counter() - t0:.1f}s -> {path}", flush=True)
    return path


def duckdb_vocabulary(path: Path, conf: LabelsConfig, threads: int) -> tuple[list[tuple[str, int, int]], float]:
    """Tokenise and count with DuckDB using the library's rules; returns (ranked vocabulary, seconds)."""
    import duckdb
    from labels_duckdb import sql_str, tokens_sql

    query = f"""
        WITH toks AS (
            SELECT {tokens_sql(conf)} AS tokens
            FROM read_parquet({sql_str(str(path))})
            WHERE title IS NOT NULL AND trim(title) <> ''
        ),
        df AS (SELECT word, count(*) AS doc_freq FROM (SELECT unnest(tokens) AS word FROM toks) GROUP BY word)
        SELECT word, doc_freq, row_number() OVER (ORDER BY doc_freq DESC, word ASC) AS rank
        FROM df WHERE doc_freq >= {conf.min_doc_freq}
        ORDER BY rank
    """
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    t0 = time.perf_counter()
    rows = con.execute(query).fetchall()
    seconds = time.perf_counter() - t0
    con.close()
    return [(w, int(d), int(r)) for w, d, r in rows], seconds


def spark_vocabulary(spark, path: Path, conf) -> tuple[list[tuple[str, int, int]], float]:
    """The library's counting phase on Spark; returns (ranked vocabulary, seconds)."""
    from pyspark.sql import functions as F

    from softlines_attr.io.tables import read_table
    from softlines_attr.labels.job import clean_catalog
    from softlines_attr.labels.vocabulary import document_frequency, rank_words

    t0 = time.perf_counter()
    rows = clean_catalog(read_table(spark, str(path)))
    rows = rows.filter(F.col("title").isNotNull() & (F.trim("title") != ""))
    rows = rows.withColumn("tokens", tk.title_tokens(F.col("title"), conf.labels))
    ranked = rank_words(document_frequency(rows, count_by_parent=False), min_doc_freq=conf.labels.min_doc_freq)
    out = [(r["word"], int(r["doc_freq"]), int(r["rank"])) for r in ranked.orderBy("rank").collect()]
    return out, time.perf_counter() - t0


class StageClock:
    """Spark stages' wall time seen by polling ``statusTracker`` (the UI is off): first to last sight of each stage.

    Good to 0.1 s; stages shorter than a poll may be missed. Call :meth:`start` before the job and :meth:`stop` after.
    """

    def __init__(self, spark, poll_s: float = 0.1) -> None:
        import threading

        self.tracker = spark.sparkContext.statusTracker()
        self.poll_s = poll_s
        self.seen: dict[int, list] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            for sid in self.tracker.getActiveStageIds():
                info = self.tracker.getStageInfo(sid)
                if info is not None:
                    self.seen.setdefault(sid, [info.name, now, now, info.numTasks])[2] = now
            time.sleep(self.poll_s)

    def start(self) -> StageClock:
        self.seen.clear()
        self._stop.clear()
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        """The stages seen, longest first: id, seconds, tasks, call site."""
        self._stop.set()
        self._thread.join()
        rows = [
            {"stage": sid, "seconds": round(t1 - t0, 1), "tasks": n, "call_site": name.split(" at ", 1)[-1]}
            for sid, (name, t0, t1, n) in self.seen.items()
        ]
        return sorted(rows, key=lambda r: -r["seconds"])


def spark_job_in_session(titles: Path, out: Path, master: str, counting: bool) -> dict:
    """Start a SparkSession (not timed), then run the label job once (timed); the session is stopped after.

    Returns:
        ``seconds`` (the job), ``summary`` (the job's), ``version_dir``, ``stages`` (:class:`StageClock`'s) and, with
        ``counting``, ``counting_seconds`` and ``vocabulary`` (the counting phase alone, after the job).
    """
    from softlines_attr.config import SparkProfile
    from softlines_attr.spark import build_session

    conf = load_config()
    profile = conf.spark
    spark = build_session(
        SparkProfile(profile.name, master, {**profile.conf, "spark.driver.memory": "8g"}), "bench-labels", master=master
    )
    try:
        spark.range(4).count()  # the JVM up before any timing
        return timed_label_job(spark, conf, titles, out, counting)
    finally:
        spark.stop()


def spark_job_fresh_jvm(titles: Path, out: Path, master: str, counting: bool) -> dict:
    """:func:`spark_job_in_session` in a child process of its own: a new JVM, as ``spark-submit`` gives a job."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        report = Path(tmp) / "spark.json"
        cmd = [sys.executable, __file__, "--spark-child", str(report), "--titles", str(titles), "--out", str(out)]
        cmd += ["--master", master] + (["--counting"] if counting else [])
        subprocess.run(cmd, check=True)
        return json.loads(report.read_text())


def _spark_child(argv: list[str]) -> int:
    """The child process of ``--jvm fresh``: one Spark label job, its report written as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--spark-child", type=Path, required=True)
    parser.add_argument("--titles", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--counting", action="store_true")
    args = parser.parse_args(argv)
    report = spark_job_in_session(args.titles, args.out, args.master, args.counting)
    args.spark_child.write_text(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--spark-child"]:
        return _spark_child(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=2_000_000, help="number of titles (default 2,000,000; 18,000,000 for the paper's size)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--cache", type=Path, default=HERE / ".cache", help="where generated titles are kept between runs"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out" / "labels", help="label job output folder")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--repeat", type=int, default=1, help="alternating repetitions (default 1)")
    parser.add_argument(
        "--jvm",
        choices=("fresh", "shared"),
        default="fresh",
        help="fresh (default): each repeat's Spark job in a new JVM, as spark-submit runs it; shared: one JVM for all",
    )
    parser.add_argument("--counting", action="store_true", help="also time the counting phase alone")
    parser.add_argument("--json", type=Path, default=HERE / "out" / "bench_labels.json")
    args = parser.parse_args(argv)

    from labels_duckdb import compare_outputs, duckdb_label_job

    conf = load_config()
    cores = os.cpu_count() or 1
    titles = ensure_titles(args.cache / f"titles_{args.n}_{args.seed}.parquet", args.n, args.seed)
    load_start = open("/proc/loadavg").read().split()[:3]
    times: dict[str, list[float]] = {}
    stages: list[list[dict]] = []  # per repeat, the Spark job's stages (StageClock)
    summaries: list[dict] = []
    same_vocab = None
    version_dir = ""
    duck_counts: dict[str, int] = {}
    shared = None
    if args.jvm == "shared":
        from softlines_attr.config import SparkProfile
        from softlines_attr.spark import build_session

        profile = conf.spark
        shared = build_session(
            SparkProfile(profile.name, args.master, {**profile.conf, "spark.driver.memory": "8g"}),
            "bench-labels",
            master=args.master,
        )
        shared.range(4).count()  # the JVM up before any timing
    try:
        for rep in range(args.repeat):
            seconds, duck_counts = duckdb_label_job(titles, args.out / "duckdb", conf, threads=cores)
            times.setdefault("duckdb_whole_job", []).append(seconds)
            if shared is None:
                run = spark_job_fresh_jvm(titles, args.out / "spark", args.master, args.counting)
            else:
                run = timed_label_job(shared, conf, titles, args.out / "spark", args.counting)
            times.setdefault("spark_whole_job", []).append(run["seconds"])
            stages.append(run["stages"])
            summaries.append(run["summary"])
            version_dir = run["version_dir"]
            if args.counting:
                duck_vocab, duck_s = duckdb_vocabulary(titles, conf.labels, threads=cores)
                times.setdefault("duckdb_counting", []).append(duck_s)
                times.setdefault("spark_counting", []).append(run["counting_seconds"])
                same_vocab = [tuple(v) for v in run["vocabulary"]] == duck_vocab
            print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    finally:
        if shared is not None:
            shared.stop()
    check = compare_outputs(version_dir, args.out / "duckdb", conf)
    same = all(v["identical"] for v in check.values()) and same_vocab is not False
    best = {k: min(v) for k, v in times.items()}
    rates = {k: args.n / v for k, v in best.items()}
    per_repeat = [d / s for d, s in zip(times["duckdb_whole_job"], times["spark_whole_job"])]
    ratios: dict[str, float | list[float]] = {"spark / duckdb whole job, per repeat": per_repeat}
    if args.jvm == "fresh":
        ratios["spark / duckdb whole job, median of the repeats (each Spark job in a new JVM; target >= 0.8)"] = (
            statistics.median(per_repeat)
        )
    else:
        ratios["spark / duckdb whole job, best against best (one JVM: warm after repeat 1; target >= 0.8)"] = (
            rates["spark_whole_job"] / rates["duckdb_whole_job"]
        )
    if args.counting:
        ratios["spark counting / duckdb counting"] = rates["spark_counting"] / rates["duckdb_counting"]
    best_rep = min(range(len(times["spark_whole_job"])), key=lambda i: times["spark_whole_job"][i])
    s = summaries[best_rep]
    for k, v in best.items():
        print(f"{k:<20} best {v:8.2f}s  {rates[k]:12,.0f} titles/s   all: " + ", ".join(f"{x:.2f}" for x in times[k]))
    for k, v in ratios.items():
        print(f"{k}: " + (", ".join(f"{x:.2f}x" for x in v) if isinstance(v, list) else f"{v:.2f}x"))
    print(f"spark: labelled {s['rows_labelled']:,}, rejected {s['rows_rejected']:,}; duckdb: {duck_counts}")
    print(f"spark phases (its best repeat): {s['phase_seconds']}")
    print("spark stages of its best repeat, longest first (seconds, tasks, call site):")
    for st in stages[best_rep][:8]:
        print(f"  stage {st['stage']:4d} {st['seconds']:7.1f}s {st['tasks']:4d} tasks  {st['call_site']}")
    print(f"outputs identical: {same} {check}")
    print(f"load average at the start {load_start}, at the end {open('/proc/loadavg').read().split()[:3]}")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "n_titles": args.n,
        "cores": cores,
        "jvm": args.jvm,
        "machine": platform.platform(),
        "loadavg_start": load_start,
        "loadavg_end": open("/proc/loadavg").read().split()[:3],
        "seconds": times,
        "best_seconds": best,
        "titles_per_s": {k: round(v) for k, v in rates.items()},
        "ratios": ratios,
        "spark_phase_seconds_per_repeat": [x["phase_seconds"] for x in summaries],
        "spark_stages_best_repeat": stages[best_rep],
        "outputs": check,
        "outputs_identical": same,
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json}")
    return 0 if same else 1


def timed_label_job(spark, conf, titles: Path, out: Path, counting: bool) -> dict:
    """One label job in ``spark``, timed: the report :func:`spark_job_in_session` returns."""
    from softlines_attr.labels.job import run_label_job

    clock = StageClock(spark).start()
    t0 = time.perf_counter()
    result = run_label_job(spark, conf, catalog_path=str(titles), out_dir=str(out))
    report = {
        "seconds": time.perf_counter() - t0,
        "summary": result.summary,
        "version_dir": result.version_dir,
        "stages": clock.stop(),
    }
    if counting:
        vocab, counting_s = spark_vocabulary(spark, titles, conf)
        report.update(counting_seconds=counting_s, vocabulary=vocab)
    return report


if __name__ == "__main__":
    sys.exit(main())
