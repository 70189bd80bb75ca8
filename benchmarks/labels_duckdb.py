"""The label benchmark's same-work reference: the whole label job in DuckDB, with the label job's rules.

Used by ``bench_labels.py``; holds no command of its own. From the same catalog Parquet file to the same
three Parquet tables, in one process:

* clean: asin and image_uri trimmed, a blank parent_asin becomes the asin;
* dedupe: per asin the most usable row (a title, then an image_uri), then the first by image_uri,
  title, parent_asin (the job's order); the others are ``duplicate_asin`` rejects;
* tokens: the tokeniser's regular expressions and translation table (``softlines_attr.labels.tokenize``)
  evaluated by RE2, with the per-token drop rule as a list filter;
* split: ``val`` for a seeded ``xxhash64(parent_asin)`` bucket below ``val_fraction`` (Spark's xxhash64,
  bit for bit, through the ``xxhash`` package, as a vectorised DuckDB function);
* reject reasons in the job's order; document frequency over the kept rows; ranking; the vocabularies;
* label indices per product (every token looked up in the widest vocabulary, sorted, then cut per size);
  ``no_vocab_words`` for a product left without one;
* ``labels``, ``vocabulary`` and ``rejects`` written as Parquet.

:func:`compare_outputs` reads both jobs' tables back and checks they hold the same rows.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pyarrow as pa  # at module level: DuckDB reads the split function's annotations

from softlines_attr.config import LabelsConfig, PipelineConfig
from softlines_attr.labels import tokenize as tk
from softlines_attr.labels.vocabulary import labels_column

_WS = r"^[ \t\n\x0B\f\r]+|[ \t\n\x0B\f\r]+$"  # Java's \s, what the job's trim_space strips


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _blank(col: str) -> str:
    return f"({col} IS NULL OR trim({col}) = '')"


def _split_function(seed: int, val_fraction: float):
    """A vectorised ``split(parent_asin)`` equal to the job's ``assign_split`` (Spark's xxhash64 of (seed, parent))."""
    import xxhash

    # Spark hashes the seed literal first (an int, or a long past 32 bits) with seed 42, then the string with that
    seed_bytes = struct.pack("<i", seed) if -(1 << 31) <= seed < (1 << 31) else struct.pack("<q", seed)
    h0 = xxhash.xxh64_intdigest(seed_bytes, seed=42)
    cut = int(round(val_fraction * 1_000_000))

    def split(parents: pa.Array) -> pa.Array:
        out = []
        for p in parents.to_pylist():
            h = h0 if p is None else xxhash.xxh64_intdigest(p.encode("utf-8"), seed=h0)
            signed = h - (1 << 64) if h >= (1 << 63) else h
            out.append("val" if signed % 1_000_000 < cut else "train")
        return pa.array(out, pa.string())

    return split


def tokens_sql(lab: LabelsConfig) -> str:
    """The tokeniser of ``softlines_attr.labels.tokenize`` as one DuckDB expression over ``title``."""
    src, dst = tk.translation_table()
    text = f"translate(lower(coalesce(title, '')), {sql_str(src)}, {sql_str(dst)})"
    for old, new in tk._MULTI_CHAR.items():
        text = f"replace({text}, {sql_str(old)}, {sql_str(new)})"
    text = f"regexp_replace({text}, {sql_str(tk.APOSTROPHE_ENTITY_RE)}, '''', 'g')"
    text = f"regexp_replace({text}, {sql_str(tk.HTML_NOISE_RE)}, ' ', 'g')"
    text = f"regexp_replace({text}, {sql_str(tk.APOSTROPHE_RE)}, '', 'g')"
    removed = "[" + ", ".join(sql_str(w) for w in sorted(set(lab.stop_words) | set(lab.size_tokens))) + "]"
    keep = (
        f"lambda x: NOT list_contains({removed}, x) AND length(x) >= {lab.min_token_length} "
        f"AND (NOT regexp_matches(x, {sql_str(tk.DROP_TOKEN_RE)}) OR regexp_matches(x, "
        f"{sql_str(tk.KEEP_FRACTION_RE)}))"
    )
    return f"list_distinct(list_filter(regexp_extract_all({text}, {sql_str(tk.TOKEN_RE)}), {keep}))"


def duckdb_label_job(catalog: Path, out: Path, conf: PipelineConfig, threads: int) -> tuple[float, dict[str, int]]:
    """The whole label job in DuckDB; returns (seconds, counts: rows in, labelled, rejected)."""
    import duckdb

    lab = conf.labels
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads TO {threads}")
    con.execute("SET preserve_insertion_order = false")
    con.create_function(
        "spark_split", _split_function(conf.seed, lab.val_fraction), ["VARCHAR"], "VARCHAR", type="arrow"
    )
    asin = f"regexp_replace(asin, {sql_str(_WS)}, '', 'g')"
    widest = max(lab.vocab_sizes) if 0 not in lab.vocab_sizes else 0
    sizes_sql = ", ".join(
        f"list_filter(labels_all, lambda x: x < {s}) AS {labels_column(s)}" for s in lab.vocab_sizes if s != 0
    )
    label_cols = ", ".join(labels_column(s) for s in lab.vocab_sizes)
    statements = [
        f"""CREATE TEMP TABLE clean AS SELECT
                {asin} AS asin,
                CASE WHEN {_blank("parent_asin")} THEN {asin}
                     ELSE regexp_replace(parent_asin, {sql_str(_WS)}, '', 'g') END AS parent_asin,
                title,
                regexp_replace(image_uri, {sql_str(_WS)}, '', 'g') AS image_uri,
                product_type
            FROM read_parquet({sql_str(str(catalog))})""",
        f"""CREATE TEMP TABLE rows AS SELECT *,
                CASE WHEN {_blank("asin")} THEN 'missing_asin'
                     WHEN dup_rank > 1 THEN 'duplicate_asin'
                     WHEN {_blank("title")} THEN 'empty_title'
                     WHEN {_blank("image_uri")} THEN 'missing_image_uri'
                     WHEN len(tokens) = 0 THEN 'no_title_words' END AS reason
            FROM (SELECT *,
                    row_number() OVER (PARTITION BY asin ORDER BY {_blank("title")}, {_blank("image_uri")},
                        image_uri ASC NULLS LAST, title ASC NULLS LAST, parent_asin ASC NULLS LAST) AS dup_rank,
                    count(*) OVER (PARTITION BY asin) AS dup_count,
                    {tokens_sql(lab)} AS tokens,
                    spark_split(parent_asin) AS split
                  FROM clean)""",
        f"""CREATE TEMP TABLE ranked AS SELECT word, doc_freq,
                row_number() OVER (ORDER BY doc_freq DESC, word ASC) AS rank
            FROM (SELECT word, count(*) AS doc_freq
                  FROM (SELECT {"DISTINCT parent_asin, " if lab.count_by_parent else ""}unnest(tokens) AS word
                        FROM rows WHERE reason IS NULL)
                  GROUP BY word)
            WHERE doc_freq >= {lab.min_doc_freq}""",
        f"""CREATE TEMP TABLE labelled AS
            WITH ok AS (SELECT row_number() OVER () AS rid, * FROM rows WHERE reason IS NULL),
                 hits AS (SELECT rid, rank - 1 AS idx
                          FROM (SELECT rid, unnest(tokens) AS word FROM ok) JOIN ranked USING (word)
                          {f"WHERE rank <= {widest}" if widest else ""}),
                 lab AS (SELECT rid, list_sort(list(idx)) AS labels_all FROM hits GROUP BY rid)
            SELECT ok.*, coalesce(lab.labels_all, []::BIGINT[]) AS labels_all
            FROM ok LEFT JOIN lab USING (rid)""",
        "COPY ("
        + " UNION ALL ".join(
            f"SELECT {s} AS vocab_size, word, doc_freq, rank, rank - 1 AS label_index FROM ranked"
            + (f" WHERE rank <= {s}" if s else "")
            for s in lab.vocab_sizes
        )
        + f") TO {sql_str(str(out / 'vocabulary.parquet'))} (FORMAT parquet)",
        f"""COPY (SELECT asin, parent_asin, image_uri, product_type, split, {label_cols}
                  FROM (SELECT *{", " + sizes_sql if sizes_sql else ""} FROM labelled) WHERE len(labels_all) > 0)
            TO {sql_str(str(out / "labels.parquet"))} (FORMAT parquet)""",
        f"""COPY (SELECT asin, parent_asin, title, image_uri, product_type, 'labels' AS stage, reason,
                    CASE reason
                      WHEN 'missing_asin' THEN 'asin is null or blank; expected a product id'
                      WHEN 'duplicate_asin' THEN format('asin {{}} appears {{}} times in the catalog; one row is kept',
                                                        asin, dup_count)
                      WHEN 'empty_title' THEN 'title is null or blank; expected the product title'
                      WHEN 'missing_image_uri' THEN
                        'image_uri is null or blank; expected s3://bucket/key or a file path'
                      ELSE format('title {{}} has no label word after tokenisation (only numbers, sizes or stop words)',
                                  to_json([substring(title, 1, 200)])) END AS message
                  FROM rows WHERE reason IS NOT NULL
                  UNION ALL
                  SELECT asin, parent_asin, title, image_uri, product_type, 'labels', 'no_vocab_words',
                    format('no word of title {{}} is in the vocabulary (doc_freq >= {lab.min_doc_freq})',
                           to_json([title]))
                  FROM labelled WHERE len(labels_all) = 0)
            TO {sql_str(str(out / "rejects.parquet"))} (FORMAT parquet)""",
    ]
    start = time.perf_counter()
    for sql in statements:
        con.execute(sql)
    seconds = time.perf_counter() - start
    counts = {
        "rows_in": con.execute("SELECT count(*) FROM rows").fetchone()[0],
        "rows_labelled": con.execute(f"SELECT count(*) FROM read_parquet('{out / 'labels.parquet'}')").fetchone()[0],
        "rows_rejected": con.execute(f"SELECT count(*) FROM read_parquet('{out / 'rejects.parquet'}')").fetchone()[0],
    }
    con.close()
    return seconds, counts


def compare_outputs(spark_version_dir: str, duck_dir: Path, conf: PipelineConfig) -> dict:
    """Both jobs' labels, rejects and vocabulary tables, row for row (order aside; ``EXCEPT ALL`` both ways)."""
    import duckdb

    label_cols = ", ".join(labels_column(s) for s in conf.labels.vocab_sizes)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    out = {}
    for name, columns, duck_file in (
        ("labels", f"asin, parent_asin, image_uri, product_type, split, {label_cols}", "labels.parquet"),
        ("rejects", "asin, parent_asin, title, image_uri, product_type, stage, reason, message", "rejects.parquet"),
        ("vocabulary", "vocab_size, word, doc_freq, rank, label_index", "vocabulary.parquet"),
    ):
        a = f"SELECT {columns} FROM read_parquet({sql_str(f'{spark_version_dir}/{name}/*.parquet')})"
        b = f"SELECT {columns} FROM read_parquet({sql_str(str(duck_dir / duck_file))})"
        only_spark = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0]
        only_duck = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchone()[0]
        rows = con.execute(f"SELECT count(*) FROM ({a})").fetchone()[0]
        out[name] = {
            "rows": rows,
            "identical": only_spark == 0 and only_duck == 0,
            "only_spark": only_spark,
            "only_duckdb": only_duck,
        }
    con.close()
    return out
