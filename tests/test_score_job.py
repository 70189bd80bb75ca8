"""The scoring job on real local Spark with real MXNet bundles: probabilities, errors, abstain, rerun, incremental."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_score_helpers import HEMLINE, PATTERN, SLEEVE, catalog_with_bad_rows, make_bundle, score_conf, write_catalog

from softlines_attr.errors import InputSchemaError, SoftlinesAttrError
from softlines_attr.images import load_image, to_network_input
from softlines_attr.io.commit import POINTER_FILE, resolve_current
from softlines_attr.io.errors import OutputLocationError
from softlines_attr.model.bundle import load_bundle
from softlines_attr.model.predictor import Predictor
from softlines_attr.score import ScoreJob, run_score_job
from softlines_attr.score.errors import ScoreInputError
from softlines_attr.score.schema import columns, schema_version

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _cur(out: Path) -> Path:
    """The current version of a job's output (what the indexer reads)."""
    return Path(resolve_current(str(out)))


@functools.lru_cache(maxsize=8)
def _bundle(bundle_dir: Path):
    return load_bundle(bundle_dir)


def _direct(bundle_dir: Path, uri: str, conf) -> dict[str, np.ndarray]:
    """In-process forward of one image with a Predictor of its own (its own bind), the same shared decode."""
    bundle = _bundle(bundle_dir)
    m = bundle.manifest
    img = load_image(
        Path(uri).read_bytes(),
        size=conf.images.store_size,
        mode=conf.images.resize_mode,
        max_pixels=conf.images.max_pixels,
    )
    x = to_network_input(img, input_size=m.input_shape[1], mean=m.mean, std=m.std, region=m.region)
    return {k: v[0] for k, v in Predictor(bundle, 1).predict(x[None]).items()}


