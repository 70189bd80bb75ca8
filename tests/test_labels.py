"""The label job on a real local SparkSession: tokeniser rules, vocabularies, labels, rejects, commit."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from softlines_attr.cli import main
from softlines_attr.errors import InputFormatError, InputSchemaError
from softlines_attr.io.commit import POINTER_FILE, SUMMARY_FILE, resolve_current
from softlines_attr.labels.contract import trim_space
from softlines_attr.labels.job import REASONS, run_label_job
from softlines_attr.labels.tokenize import title_tokens
from softlines_attr.labels.vocabulary import (
    VocabularyWordError,
    has_label_word,
    label_arrays,
    label_lookup,
    labels_column,
)

REPO = Path(__file__).resolve().parent.parent

TOKEN_CASES = [
    # lower case, possessive, size words, punctuation
    ("Women's Off-the-Shoulder Floral Maxi Dress, Size XL", ["off-the-shoulder", "floral", "maxi", "dress"]),
    # HTML entities and tags, curly quotes, en dash inside a word, fraction kept whole
    (
        "Café “Boho” V–Neck 3/4 Sleeve Dress &amp; Belt <b>NEW</b>",
        ["cafe", "boho", "v-neck", "3/4", "sleeve", "dress", "belt"],
    ),
    # full-width letters; numbers, ranges, prefixed and suffixed sizes, measures dropped
    ("ＦＬＯＲＡＬ Midi Dress 8-10 10/12 US8 2XL 32W 10cm 2024 12.5", ["floral", "midi", "dress"]),
    # a word counted once per title; ligature and sharp s expanded; 1/2 kept
    ("A-LINE a-line Fit &amp; Flare Straße ﬁt 1/2 sleeve", ["a-line", "fit", "flare", "strasse", "1/2", "sleeve"]),
    # numeric entities, non-breaking space, trailing hyphen, apostrophe entity
    ("O’Neill Dress &#8217;s &nbsp;knee-length dress-", ["oneill", "dress", "knee-length"]),
    # only sizes, numbers and stop words
    ("XL 2XL 12 14 / the new", []),
    ("", []),
    (None, []),
    # one-character tokens and a 2-piece set
    ("x y z 2-piece bodycon", ["bodycon"]),
    # every two-letter expansion, upper case too (each replace runs only on a title holding its character)
    ("Œuvre Æther BĲou ﬂare ŒUVRE bĳou", ["oeuvre", "aether", "bijou", "flare"]),
]


def test_tokeniser_edge_cases(spark, conf):
    df = spark.createDataFrame([(i, t) for i, (t, _) in enumerate(TOKEN_CASES)], "i int, title string")
    got = {r["i"]: r["t"] for r in df.select("i", title_tokens(F.col("title"), conf.labels).alias("t")).collect()}
    for i, (title, expected) in enumerate(TOKEN_CASES):
        assert got[i] == expected, f"title {title!r}"


def _small_vocab_conf(conf):
    """Small vocabularies so that truncation is exercised on a small catalog."""
    return dataclasses.replace(conf, labels=dataclasses.replace(conf.labels, vocab_sizes=(10, 40, 0), min_doc_freq=2))


@pytest.fixture(scope="module")
def labelled(spark, conf, generated_catalog, tmp_path_factory):
    """The generated catalog plus hand-made bad rows, labelled once; returns (input rows, out dir, conf)."""
    catalog = pq.read_table(generated_catalog / "catalog.parquet")
    extra = pa.table(
        {
            "asin": [None, "  ", "B0EXTRA001", "B0EXTRA002", "B0EXTRA003"],
            "parent_asin": [None, None, None, "", "B0EXTRA002"],
            "title": ["floral dress", "floral dress", "qqzx wwvy", "   ", "floral maxi dress"],
            "image_uri": ["/img/a.jpg", "/img/b.jpg", "/img/c.jpg", "/img/d.jpg", None],
            "product_type": ["DRESS"] * 5,
        },
        schema=catalog.schema,
    )
    table = pa.concat_tables([catalog, extra])
    tmp = tmp_path_factory.mktemp("labels")
    path = tmp / "catalog.parquet"
    pq.write_table(table, path)
    small = _small_vocab_conf(conf)
    result = run_label_job(spark, small, catalog_path=str(path), out_dir=str(tmp / "out"))
    return table.to_pylist(), Path(result.out_dir), small, result.summary


def _read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _cur(out: Path) -> Path:
    """The current version of a job's output."""
    return Path(resolve_current(str(out)))


