"""The README's `make demo` path through the code, on a smaller generated catalog, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_every_stage_end_to_end(tmp_path):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, "-m", "softlines_attr.cli", "demo", "--out", str(tmp_path / "demo"), "--n", "200", "--master", "local[2]",
         "--base-epochs", "2", "--epochs", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"demo outputs under {tmp_path / 'demo'}" in done.stdout
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    stages = summary["stages"]
    assert {"make-catalog", "labels", "shard base"} <= set(stages)
    labels = stages["labels"]
    assert labels["rows_in"] == labels["rows_labelled"] + labels["rows_rejected"] == 201
    for name, stage in stages.items():
        if name.startswith("shard"):
            assert stage["rows_in"] == stage["records_written"] + stage["rows_rejected"], name
            assert stage["records_written"] > 0, name
    from softlines_attr.io.commit import resolve_current

    assert (Path(resolve_current(str(tmp_path / "demo" / "labels"))) / "_summary.json").is_file()
    assert any((tmp_path / "demo" / "shards" / "base").rglob("*.rec"))

    # the models: a base model, the multi-head model refined from it and from scratch, an INT8 copy
    attributes = ["hemline", "neck_style", "pattern", "silhouette", "sleeve_type"]
    assert {"train base", "train multi-base", "train multi-scratch", "quantize", "score", "report"} <= set(stages)
    assert stages["shard multi"]["attributes"] == attributes
    multi = json.loads((tmp_path / "demo" / "models" / "multi-base" / "bundle" / "manifest.json").read_text())
    assert [h["name"] for h in multi["heads"]] == attributes and multi["base_model"]
    assert set(multi["thresholds"]) == set(attributes)  # written by the evaluate stage, used by scoring
    assert stages["train multi-scratch"]["base_model"] is None
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
    assert "Table 3" in done.stdout and "refined from base" in done.stdout

    # the scoring job's tables: every catalog row accounted for, one row per scored asin and attribute
    score = stages["score"]
    assert score["rows_in"] == 201 and score["rows_in"] == score["rows_scored"] + score["rows_errors"] + score["rows_skipped"]
    assert score["rows_errors"] >= 3  # the generator's missing, corrupt and null-uri images
    assert score["attribute_rows"] == score["rows_scored"] * len(attributes)
    scored = pq.read_table(Path(resolve_current(str(tmp_path / "demo" / "scores"))) / "attributes")
    assert scored.num_rows == score["attribute_rows"]
    report = (tmp_path / "demo" / "report.html").read_text()
    assert report.count("data:image/jpeg;base64,") == stages["report"]["images"] > 0 and "Table 3" in report