@pytest.fixture(scope="module")
def run1(spark, tmp_path_factory):
    """Two bundles (single-head hemline with an abstain threshold, multi-head pattern + sleeve_type) over every
    bad-row kind."""
    root = tmp_path_factory.mktemp("score")
    conf = score_conf(root)
    rows, expected = catalog_with_bad_rows(root)
    good = [
        r
        for r in rows
        if r["asin"] and r["asin"].startswith("A") and r["asin"] not in expected and not r["image_uri"].endswith(".dup")
    ]
    # threshold = the median hemline confidence of a direct forward, so some rows abstain and some do not
    probe = make_bundle(root / "probe", [("hemline", HEMLINE)], conf, seed=1)
    confs = sorted(float(_direct(probe, r["image_uri"], conf)["hemline"].max()) for r in good)
    threshold = (confs[len(confs) // 2 - 1] + confs[len(confs) // 2]) / 2
    hem = make_bundle(
        root / "models" / "hemline", [("hemline", HEMLINE)], conf, seed=1, thresholds={"hemline": threshold}
    )
    multi = make_bundle(
        root / "models" / "multi",
        [("pattern", PATTERN), ("sleeve_type", SLEEVE)],
        conf,
        seed=2,
        thresholds={"pattern": 0.0},
    )
    catalog = write_catalog(root / "catalog.parquet", rows)
    job = ScoreJob(str(catalog), (str(hem), str(multi)), str(root / "out"))
    summary = run_score_job(spark, conf, job)
    return {
        "root": root,
        "conf": conf,
        "rows": rows,
        "expected": expected,
        "good": good,
        "summary": summary,
        "out": root / "out",
        "hem": hem,
        "multi": multi,
        "threshold": threshold,
        "catalog": catalog,
        "job": job,
    }


def test_accounting_and_every_error_reason(run1) -> None:
    s, out = run1["summary"], run1["out"]
    assert (
        s["rows_in"] == len(run1["rows"]) == s["rows_scored"] + s["rows_errors"] + s["rows_skipped"] + s["rows_carried"]
    )
    assert s["rows_skipped"] == 1 and s["skipped_by_product_type"] == {"SKIRT": 1} and s["rows_carried"] == 0
    errors = _rows(_cur(out) / "errors")
    assert len(errors) == s["rows_errors"] == sum(s["errors_by_reason"].values())
    by_asin = {e["asin"]: e for e in errors if e["reason"] not in ("duplicate_asin", "missing_asin")}
    assert {a: e["reason"] for a, e in by_asin.items()} == run1["expected"]
    assert {e["reason"] for e in errors} >= {
        "missing",
        "truncated",
        "unreadable",
        "empty",
        "too_large",
        "unsupported_mode",
        "unsupported_scheme",
        "missing_image_uri",
        "duplicate_asin",
        "missing_asin",
    }
    stages = {e["reason"]: e["stage"] for e in errors}
    assert stages["missing"] == "fetch" and stages["truncated"] == "decode" and stages["duplicate_asin"] == "catalog"
    assert all(e["message"] and e["run_id"] == s["run_id"] for e in errors)
    attrs = _rows(_cur(out) / "attributes")
    assert len(attrs) == 3 * s["rows_scored"] == s["attribute_rows_scored"]
    pairs = Counter((r["asin"], r["attribute"]) for r in attrs)
    assert set(pairs.values()) == {1}
    scored = {r["asin"] for r in attrs}
    assert scored == {r["asin"] for r in run1["good"]}  # exotic images (RGBA PNG, CMYK, 16-bit, EXIF) are scored
    assert not scored & {e["asin"] for e in errors} and "S_skirt" not in scored
    assert (
        json.loads((_cur(out) / "_summary.json").read_text())["run_id"] == s["run_id"]
        and not (out / "_staging").exists()
    )
    assert json.loads((out / POINTER_FILE).read_text())["run_id"] == s["run_id"] and [
        p.name for p in (out / "runs").iterdir()
    ] == [s["run_id"]]
    assert s["model_loads_per_process_max"] == 1 and s["tasks"] >= 2
    cache = s["model_cache"]  # the workers' bounded model cache, with its memory
    assert cache["max_models"] == 6 and 1 <= cache["models_held_max"] <= 6 and cache["mb_held_max"] > 0
    profile = s["profile_seconds"]  # where the tasks' time went, per stage
    assert profile["forward"] > 0 and profile["decode"] > 0 and profile["task_cpu"] > 0


def test_probabilities_equal_a_direct_forward(run1) -> None:
    attrs = _rows(_cur(run1["out"]) / "attributes")
    conf = run1["conf"]
    checked = 0
    for r in run1["good"]:
        direct = {**_direct(run1["hem"], r["image_uri"], conf), **_direct(run1["multi"], r["image_uri"], conf)}
        for row in (a for a in attrs if a["asin"] == r["asin"]):
            probs = direct[row["attribute"]]
            classes = {"hemline": HEMLINE, "pattern": PATTERN, "sleeve_type": SLEEVE}[row["attribute"]]
            assert row["confidence"] == pytest.approx(float(probs.max()), abs=1e-5)
            assert [t["value"] for t in row["top_k"]] == [classes[i] for i in np.argsort(-probs, kind="stable")[:3]]
            np.testing.assert_allclose([t["probability"] for t in row["top_k"]], np.sort(probs)[::-1][:3], atol=1e-5)
            checked += 1
    assert checked == 3 * len(run1["good"])


def test_abstain_threshold_keeps_the_row(run1) -> None:
    attrs = [a for a in _rows(_cur(run1["out"]) / "attributes") if a["attribute"] == "hemline"]
    t = run1["threshold"]
    abstained = [a for a in attrs if a["value"] is None]
    assert abstained and len(abstained) < len(attrs)
    for a in attrs:
        assert (a["value"] is None) == (a["confidence"] < t)
        assert a["value"] is None or a["value"] == a["top_k"][0]["value"]
    assert all(a["value"] is not None for a in _rows(_cur(run1["out"]) / "attributes") if a["attribute"] == "pattern")
    assert run1["summary"]["attribute_rows_abstained"] == len(abstained)


def test_multi_head_wide_table_and_contract(run1) -> None:
    out, s = run1["out"], run1["summary"]
    assert sorted(p.name for p in (_cur(out) / "attributes").iterdir() if not p.name.startswith((".", "_"))) == [
        "attribute=hemline",
        "attribute=pattern",
        "attribute=sleeve_type",
    ]
    attrs = _rows(_cur(out) / "attributes")
    versions = {a["attribute"]: a["model_version"] for a in attrs}
    assert versions["pattern"] == versions["sleeve_type"] == s["models"][1]["model_version"] != versions["hemline"]
    assert versions["hemline"].startswith("hemline@") and len(versions["hemline"].split("@")[1]) == 12
    wide = _rows(_cur(out) / "wide")
    assert len(wide) == s["rows_scored"] and list(wide[0]) == [
        n for n, _ in columns("wide", ["hemline", "pattern", "sleeve_type"])
    ]
    by = {(a["asin"], a["attribute"]): a["value"] for a in attrs}
    for w in wide:
        vals = [by[(w["asin"], k)] for k in ("hemline", "pattern", "sleeve_type")]
        assert [w["hemline"], w["pattern"], w["sleeve_type"]] == vals
        assert w["keywords"] == [v for v in vals if v is not None] and w["run_id"] == s["run_id"]
    schema = pq.read_schema(next((_cur(out) / "attributes" / "attribute=hemline").glob("*.parquet")))
    assert str(schema.field("scored_at").type) == "timestamp[us, tz=UTC]"
    assert s["schema_version"] == schema_version() and s["attributes"] == ["hemline", "pattern", "sleeve_type"]


def test_rerun_is_a_new_version_and_a_run_id_is_never_reused(spark, run1) -> None:
    """A rerun commits a new run folder beside the old one (kept, unchanged); the same run id again is refused."""
    out = run1["out"]
    old = _cur(out)
    old_files = sorted(str(p.relative_to(old)) for p in old.rglob("*.parquet"))
    with pytest.raises(OutputLocationError, match=f"run {run1['summary']['run_id']} is already a committed version"):
        run_score_job(spark, run1["conf"], run1["job"], run_id=run1["summary"]["run_id"])
    assert _cur(out) == old
    s2 = run_score_job(spark, run1["conf"], run1["job"], run_id="rerun-2")
    assert _cur(out) == out / "runs" / "rerun-2" != old
    assert sorted(str(p.relative_to(old)) for p in old.rglob("*.parquet")) == old_files  # the old version is immutable
    attrs = _rows(_cur(out) / "attributes")
    assert len(attrs) == 3 * s2["rows_scored"] == 3 * run1["summary"]["rows_scored"] and {
        a["run_id"] for a in attrs
    } == {"rerun-2"}
    assert set(Counter((a["asin"], a["attribute"]) for a in attrs).values()) == {1}
    assert len(_rows(_cur(out) / "errors")) == run1["summary"]["rows_errors"]
    assert json.loads((out / POINTER_FILE).read_text())["history"] == [run1["summary"]["run_id"]]


def test_a_failed_run_leaves_the_previous_output(spark, run1) -> None:
    """``device = "gpu"`` on a task without a GPU resource fails every task: nothing is committed, nothing staged
    stays."""
    out = run1["out"]
    pointer = (out / POINTER_FILE).read_text()
    current = _cur(out)
    tables = {
        t: sorted(str(p.relative_to(current)) for p in (current / t).rglob("*.parquet"))
        for t in ("attributes", "wide", "errors")
    }
    runs = sorted(p.name for p in (out / "runs").iterdir())
    (run1["root"] / "gpu_conf").mkdir()
    gpu_conf = score_conf(run1["root"] / "gpu_conf", 'device = "gpu"\n')  # appended to the [score] table
    with pytest.raises(Exception, match="ScoreDeviceError"):
        run_score_job(spark, gpu_conf, run1["job"])
    assert (out / POINTER_FILE).read_text() == pointer and sorted(p.name for p in (out / "runs").iterdir()) == runs
    assert {t: sorted(str(p.relative_to(current)) for p in (current / t).rglob("*.parquet")) for t in tables} == tables


def test_incremental_carries_unchanged_rows_and_rescores_changed_ones(spark, run1, tmp_path) -> None:
    conf = run1["conf"]
    first = {(a["asin"], a["attribute"]): a for a in _rows(_cur(run1["out"]) / "attributes")}
    first_run = json.loads((_cur(run1["out"]) / "_summary.json").read_text())["run_id"]
    rows = [dict(r) for r in run1["rows"]]
    good = [r["asin"] for r in run1["good"]]
    changed, removed = good[0], good[1]
    for r in rows:
        if r["asin"] == changed:
            r["image_uri"] = next(g["image_uri"] for g in run1["good"] if g["asin"] == good[2])
    rows = [r for r in rows if r["asin"] != removed] + [{"asin": "N_new", "image_uri": run1["good"][3]["image_uri"]}]
    catalog = write_catalog(tmp_path / "catalog2.parquet", rows)
    # same models: only the changed image and the new asin are scored
    s = run_score_job(
        spark,
        conf,
        ScoreJob(
            str(catalog), (str(run1["hem"]), str(run1["multi"])), str(tmp_path / "inc"), previous_dir=str(run1["out"])
        ),
    )
    n_good = len(good) - 1 + 1
    assert s["rows_scored"] == 2 and s["rows_carried"] == n_good - 2 and s["attribute_rows_carried"] == 3 * (n_good - 2)
    assert s["rows_in"] == s["rows_scored"] + s["rows_carried"] + s["rows_errors"] + s["rows_skipped"]
    attrs = {(a["asin"], a["attribute"]): a for a in _rows(_cur(tmp_path / "inc") / "attributes")}
    assert len(attrs) == 3 * n_good and not any(k[0] == removed for k in attrs)
    for (asin, attr), a in attrs.items():
        if asin in (changed, "N_new"):
            assert a["run_id"] == s["run_id"]
        else:  # carried whole: the first run's id, time and values
            assert {k: a[k] for k in ("run_id", "scored_at", "value", "confidence")} == {
                k: first[(asin, attr)][k] for k in ("run_id", "scored_at", "value", "confidence")
            }
    assert attrs[(changed, "hemline")]["image_uri"] == run1["good"][2]["image_uri"]
    assert len(_rows(_cur(tmp_path / "inc") / "wide")) == n_good

    # a new hemline model, in place (--previous = --out): hemline is rescored everywhere, the multi-head bundle's
    # rows are carried
    hem2 = make_bundle(tmp_path / "models" / "hemline", [("hemline", HEMLINE)], conf, seed=5)
    s2 = run_score_job(
        spark,
        conf,
        ScoreJob(
            str(catalog), (str(hem2), str(run1["multi"])), str(tmp_path / "inc"), previous_dir=str(tmp_path / "inc")
        ),
    )
    assert s2["rows_scored"] == n_good and s2["rows_carried"] == 0 and s2["previous_run_id"] == s["run_id"]
    assert s2["attribute_rows_scored"] == n_good and s2["attribute_rows_carried"] == 2 * n_good
    attrs2 = _rows(_cur(tmp_path / "inc") / "attributes")
    assert {a["run_id"] for a in attrs2 if a["attribute"] == "hemline"} == {s2["run_id"]}
    assert {a["run_id"] for a in attrs2 if a["attribute"] != "hemline"} == {first_run, s["run_id"]}
    assert len(attrs2) == 3 * n_good and set(Counter((a["asin"], a["attribute"]) for a in attrs2).values()) == {1}


def test_written_tables_follow_the_contract(spark, run1) -> None:
    from softlines_attr.score.schema import check_written

    out = _cur(run1["out"])
    check_written(spark.read.parquet(str(out / "attributes")), "attributes")
    check_written(spark.read.parquet(str(out / "wide")), "wide", ["hemline", "pattern", "sleeve_type"])
    check_written(spark.read.parquet(str(out / "errors")), "errors")


def test_bad_inputs_are_clear_job_errors(spark, run1, tmp_path) -> None:
    write_catalog(tmp_path / "c.parquet", [{"asin": "A", "image_uri": "x.jpg"}])
    import pyarrow as pa

    pq.write_table(pa.table({"asin": ["A"], "title": ["t"]}), tmp_path / "no_uri.parquet")
    with pytest.raises(InputSchemaError, match=r"missing column\(s\) \['image_uri'\]"):
        run_score_job(
            spark, run1["conf"], ScoreJob(str(tmp_path / "no_uri.parquet"), (str(run1["hem"]),), str(tmp_path / "o"))
        )
    with pytest.raises(ScoreInputError, match="expected a complete scoring run"):
        run_score_job(
            spark,
            run1["conf"],
            ScoreJob(str(tmp_path / "c.parquet"), (str(run1["hem"]),), str(tmp_path / "o"), previous_dir=str(tmp_path)),
        )
    with pytest.raises(SoftlinesAttrError, match="is the same model as"):
        run_score_job(
            spark,
            run1["conf"],
            ScoreJob(str(tmp_path / "c.parquet"), (str(run1["hem"]), str(run1["root"] / "probe")), str(tmp_path / "o")),
        )
    other = make_bundle(tmp_path / "hem9", [("hemline", HEMLINE)], run1["conf"], seed=9)
    with pytest.raises(SoftlinesAttrError, match="'hemline' is predicted by .* and by"):
        run_score_job(
            spark,
            run1["conf"],
            ScoreJob(str(tmp_path / "c.parquet"), (str(run1["hem"]), str(other)), str(tmp_path / "o")),
        )
    assert not (tmp_path / "o").exists()


def test_decoding_beside_the_forward_pass_gives_the_same_rows(spark, run1, tmp_path) -> None:
    """score.decode_overlap: on CPU (auto) the forward loop decodes each batch itself; 'on' the fetch threads decode
    beside the forward pass (a GPU's layout). The tables are the same, row for row."""
    from dataclasses import replace

    from softlines_attr.score.resources import decode_in_fetch_threads

    conf = run1["conf"]
    assert conf.score.decode_overlap == "auto" and not decode_in_fetch_threads(conf)  # run1 decoded in turn
    on = replace(conf, score=replace(conf.score, decode_overlap="on"))
    assert decode_in_fetch_threads(on)
    assert decode_in_fetch_threads(replace(conf, score=replace(conf.score, device="gpu")))
    assert not decode_in_fetch_threads(replace(conf, score=replace(conf.score, device="gpu", decode_overlap="off")))
    s = run_score_job(spark, on, replace(run1["job"], out_dir=str(tmp_path / "out")))

    def table(out: Path, name: str, drop: tuple[str, ...]) -> list[tuple]:
        rows = _rows(_cur(out) / name)
        return sorted(repr({k: v for k, v in r.items() if k not in drop}) for r in rows)

    for name, drop in (("attributes", ("run_id", "scored_at")), ("errors", ("run_id",)), ("wide", ("run_id",))):
        assert table(tmp_path / "out", name, drop) == table(run1["out"], name, drop), name
    assert s["rows_scored"] == run1["summary"]["rows_scored"] and s["profile_seconds"]["decode"] > 0


def test_a_written_file_too_many_or_off_contract_fails_the_accounting(run1, tmp_path) -> None:
    """The written tables are checked from their footers: a duplicate data file (e.g. a second task attempt's) is
    rows the job did not count, and a file with another column type is off the contract."""
    import shutil

    import pyarrow as pa

    from softlines_attr.io.commit import StagedOutput
    from softlines_attr.score.accounting import check_accounting
    from softlines_attr.score.errors import ScoreAccountingError, ScoreSchemaError
    from softlines_attr.score.written import check_written_table

    s = run1["summary"]
    attributes = s["attributes"]
    copy = tmp_path / "out"
    shutil.copytree(_cur(run1["out"]), copy / "runs" / s["run_id"])
    staged = StagedOutput(str(copy), s["run_id"], job="score")
    facts = {
        "rows_in": s["rows_in"],
        "to_score": s["rows_scored"] + s["errors_by_stage"].get("fetch", 0) + s["errors_by_stage"].get("decode", 0),
        "skipped": s["rows_skipped"],
        "rows_scored": s["rows_scored"],
        "rows_carried": s["rows_carried"],
    }
    counts = {"rows": s["attribute_rows"], "asins": s["rows_scored"], "pairs": s["attribute_rows"]}

    def check() -> None:
        written = {
            t: check_written_table(staged, t, attributes if t == "wide" else ())
            for t in ("attributes", "wide", "errors")
        }
        check_accounting(facts, facts["to_score"], counts, written, attributes, s["rows_errors"])

    check()  # the committed run as written passes
    hem = next((copy / "runs" / s["run_id"] / "attributes" / "attribute=hemline").glob("*.parquet"))
    shutil.copy(hem, hem.with_name("part-99999-duplicate.parquet"))
    with pytest.raises(
        ScoreAccountingError, match=r"attribute rows in the written files \(\d+\) = attribute rows counted"
    ):
        check()
    hem.with_name("part-99999-duplicate.parquet").unlink()
    table = pq.read_table(hem)
    table = table.set_column(
        table.schema.get_field_index("confidence"), "confidence", table.column("confidence").cast(pa.float64())
    )
    pq.write_table(table, hem)
    with pytest.raises(
        ScoreSchemaError,
        match=r"table attributes: expected columns .*'confidence', 'float'.* found .*'confidence', 'double'",
    ):
        check()
