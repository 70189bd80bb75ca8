"""The shard command in its own process: S3 in and out (moto's server), and a task that dies on its first attempt."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from softlines_attr.cli import main
from softlines_attr.shard import FAIL_PARTITION_ENV
from test_shard_helpers import TEST_CONF, labels_rows, read_rec, write_images, write_labels_dir

REPO = Path(__file__).resolve().parent.parent


def _shard_cli(args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, **(env_extra or {}))
    cmd = [sys.executable, "-m", "softlines_attr.cli", "shard", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_cli_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shard", "--labels", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "expected either --vocab-size N" in capsys.readouterr().err
    assert main(["shard", "--labels", str(tmp_path), "--out", "gs://b/o", "--vocab-size", "500"]) == 2
    assert "found scheme 'gs'" in capsys.readouterr().err


def test_task_failing_on_first_attempt_commits_every_record_once(tmp_path: Path) -> None:
    images = write_images(tmp_path / "img", n_good=16, seed=21, bad=False, exotic=False)
    rows = labels_rows(sorted(images.paths.values()), seed=8, val_every=100)
    write_labels_dir(tmp_path / "labels", rows)
    # one part of 8 records per split-part, rolled over every ~2 records: the dying attempt has committed files
    (tmp_path / "conf.toml").write_text(TEST_CONF.replace("records_per_shard = 6", "records_per_shard = 8").replace("min_shards = 0", "min_shards = 1") + "max_shard_bytes = 5000\n")
    out = tmp_path / "out"
    _shard_cli(
        ["--labels", str(tmp_path / "labels"), "--out", str(out), "--vocab-size", "500", "--conf", str(tmp_path / "conf.toml"), "--master", "local[2,2]"],
        env_extra={FAIL_PARTITION_ENV: "0"},
    )
    # partition 0 is train part 0 (7 records): its first attempt died after 3, leaving committed and torn files
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["task_retries_seen"] == 1 and summary["records_written"] == len(rows) == 16
    assert len(summary["stray_files_removed"]) == 2 and all(".attempt0-" in f for f in summary["stray_files_removed"])
    manifest = pq.read_table(out / "manifest").to_pylist()
    assert max(m["seq"] for m in manifest if m["part"] == 0 and m["split"] == "train") >= 1  # rolled over
    ids = []
    for m in manifest:
        ids += [h.id for _, h, _ in read_rec(str(out / m["shard"]))]
    assert sorted(ids) == list(range(16))  # every record exactly once
    files = sorted(str(p.relative_to(out / "shards")) for p in (out / "shards").rglob("*") if p.is_file())
    assert files == sorted(["_manifest.json"] + [m["shard"][7:] for m in manifest] + [m["idx"][7:] for m in manifest])
    assert not (out / "_staging").exists()


def test_s3_in_and_out(s3_endpoint: str, tmp_path: Path) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="catalog")
    client.create_bucket(Bucket="shards")
    images = write_images(tmp_path / "img", n_good=10, seed=31, bad=False, exotic=False)
    uris = []
    for name, path in sorted(images.paths.items()):
        client.upload_file(path, "catalog", f"images/{name}")
        uris.append(f"s3://catalog/images/{name}")
    uris.append("s3://catalog/images/not_there.jpg")
    rows = labels_rows(uris, seed=4)
    write_labels_dir(tmp_path / "labels", rows)
    (tmp_path / "conf.toml").write_text(TEST_CONF)
    client.put_object(Bucket="shards", Key="run/shards/stale/old.rec", Body=b"from an older run")
    _shard_cli(["--labels", str(tmp_path / "labels"), "--out", "s3://shards/run", "--vocab-size", "0", "--conf", str(tmp_path / "conf.toml"), "--master", "local[2]"])

    def get(key: str) -> bytes:
        return client.get_object(Bucket="shards", Key=key)["Body"].read()

    summary = json.loads(get("run/_summary.json"))
    assert summary["rows_in"] == 11 and summary["records_written"] == 10 and summary["rejects_by_reason"] == {"missing": 1}
    rejects = pq.read_table(io.BytesIO(get("run/rejects/part-00000.parquet"))).to_pylist()
    assert [(r["image_uri"], r["stage"], r["reason"]) for r in rejects] == [("s3://catalog/images/not_there.jpg", "fetch", "missing")]
    manifest = pq.read_table(io.BytesIO(get("run/manifest/part-00000.parquet"))).to_pylist()
    index = pq.read_table(io.BytesIO(get("run/record_index/part-00000.parquet"))).to_pylist()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="shards", Prefix="run/")["Contents"])
    assert not any("_staging" in k or "stale" in k for k in keys)
    n = 0
    for m in manifest:
        for suffix in ("shard", "idx"):
            (tmp_path / "dl" / m[suffix]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "dl" / m[suffix]).write_bytes(get(f"run/{m[suffix]}"))
        assert (tmp_path / "dl" / m["shard"]).stat().st_size == m["bytes"]
        n += len(read_rec(str(tmp_path / "dl" / m["shard"])))
    assert n == len(index) == 10
