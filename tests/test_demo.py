"""The README's `make demo` path through the code, on a smaller generated catalog, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert (tmp_path / "demo" / "labels" / "_summary.json").is_file()
    assert any((tmp_path / "demo" / "shards" / "base").rglob("*.rec"))

    # the models: a base model, per attribute one refined from it and one from scratch, one multi-head model
    attributes = ["hemline", "neck_style", "pattern", "silhouette", "sleeve_type"]
    trained = {"train base", "train multi-base"} | {f"train {a}-{k}" for a in attributes for k in ("base", "scratch")}
    assert trained <= set(stages)
    assert stages["shard multi"]["attributes"] == attributes
    multi = json.loads((tmp_path / "demo" / "models" / "multi-base" / "bundle" / "manifest.json").read_text())
    assert [h["name"] for h in multi["heads"]] == attributes and multi["base_model"]
    assert stages["train hemline-base"]["base_model"] and stages["train hemline-scratch"]["base_model"] is None
    table3 = summary["table3"]
    assert list(table3) == attributes
    for attr, row in table3.items():
        for key in ("base_acc", "base_class_acc", "scratch_acc", "scratch_class_acc", "multi_acc", "multi_class_acc"):
            assert 0.0 <= row[key] <= 1.0, (attr, key, row)
        assert row["val_records"] > 0
    assert "Table 3" in done.stdout and "refined from base" in done.stdout
