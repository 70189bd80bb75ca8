"""The shard command (in-process, on the tests' shared ``local[2,2]`` session): S3 in and out (moto's server), and a
task that dies on its first attempt."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from test_commit_faults import task_dies
from test_shard_helpers import TEST_CONF, labels_rows, read_rec, write_images, write_labels_dir

from softlines_attr.cli import main
from softlines_attr.io.commit import resolve_current

REPO = Path(__file__).resolve().parent.parent


def test_cli_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shard", "--labels", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "expected either --vocab-size N" in capsys.readouterr().err
    assert main(["shard", "--labels", str(tmp_path), "--out", "gs://b/o", "--vocab-size", "500"]) == 2
    assert "found scheme 'gs'" in capsys.readouterr().err


def test_s3_in_and_out_with_a_task_dying_on_its_first_attempt(
    spark, s3_spark_workers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Images on S3, shards to S3, and partition 0's first attempt dies two thirds of the way (``local[2,2]``).

    The dead attempt had already uploaded a rolled-over shard and left a torn one behind; the retry
    rewrites the same names, so the committed shards hold every record exactly once.
    """
    client = boto3.client("s3", endpoint_url=s3_spark_workers)
    client.create_bucket(Bucket="catalog")
    client.create_bucket(Bucket="shards")
    images = write_images(tmp_path / "img", n_good=14, seed=31, bad=False, exotic=False)
    uris = []
    for name, path in sorted(images.paths.items()):
        client.upload_file(path, "catalog", f"images/{name}")
        uris.append(f"s3://catalog/images/{name}")
    uris.append("s3://catalog/images/not_there.jpg")
    rows = labels_rows(uris, seed=4, val_every=100)
    write_labels_dir(tmp_path / "labels", rows)
    # train: 13 rows in 3 parts (records_per_shard 8, rounded up to whole waves of 2 tasks); ~2 records per file
    conf = TEST_CONF.replace("records_per_shard = 6", "records_per_shard = 8").replace(
        "min_shards = 0", "min_shards = 1"
    )
    (tmp_path / "conf.toml").write_text(conf + "max_shard_bytes = 5000\n")
    client.put_object(Bucket="shards", Key="run/shards/stale/old.rec", Body=b"from an older run")
    # a dead run of the flat layout; and a dead run of this layout: both removed by this run
    client.put_object(
        Bucket="shards",
        Key="run/_summary.json",
        Body=json.dumps({"job": "shard", "run_id": "old", "tables": {"shards": "shards"}}).encode(),
    )
    client.put_object(Bucket="shards", Key="run/runs/dead/shards/train/x.rec", Body=b"killed mid-run")
    args = [
        "--labels",
        str(tmp_path / "labels"),
        "--out",
        "s3://shards/run",
        "--vocab-size",
        "0",
        "--conf",
        str(tmp_path / "conf.toml"),
        "--master",
        "local[2,2]",
        "--run-id",
        "r1",
    ]
    with task_dies("shard"):  # partition 0's first attempt dies two thirds of the way
        code = main(["shard", *args])
    assert code == 0, capsys.readouterr().err[-4000:]
    assert spark.sparkContext.master == "local[2,2]"  # the command ran on the shared session, which allows a retry
    assert resolve_current("s3://shards/run") == "s3://shards/run/runs/r1"

    def get(key: str) -> bytes:
        return client.get_object(Bucket="shards", Key=key)["Body"].read()

    summary = json.loads(get("run/runs/r1/_summary.json"))
    assert json.loads(get("run/_current.json"))["run_id"] == summary["run_id"] == "r1"
    assert (
        summary["rows_in"] == 15 and summary["records_written"] == 14 and summary["rejects_by_reason"] == {"missing": 1}
    )
    assert summary["task_retries_seen"] == 1

    def read_parts(prefix: str) -> list[dict]:
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="shards", Prefix=prefix)["Contents"])
        assert keys and all(k.rsplit("/", 1)[1].startswith("part-") for k in keys)
        return [row for k in keys for row in pq.read_table(io.BytesIO(get(k))).to_pylist()]

    rejects = read_parts("run/runs/r1/rejects/")
    assert [(r["image_uri"], r["stage"], r["reason"]) for r in rejects] == [
        ("s3://catalog/images/not_there.jpg", "fetch", "missing")
    ]
    manifest = pq.read_table(io.BytesIO(get("run/runs/r1/manifest/part-00000.parquet"))).to_pylist()
    index = read_parts("run/runs/r1/record_index/")
    assert max(m["seq"] for m in manifest if m["part"] == 0 and m["split"] == "train") >= 1  # partition 0 rolled over
    keys = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket="shards", Prefix="run/")["Contents"]
        if not o["Key"].endswith("/")
    )
    shard_keys = sorted(f"run/runs/r1/{m[c]}" for m in manifest for c in ("shard", "idx"))
    assert [k for k in keys if k.startswith("run/runs/r1/shards/")] == sorted(
        shard_keys + ["run/runs/r1/shards/_manifest.json"]
    )
    assert not any(
        k.startswith(("run/shards/", "run/runs/dead/", "run/_summary.json")) for k in keys
    )  # dead runs and the flat layout are gone
    ids = []
    for m in manifest:
        for col in ("shard", "idx"):
            (tmp_path / "dl" / m[col]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "dl" / m[col]).write_bytes(get(f"run/runs/r1/{m[col]}"))
        assert hashlib.sha256((tmp_path / "dl" / m["shard"]).read_bytes()).hexdigest() == m["sha256"]
        ids += [h.id for _, h, _ in read_rec(str(tmp_path / "dl" / m["shard"]))]
    assert (
        sorted(ids) == sorted(r["record_id"] for r in index) and len(set(ids)) == len(ids) == 14
    )  # every record exactly once
