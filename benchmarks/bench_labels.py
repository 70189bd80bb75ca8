"""Benchmark: the label job on generated titles, against a single-process engine (DuckDB).

    .venv/bin/python benchmarks/bench_labels.py              # 2 million titles
    .venv/bin/python benchmarks/bench_labels.py --n 18000000 # the paper's catalog size

Three timings, all in this one process, on the same Parquet input:

* **DuckDB counting**: the same tokenisation rules (the regular expressions and translation table of
  ``softlines_attr.labels.tokenize``, applied by DuckDB's RE2) and document-frequency counting, then
  the vocabulary ranking. The single-process baseline.
* **Spark counting**: the library's ``clean_catalog`` -> ``title_tokens`` -> ``document_frequency`` ->
  ``rank_words`` on ``local[*]``.
* **Spark whole job**: ``run_label_job`` (dedupe, tokens, vocabularies, label assignment, rejects,
  Parquet writes and the commit).

It checks that DuckDB and Spark produce the same ranked vocabulary (word, doc_freq, rank for every
word above ``min_doc_freq``), then prints titles/s for each and the ratios, and writes them as JSON.
Spark's session start-up is excluded from its timings (it is paid once per job, not per title).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

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


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def duckdb_vocabulary(path: Path, conf: LabelsConfig, threads: int) -> tuple[list[tuple[str, int, int]], float]:
    """Tokenise and count with DuckDB using the library's rules; returns (ranked vocabulary, seconds)."""
    import duckdb

    src, dst = tk.translation_table()
    text = f"translate(lower(coalesce(title, '')), {_sql_str(src)}, {_sql_str(dst)})"
    for old, new in tk._MULTI_CHAR.items():
        text = f"replace({text}, {_sql_str(old)}, {_sql_str(new)})"
    text = f"regexp_replace({text}, {_sql_str(tk.APOSTROPHE_ENTITY_RE)}, '''', 'g')"
    text = f"regexp_replace({text}, {_sql_str(tk.HTML_NOISE_RE)}, ' ', 'g')"
    text = f"regexp_replace({text}, {_sql_str(tk.APOSTROPHE_RE)}, '', 'g')"
    removed = "[" + ", ".join(_sql_str(w) for w in sorted(set(conf.stop_words) | set(conf.size_tokens))) + "]"
    keep = (
        f"lambda x: NOT list_contains({removed}, x) AND length(x) >= {conf.min_token_length} "
        f"AND (NOT regexp_matches(x, {_sql_str(tk.DROP_TOKEN_RE)}) OR regexp_matches(x, "
        f"{_sql_str(tk.KEEP_FRACTION_RE)}))"
    )
    query = f"""
        WITH toks AS (
            SELECT list_distinct(list_filter(regexp_extract_all({text}, {_sql_str(tk.TOKEN_RE)}), {keep})) AS tokens
            FROM read_parquet({_sql_str(str(path))})
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


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--json", type=Path, default=HERE / "out" / "bench_labels.json")
    args = parser.parse_args(argv)

    conf = load_config()
    cores = os.cpu_count() or 1
    titles = ensure_titles(args.cache / f"titles_{args.n}_{args.seed}.parquet", args.n, args.seed)

    duck_vocab, duck_s = duckdb_vocabulary(titles, conf.labels, threads=cores)
    print(
        f"duckdb counting:   {duck_s:7.2f}s  {args.n / duck_s:12,.0f} titles/s  ({len(duck_vocab)} words)", flush=True
    )

    from softlines_attr.config import SparkProfile
    from softlines_attr.labels.job import run_label_job
    from softlines_attr.spark import build_session

    profile = conf.spark
    spark = build_session(
        SparkProfile(profile.name, args.master, {**profile.conf, "spark.driver.memory": "8g"}),
        "bench-labels",
        master=args.master,
    )
    try:
        spark_vocab, spark_s = spark_vocabulary(spark, titles, conf)
        print(
            f"spark counting:    {spark_s:7.2f}s  {args.n / spark_s:12,.0f} titles/s  ({len(spark_vocab)} words)",
            flush=True,
        )
        same = spark_vocab == duck_vocab
        if not same:
            only_spark = sorted(set(spark_vocab) - set(duck_vocab))[:10]
            only_duck = sorted(set(duck_vocab) - set(spark_vocab))[:10]
            print(f"VOCABULARY MISMATCH: spark-only {only_spark} duckdb-only {only_duck}", flush=True)
        t0 = time.perf_counter()
        result = run_label_job(spark, conf, catalog_path=str(titles), out_dir=str(args.out))
        job_s = time.perf_counter() - t0
    finally:
        spark.stop()
    s = result.summary
    print(
        f"spark whole job:   {job_s:7.2f}s  {args.n / job_s:12,.0f} titles/s  (labelled {s['rows_labelled']:,}, "
        f"rejected {s['rows_rejected']:,})"
    )
    ratio = duck_s / spark_s
    print(f"counting ratio spark/duckdb (throughput): {ratio:.2f}x   (target >= 0.35x)")
    print(f"whole job: {args.n / job_s:,.0f} titles/s   (target >= 150,000)")
    print(f"vocabularies identical: {same}")
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "n_titles": args.n,
        "cores": cores,
        "machine": platform.platform(),
        "duckdb_count_s": round(duck_s, 3),
        "spark_count_s": round(spark_s, 3),
        "spark_job_s": round(job_s, 3),
        "duckdb_titles_per_s": round(args.n / duck_s),
        "spark_count_titles_per_s": round(args.n / spark_s),
        "spark_job_titles_per_s": round(args.n / job_s),
        "count_ratio_spark_vs_duckdb": round(ratio, 3),
        "vocabularies_identical": same,
        "vocabulary_words": len(spark_vocab),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
