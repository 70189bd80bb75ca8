"""``softlines-attr pipeline``: the scheduled method's steps run locally, end to end, with tiny settings (the demo
test's: a width 0.125 network at 32 px on a 400-product generated catalog), in-process on the tests' shared
SparkSession (a command uses a running session as it is and leaves it running)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from softlines_attr.cli import main
from softlines_attr.errors import ConfigError, UnknownAttributeError
from softlines_attr.pipeline_local import PipelineRequest, later_tags

REPO = Path(__file__).resolve().parent.parent
TINY = """
[images]
store_size = 40
input_size = 32
resize_mode = "pad_square"

[catalog]
tag_share = 1.0
min_size = [150, 200]
max_size = [300, 400]

[evaluate]
target_precision = 0.6

[train]
width = 0.125
epochs = 1
learning_rate = 0.05
loss = "softmax_multi"
log_every = 0

[refine]
epochs = 2
learning_rate = 0.05
backbone_lr_mult = 1.0
"""
STEPS = [
    "inputs",
    "labels",
    "shard base",
    "shard refine",
    "train base",
    "refine",
    "evaluate",
    "promote",
    "score",
    "audit",
]


def test_arguments_are_checked_before_any_work(conf, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--catalog and --tags: expected both"):
        PipelineRequest(tmp_path, catalog="c.parquet").validate(conf)
    with pytest.raises(ConfigError, match="expected 1 <= n <= catalog-n, found 300 and 200"):
        PipelineRequest(tmp_path, n=300, catalog_n=200).validate(conf)
    with pytest.raises(UnknownAttributeError, match="no attribute 'colour'"):
        PipelineRequest(tmp_path, attribute="colour").validate(conf)
    assert PipelineRequest(tmp_path).sizes(conf) == (conf.catalog.n // 4, conf.catalog.n)  # demo.catalog_factor 4


def test_the_generated_audit_sample_is_untagged_products_checked_later(tmp_path: Path) -> None:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    asins = [f"B{i}" for i in range(10)]
    truth = pa.table(
        {
            "asin": [a for a in asins for _ in range(2)],
            "attribute": ["hemline", "pattern"] * 10,
            "label": ["mini", "solid"] * 10,
        }
    )
    pq.write_table(truth, tmp_path / "truth.parquet")
    pq.write_table(pa.table({"asin": asins[:4]}), tmp_path / "tags.parquet")  # B0..B3 carry human tags
    args = (tmp_path / "truth.parquet", tmp_path / "tags.parquet", tmp_path / "later.parquet")
    done = later_tags(*args, n=4, seed=1, date=dt.date(2026, 12, 1))
    later = pq.read_table(tmp_path / "later.parquet").to_pylist()
    assert done["products"] == 4 and done["rows"] == len(later) == 8
    assert {r["asin"] for r in later} <= set(asins[4:]) and {r["tagged_at"] for r in later} == {"2026-12-01"}
    assert later_tags(*args, n=100, seed=1, date=dt.date(2026, 12, 1), attributes=["pattern"])["rows"] == 6
    assert {r["attribute"] for r in pq.read_table(tmp_path / "later.parquet").to_pylist()} == {"pattern"}


def test_pipeline_runs_every_step_in_order_each_reading_the_step_before(
    spark, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf_file = tmp_path / "tiny.toml"
    conf_file.write_text(TINY)
    out = tmp_path / "pipeline"
    args = ["--conf", str(conf_file), "--out", str(out), "--n", "200", "--catalog-n", "400", "--master", "local[2]"]
    code = main(["pipeline", *args, "--run-id", "r1"])
    done = capsys.readouterr()
    assert code == 0, done.err[-4000:]
    assert spark.range(2).count() == 2  # the pipeline used the session and left it running
    summary = json.loads(done.out)
    assert summary == json.loads((out / "pipeline_summary.json").read_text())
    assert summary["order"] == STEPS and "failed_step" not in summary
    steps = summary["steps"]
    for name in STEPS[1:]:  # every row accounted for: in = out + rejected + skipped (a model step has no rows out)
        s = steps[name]
        assert s["rows_in"] > 0, name
        if s["rows_out"] is not None:
            assert s["rows_in"] == s["rows_out"] + s["rows_rejected"] + s["rows_skipped"], (name, s)
    assert steps["inputs"]["rows_out"] == 400 and steps["labels"]["rows_in"] == 401  # + the duplicate-asin row
    assert steps["shard base"]["rows_in"] == steps["labels"]["rows_out"]  # base shards read the committed labels
    assert steps["shard refine"]["rows_in"] == 200  # the tagged products
    assert steps["train base"]["rows_in"] == steps["shard base"]["rows_out"]
    assert steps["refine"]["rows_in"] == steps["shard refine"]["rows_out"]

    # the gate: no current model yet, so the candidate is promoted, and the scoring job used the registry's model
    assert summary["promotion"]["decision"] == "promoted" and summary["promotion"]["current_run_id_after"] == "r1"
    assert "no current model" in summary["promotion"]["reasons"][0]
    pointer = json.loads((out / "registry" / "_current.json").read_text())
    assert pointer["job"] == "promote" and pointer["run_id"] == "r1"
    from softlines_attr.io.commit import read_current

    scores = read_current(str(out / "scores"))
    assert scores.run_id == "r1" and steps["score"]["details"]["previous_run_id"] is None  # a first run: no carry
    assert [m["source"] for m in scores.summary["models"]] == [str(out / "registry" / "runs" / "r1" / "multi")]
    decision = json.loads(Path(steps["promote"]["details"]["decision_file"]).read_text())
    assert decision["candidate"]["attributes"] == ["hemline", "neck_style", "pattern", "silhouette", "sleeve_type"]

    # the audit: the generated sample of untagged products, against the committed scores
    audit = read_current(str(out / "audits"))
    assert audit.summary["scores"]["run_id"] == "r1"
    assert sorted(audit.summary["attributes"]) == decision["candidate"]["attributes"]
    doc = json.loads((Path(audit.uri) / "audit.json").read_text())
    for attribute in doc["attributes"].values():
        assert sum(r["tags"] for r in attribute["per_class"]) == attribute["tags"] > 0
        assert int(sum(map(sum, attribute["confusion_matrix"]["counts"]))) == attribute["tags"]
    # sample products the scoring job could not score (bad images on purpose) are rejects, counted by reason
    assert audit.summary["rejects_by_reason"]["unknown_asin"] == steps["audit"]["rows_rejected"]