def test_every_row_ends_in_labels_or_rejects(labelled):
    rows, out, _, summary = labelled
    labels, rejects = _read(_cur(out) / "labels"), _read(_cur(out) / "rejects")
    assert summary["rows_in"] == len(rows) == len(labels) + len(rejects)
    assert summary["rows_labelled"] == len(labels) and summary["rows_rejected"] == len(rejects)
    assert Counter(r["asin"] for r in rows) == Counter(
        [r["asin"] for r in labels] + [None if r["asin"] is None else r["asin"] for r in rejects]
    ) or Counter(r["asin"].strip() if r["asin"] else r["asin"] for r in rows) == Counter(
        [r["asin"] for r in labels] + [r["asin"] for r in rejects]
    )
    assert len({r["asin"] for r in labels}) == len(labels), "an asin is labelled twice"
    assert sum(summary["rejects_by_reason"].values()) == len(rejects)
    assert json.loads((_cur(out) / SUMMARY_FILE).read_text())["run_id"] == summary["run_id"]


def test_every_bad_row_class_gets_its_reason(labelled, generated_catalog):
    _, out, _, summary = labelled
    rejects = _read(_cur(out) / "rejects")
    assert all(summary["rejects_by_reason"][r] >= 1 for r in REASONS), summary["rejects_by_reason"]
    by_asin = {r["asin"]: r for r in rejects}
    expected = {
        "null_title": "empty_title",
        "empty_title": "empty_title",
        "size_only_title": "no_title_words",
        "null_image_uri": "missing_image_uri",
    }
    for bad in _read(generated_catalog / "bad_rows.parquet"):
        if bad["kind"] in expected:
            assert by_asin[bad["asin"]]["reason"] == expected[bad["kind"]], bad
    assert by_asin["B0EXTRA001"]["reason"] == "no_vocab_words"
    assert by_asin["B0EXTRA002"]["reason"] == "empty_title"
    assert by_asin["B0EXTRA003"]["reason"] == "missing_image_uri"
    assert {r["reason"] for r in rejects if r["asin"] in (None, "")} == {"missing_asin"}
    dup = [r for r in rejects if r["reason"] == "duplicate_asin"]
    assert dup and "appears 2 times" in dup[0]["message"]
    assert all(r["stage"] == "labels" and r["message"] for r in rejects)


