"""The README's `make demo` path through the code, on a smaller generated catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from softlines_attr.cli import main


def test_demo_runs_every_stage_end_to_end(spark, tmp_path, capsys):
    """The command in-process, on the session's Spark (a command leaves a session it did not start running)."""
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--n",
            "200",
            "--catalog-n",
            "400",
            "--master",
            "local[2]",
            "--base-epochs",
            "2",
            "--epochs",
            "2",
            "--width",  # the other tests' tiny network (40 px shards): its training is seconds
            "0.125",
            "--input-size",
            "32",
        ]
    )
    done = capsys.readouterr()
    assert code == 0, done.err[-4000:]
    assert spark.range(2).count() == 2  # the demo used the session and left it running
    assert f"demo outputs under {tmp_path / 'demo'}" in done.out
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    stages = summary["stages"]
    assert {"make-catalog", "select tags", "labels", "shard base"} <= set(stages)
    assert stages["make-catalog"]["n"] == 400
    # human tags on 200 of the dresses, every attribute on the same products; the base learns from every title
    tags = stages["select tags"]
    assert tags["products_tagged"] == 200 < tags["products_in"] and tags["rows_kept"] == 200 * 5
    tagged = pq.read_table(tmp_path / "demo" / "tags.parquet")
    assert len(set(tagged.column("asin").to_pylist())) == 200
    labels = stages["labels"]
    assert labels["rows_in"] == labels["rows_labelled"] + labels["rows_rejected"] == 401
    for name, stage in stages.items():
        if name.startswith("shard"):
            assert stage["rows_in"] == stage["records_written"] + stage["rows_rejected"], name
            assert stage["records_written"] > 0, name
    from softlines_attr.io.commit import resolve_current

    assert (Path(resolve_current(str(tmp_path / "demo" / "labels"))) / "_summary.json").is_file()
    assert any((tmp_path / "demo" / "shards" / "base").rglob("*.rec"))
    assert stages["shard multi"]["rows_in"] <= 200 < stages["shard base"]["records_written"]

    # the models: a base model, the multi-head model refined from it and from scratch, an INT8 copy
    attributes = ["hemline", "neck_style", "pattern", "silhouette", "sleeve_type"]
    assert {"train base", "train multi-base", "train multi-scratch", "quantize", "score", "report"} <= set(stages)
    assert stages["shard multi"]["attributes"] == attributes
    multi = json.loads((tmp_path / "demo" / "models" / "multi-base" / "bundle" / "manifest.json").read_text())
    assert [h["name"] for h in multi["heads"]] == attributes and multi["base_model"]
    assert set(multi["thresholds"]) == set(attributes)  # written by the evaluate stage, used by scoring
    assert stages["train multi-scratch"]["base_model"] is None
    base_metrics = stages["train base"]["metrics"]
    assert 0.0 < base_metrics["val_prior_map"] <= 1.0 and 0.0 < base_metrics["val_map"] <= 1.0
    assert "priors alone" in done.out
    history = json.loads((tmp_path / "demo" / "models" / "base" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1.0, 2.0]  # the recipe's per-epoch validation
    int8 = json.loads((tmp_path / "demo" / "models" / "multi-base-int8" / "bundle" / "manifest.json").read_text())
    assert int8["precision"] == "int8" and int8["calibration"]["examples"] > 0
    for model in ("multi-base", "multi-scratch", "multi-base-int8"):
        evaluation = json.loads((tmp_path / "demo" / "evaluations" / model / "evaluation.json").read_text())
        assert sorted(evaluation["heads"]) == attributes, model
    table3 = summary["table3"]
    assert list(table3) == attributes
    for attr, row in table3.items():
        for key in ("base_acc", "base_class_acc", "scratch_acc", "scratch_class_acc", "int8_acc", "int8_class_acc"):
            assert 0.0 <= row[key] <= 1.0, (attr, key, row)
        assert row["val_records"] > 0
    assert "Table 3" in done.out and "refined from base" in done.out
    base_mean = sum(r["base_acc"] for r in table3.values()) / 5
    scratch_mean = sum(r["scratch_acc"] for r in table3.values()) / 5
    verdict = [line for line in done.out.splitlines() if "of mean accuracy over 5 attributes" in line]
    assert len(verdict) == 1 and f"{100 * base_mean:.1f}% vs {100 * scratch_mean:.1f}%" in verdict[0]
    assert ("BEAT" in verdict[0]) == (base_mean > scratch_mean), verdict

    # the scoring job's tables: every catalog row accounted for, one row per scored asin and attribute
    score = stages["score"]
    assert (
        score["rows_in"] == 401
        and score["rows_in"] == score["rows_scored"] + score["rows_errors"] + score["rows_skipped"]
    )
    assert score["rows_errors"] >= 3  # the generator's missing, corrupt and null-uri images
    assert score["attribute_rows"] == score["rows_scored"] * len(attributes)
    scored = pq.read_table(Path(resolve_current(str(tmp_path / "demo" / "scores"))) / "attributes")
    assert scored.num_rows == score["attribute_rows"]
    report = (tmp_path / "demo" / "report.html").read_text()
    assert report.count("data:image/jpeg;base64,") == stages["report"]["images"] > 0 and "Table 3" in report
    assert "priors alone" in report and "of mean accuracy over 5 attributes" in report  # the base's mAP and the verdict
