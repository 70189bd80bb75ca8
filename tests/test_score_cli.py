"""The score command: jobs/score.py (in-process, on the tests' shared ``local[2,2]`` session) with a task that dies on
its first attempt; clear refusals."""

from __future__ import annotations

import json
import runpy
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_commit_faults import task_dies
from test_score_helpers import HEMLINE, PATTERN, SCORE_CONF, SLEEVE, make_bundle, score_conf, write_catalog
from test_shard_helpers import write_images

from softlines_attr.cli import main
from softlines_attr.io.commit import resolve_current

REPO = Path(__file__).resolve().parent.parent


def test_spark_submit_entry_point_with_a_task_dying_on_its_first_attempt(
    spark, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``jobs/score.py`` (what spark-submit runs) under ``local[2,2]``: partition 0's Python worker dies after its first
    batch.

    The retried task recomputes the partition; the committed tables hold each (asin, attribute) once.
    """
    conf = score_conf(tmp_path)
    hem = make_bundle(tmp_path / "models" / "hemline", [("hemline", HEMLINE)], conf, seed=1)
    make_bundle(tmp_path / "models" / "multi", [("pattern", PATTERN), ("sleeve_type", SLEEVE)], conf, seed=2)
    images = write_images(tmp_path / "img", n_good=12, seed=5, bad=False, exotic=False)
    rows = [{"asin": f"A{i:03d}", "image_uri": uri} for i, uri in enumerate(sorted(images.paths.values()))] + [
        {"asin": "M", "image_uri": str(tmp_path / "gone.jpg")}
    ]
    write_catalog(tmp_path / "catalog.parquet", rows)
    cmd = [
        "jobs/score.py",
        "--catalog",
        str(tmp_path / "catalog.parquet"),
        "--models",
        str(tmp_path / "models"),
        "--out",
        str(tmp_path / "out"),
        "--conf",
        str(tmp_path / "score_conf.toml"),
        "--master",
        "local[2,2]",
        "--run-id",
        "cli-run",
    ]
    monkeypatch.setattr(sys, "argv", cmd)
    with task_dies("score"), pytest.raises(SystemExit) as exit_:  # partition 0's first attempt dies
        runpy.run_path(str(REPO / cmd[0]), run_name="__main__")
    proc = capsys.readouterr()
    assert exit_.value.code == 0, proc.err[-4000:]
    assert spark.sparkContext.master == "local[2,2]"  # the command ran on the shared session, which allows a retry
    printed = json.loads(proc.out.strip().splitlines()[-1])
    current = Path(resolve_current(str(tmp_path / "out")))
    assert current == tmp_path / "out" / "runs" / "cli-run"
    summary = json.loads((current / "_summary.json").read_text())
    assert printed["run_id"] == summary["run_id"] == "cli-run"
    assert summary["task_retries_seen"] == 1 and summary["partitions"] >= 2
    assert summary["rows_in"] == 13 and summary["rows_scored"] == 12 and summary["errors_by_reason"] == {"missing": 1}
    attrs = pq.read_table(current / "attributes").to_pylist()
    pairs = Counter((a["asin"], a["attribute"]) for a in attrs)
    assert len(pairs) == 36 and set(pairs.values()) == {1}
    assert {a["model_version"].split("@")[0] for a in attrs} == {"hemline", "multi"}
    assert hem.exists()


def test_cli_refuses_bad_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = score_conf(tmp_path)
    write_catalog(tmp_path / "c.parquet", [{"asin": "A", "image_uri": "x.jpg"}])
    base = [
        "score",
        "--catalog",
        str(tmp_path / "c.parquet"),
        "--out",
        str(tmp_path / "out"),
        "--conf",
        str(tmp_path / "score_conf.toml"),
    ]
    assert main([*base, "--models", str(tmp_path / "no_models")]) == 2
    assert "expected a model bundle folder, found nothing" in capsys.readouterr().err
    bundle = make_bundle(tmp_path / "m", [("hemline", HEMLINE)], conf, seed=1)
    data = bytearray((bundle / "model.params").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "model.params").write_bytes(bytes(data))
    assert main([*base, "--models", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "softlines-attr score: error:" in err and "model.params does not match its checksum" in err
    assert not (tmp_path / "out").exists()
    assert SCORE_CONF  # the conf written by score_conf is the one the CLI read