def test_split_by_parent(labelled):
    _, out, small, summary = labelled
    labels = _read(_cur(out) / "labels")
    splits_per_parent: dict[str, set[str]] = {}
    for r in labels:
        splits_per_parent.setdefault(r["parent_asin"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_per_parent.values()), "a parent straddles the split"
    val_parents = sum(1 for s in splits_per_parent.values() if s == {"val"})
    assert 0.05 < val_parents / len(splits_per_parent) < 0.4
    assert set(summary["labelled_by_split"]) == {"train", "val"}
    assert all(r["parent_asin"] for r in labels), "a null parent must become the asin"


def test_vocabularies_and_label_indices(spark, labelled):
    rows, out, small, _ = labelled
    vocab = _read(_cur(out) / "vocabulary")
    labels = {r["asin"]: r for r in _read(_cur(out) / "labels")}
    every = sorted((v for v in vocab if v["vocab_size"] == 0), key=lambda v: v["rank"])
    assert [v["rank"] for v in every] == list(range(1, len(every) + 1))
    assert all(v["label_index"] == v["rank"] - 1 for v in every)
    # ordered by doc_freq descending, ties by word ascending
    assert every == sorted(every, key=lambda v: (-v["doc_freq"], v["word"]))
    assert all(v["doc_freq"] >= small.labels.min_doc_freq for v in every)
    for size in (10, 40):
        sized = sorted((v for v in vocab if v["vocab_size"] == size), key=lambda v: v["rank"])
        assert [v["word"] for v in sized] == [v["word"] for v in every[:size]]

    # recompute labels and document frequencies from the tokeniser's own output
    title_of = {r["asin"]: r["title"] for r in rows if r["asin"] in labels}
    df = spark.createDataFrame(sorted(title_of.items()), "asin string, title string")
    tokens = {
        r["asin"]: r["t"] for r in df.select("asin", title_tokens(F.col("title"), small.labels).alias("t")).collect()
    }
    index = {v["word"]: v["label_index"] for v in every}
    for asin, toks in tokens.items():
        want = sorted(index[t] for t in toks if t in index)
        assert labels[asin][labels_column(0)] == want
        assert labels[asin][labels_column(10)] == [i for i in want if i < 10]
        assert labels[asin][labels_column(40)] == [i for i in want if i < 40]
    counted = Counter(t for toks in tokens.values() for t in toks)
    # every labelled row contributes its words; rows rejected for no vocabulary word have none of them
    assert {v["word"]: v["doc_freq"] for v in every} == {w: counted[w] for w in index}


def test_rerun_is_identical_and_replaces_whole(spark, labelled, tmp_path):
    rows, out, small, summary = labelled
    catalog = tmp_path / "catalog.parquet"
    pq.write_table(pa.Table.from_pylist(rows), catalog)
    again = tmp_path / "again"
    (again / "labels").mkdir(parents=True)  # the flat layout of an older version: removed by the first versioned commit
    (again / "labels" / "stale.parquet").write_bytes(b"from an older run")
    (again / "_staging" / "dead").mkdir(parents=True)
    (again / SUMMARY_FILE).write_text(json.dumps({"stage": "labels", "run_id": "old"}))
    result = run_label_job(spark, small, catalog_path=str(catalog), out_dir=str(again))
    assert sorted(p.name for p in again.iterdir()) == [POINTER_FILE, "runs"]
    assert _cur(again) == Path(result.version_dir) == again / "runs" / result.summary["run_id"]
    for table in ("labels", "vocabulary", "rejects"):
        a, b = _read(_cur(out) / table), _read(_cur(again) / table)
        sort = lambda r: json.dumps(r, sort_keys=True, default=str)
        assert sorted(a, key=sort) == sorted(b, key=sort), table


def test_failed_run_leaves_previous_output(spark, labelled, tmp_path):
    _, out, small, summary = labelled
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"asin": ["A1"], "headline": ["floral dress"]}), bad)
    before = (out / POINTER_FILE).read_text()
    runs = sorted(p.name for p in (out / "runs").iterdir())
    with pytest.raises(
        InputSchemaError,
        match=r"missing column\(s\) \['title', 'image_uri'\]; expected columns .* found \['asin', 'headline'\]",
    ):
        run_label_job(spark, small, catalog_path=str(bad), out_dir=str(out))
    assert (out / POINTER_FILE).read_text() == before and sorted(p.name for p in (out / "runs").iterdir()) == runs
    assert len(_read(_cur(out) / "labels")) == summary["rows_labelled"]
    with pytest.raises(InputFormatError, match=r"does not exist"):
        run_label_job(spark, small, catalog_path=str(tmp_path / "missing.parquet"), out_dir=str(out))


