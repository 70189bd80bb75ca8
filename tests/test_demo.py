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
        [sys.executable, "-m", "softlines_attr.cli", "demo", "--out", str(tmp_path / "demo"), "--n", "200", "--master", "local[2]"],
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