def test_count_by_parent_and_input_formats(spark, conf, tmp_path):
    rows = [
        {
            "asin": f"Z{i}",
            "parent_asin": "PZ",
            "title": "zebra dress",
            "image_uri": f"/i/z{i}.jpg",
            "product_type": "DRESS",
        }
        for i in range(5)
    ] + [
        {
            "asin": f"Y{i}",
            "parent_asin": f"PY{i}",
            "title": 'yak dress, "lace"',
            "image_uri": f"/i/y{i}.jpg",
            "product_type": "DRESS",
        }
        for i in range(3)
    ]
    base = dataclasses.replace(conf, labels=dataclasses.replace(conf.labels, vocab_sizes=(0,), min_doc_freq=1))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import csv

    with (tmp_path / "c.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    results = {}
    for name in ("c.parquet", "c.jsonl", "c.csv"):
        run_label_job(spark, base, catalog_path=str(tmp_path / name), out_dir=str(tmp_path / f"out_{name}"))
        results[name] = sorted(
            (v["word"], v["doc_freq"], v["rank"]) for v in _read(_cur(tmp_path / f"out_{name}") / "vocabulary")
        )
    assert results["c.parquet"] == results["c.jsonl"] == results["c.csv"]
    assert dict((w, d) for w, d, _ in results["c.parquet"]) == {"dress": 8, "zebra": 5, "yak": 3, "lace": 3}

    by_parent = dataclasses.replace(base, labels=dataclasses.replace(base.labels, count_by_parent=True))
    run_label_job(spark, by_parent, catalog_path=str(tmp_path / "c.parquet"), out_dir=str(tmp_path / "out_parent"))
    freq = {v["word"]: (v["doc_freq"], v["rank"]) for v in _read(_cur(tmp_path / "out_parent") / "vocabulary")}
    assert freq == {"dress": (4, 1), "lace": (3, 2), "yak": (3, 3), "zebra": (1, 4)}


def _run_script(script: Path, argv: list[str]) -> int | str | None:
    """Run a spark-submit entry point in this process (``__main__``, ``sys.argv``), as spark-submit runs it;
    its exit code."""
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code
    finally:
        sys.argv = saved
    return None


def test_job_entry_point_and_cli_errors(spark, generated_catalog, tmp_path, capsys):
    """In-process, on the session's Spark: a command leaves a session it did not start running."""
    code = _run_script(
        REPO / "jobs" / "build_labels.py",
        [
            "--catalog",
            str(generated_catalog / "catalog.parquet"),
            "--out",
            str(tmp_path / "out"),
            "--master",
            "local[2]",
        ],
    )
    done = capsys.readouterr()
    assert code == 0, done.err[-3000:]
    assert "rows in 241 = labelled" in done.out
    summary = json.loads((_cur(tmp_path / "out") / SUMMARY_FILE).read_text())
    assert summary["rows_in"] == summary["rows_labelled"] + summary["rows_rejected"] == 241
    assert spark.range(2).count() == 2  # still running

    bad_conf = tmp_path / "bad.toml"
    bad_conf.write_text("[labels]\nvocab_size = [10]\n")
    assert main(["labels", "--catalog", "x.parquet", "--out", str(tmp_path / "o"), "--conf", str(bad_conf)]) == 2
    assert "bad.toml: unknown key 'labels.vocab_size'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as helped:
        main(["labels", "--help"])
    out = capsys.readouterr().out
    assert helped.value.code == 0 and "--catalog" in out and "--taxonomy" in out


@pytest.mark.parametrize("hash_threshold", ["0", "1000000"])
def test_label_arrays_by_hash_and_by_scan(spark, hash_threshold):
    """The map-literal lookup gives each row its ascending label indices per size, through the hash index and
    through the scan of the keys alike; an unknown word, an empty and a null token list give no labels."""
    words = ["dress", "maxi", "floral", "v-neck", "3/4", "sleeve"]
    rows = [(1, ["sleeve", "dress", "unknown", "3/4"]), (2, ["unknown"]), (3, []), (4, None), (5, ["v-neck", "maxi"])]
    df = spark.createDataFrame(rows, "id int, tokens array<string>")
    key = "spark.sql.optimizer.mapLookupHashThreshold"
    before = spark.conf.get(key, None)
    spark.conf.set(key, hash_threshold)
    try:
        arrays = label_arrays(F.col("tokens"), words, (2, 4, 0))
        got = {
            r["id"]: (r["a"], r["b"], r["c"], r["any"])
            for r in df.select(
                "id", *[a.alias(n) for a, n in zip(arrays, "abc")], has_label_word(F.col("tokens"), words).alias("any")
            ).collect()
        }
    finally:
        spark.conf.unset(key) if before is None else spark.conf.set(key, before)
    assert got == {
        1: ([0], [0], [0, 4, 5], True),
        2: ([], [], [], False),
        3: ([], [], [], False),
        4: ([], [], [], False),
        5: ([1], [1, 3], [1, 3], True),
    }
    assert df.select(*label_arrays(F.col("tokens"), [], (0,))).collect()[0][0] == []


def test_label_lookup_refuses_a_word_with_a_space():
    with pytest.raises(VocabularyWordError, match="without spaces, found 1 like \\['maxi dress'\\]"):
        label_lookup(["dress", "maxi dress"])


def test_trim_space_matches_the_regular_expression_at_every_edge(spark):
    """The guarded trim gives what ``regexp_replace(^\\s+|\\s+$)`` gives, including before a final line terminator
    (Java's ``$`` matches there too) and for whitespace that ``\\s`` does not cover (a no-break space stays)."""
    values = [
        " a",
        "a ",
        "\ta\n",
        "a\r\n",
        "a \u0085",
        "a\u0085",
        "a \u2028",
        "  \u2029",
        "",
        " ",
        None,
        "\u00a0a\u00a0",
        "a b",
        "a\u2028b",
        "a\nb ",
        "\U0001f600 ",
        " \U0001f600",
        "\U0001f600",
    ]
    df = spark.createDataFrame([(v,) for v in values], "s string")
    got = df.select(trim_space(F.col("s")).alias("t"), F.regexp_replace("s", r"^\s+|\s+$", "").alias("r")).collect()
    assert [r["t"] for r in got] == [r["r"] for r in got]
    assert [r["t"] for r in got] == [
        "a",
        "a",
        "a",
        "a",
        "a\u0085",
        "a\u0085",
        "a\u2028",
        "\u2029",
        "",
        "",
        None,
        "\u00a0a\u00a0",
        "a b",
        "a\u2028b",
        "a\nb",
        "\U0001f600",
        "\U0001f600",
        "\U0001f600",
    ]
