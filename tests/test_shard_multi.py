"""Multi shards (``--attribute all``): one class index per taxonomy attribute per record, -1 = no tag, on real
local Spark."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from test_shard_helpers import TEST_CONF, labels_rows, read_rec, write_images, write_labels_dir

from softlines_attr.config import load_config
from softlines_attr.shard import ShardJob, run_shard_job
from softlines_attr.shard.contract import read_shard_set

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def test_multi_shards_pivot_tags_per_asin(spark, tmp_path: Path) -> None:
    images = write_images(tmp_path / "img", n_good=6, seed=5, bad=False, exotic=False)
    uris = sorted(images.paths.values())
    rows = labels_rows(uris[:5], seed=2)
    write_labels_dir(tmp_path / "labels", rows)
    a = [r["asin"] for r in rows]

    def tag(asin: str, attribute: str, label: str, image_uri: str | None = None) -> dict:
        return {"asin": asin, "attribute": attribute, "label": label, "image_uri": image_uri, "parent_asin": None}

    tags = [
        tag(a[0], "hemline", "midi"),
        tag(a[0], "pattern", "floral"),
        tag(a[0], "sleeve_type", "long"),
        tag(a[1], "neck_style", "halter"),
        tag(a[1], "neck_style", "halter"),  # a duplicate: used once
        tag(a[1], "hemline", "mini"),
        tag(a[1], "hemline", "maxi"),  # conflicting: hemline untagged
        tag(a[2], "silhouette", "no_such_shape"),  # unknown label: the asin has no usable tag -> reject
        tag(a[3], "colour", "red"),
        tag(a[3], "pattern", "plaid"),  # an attribute outside the taxonomy
        tag(a[4], "hemline", "high_low"),
        tag("NEW1", "sleeve_type", "cap", uris[5]),  # image only in the tags
        tag("NEW2", "hemline", "mini"),  # no image anywhere -> reject
        tag(None, "hemline", "mini"),  # no asin: a dropped tag row
    ]
    tags_path = tmp_path / "tags.parquet"
    pq.write_table(pa.Table.from_pylist(tags), tags_path)
    (tmp_path / "conf.toml").write_text(TEST_CONF)
    conf = load_config(conf_path=tmp_path / "conf.toml")
    names = list(conf.taxonomy.names)

    s = run_shard_job(
        spark,
        conf,
        ShardJob(str(tmp_path / "labels"), str(tmp_path / "out"), tags_path=str(tags_path), attribute="all"),
    )

    assert s["mode"] == "multi" and s["attributes"] == names and s["label_width"] == len(names)
    assert s["num_classes"] == {n: len(conf.taxonomy.attribute(n).classes) for n in names}
    # rows are asins: 7 with an asin = 5 records + 2 rejects
    assert (s["rows_in"], s["records_written"], s["rows_rejected"]) == (7, 5, 2)
    assert s["rejects_by_reason"] == {"no_image_uri": 1, "no_usable_tag": 1}
    tag_acc = s["inputs"]
    assert tag_acc["tag_rows_dropped"] == {
        "conflicting_labels": 2,
        "duplicate_tag": 1,
        "no_asin": 1,
        "unknown_attribute": 1,
        "unknown_label": 1,
    }
    assert tag_acc["tag_rows_in"] == len(tags) == tag_acc["tag_rows_used"] + sum(tag_acc["tag_rows_dropped"].values())

    from softlines_attr.io.commit import resolve_current

    out = Path(resolve_current(str(tmp_path / "out")))  # the current version, runs/<run_id>/
    index = {r["record_id"]: r["asin"] for r in pq.read_table(out / "record_index").to_pylist()}
    got: dict[str, list[int]] = {}
    manifest = json.loads((out / "shards" / "_manifest.json").read_text())
    assert manifest["attributes"] == names
    for m in manifest["shards"]:
        assert m["mode"] == "multi" and m["label_width"] == len(names)
        for key, header, _ in read_rec(str(out / "shards" / m["shard"])):
            assert header.flag == len(names)
            got[index[key]] = [int(v) for v in header.label]

    def row(**classes: str) -> list[int]:
        return [conf.taxonomy.attribute(n).index(classes[n]) if n in classes else -1 for n in names]

    assert got == {
        a[0]: row(hemline="midi", pattern="floral", sleeve_type="long"),
        a[1]: row(neck_style="halter"),
        a[3]: row(pattern="plaid"),
        a[4]: row(hemline="high_low"),
        "NEW1": row(sleeve_type="cap"),
    }
    shards = read_shard_set(tmp_path / "out")
    assert shards.mode == "multi" and shards.attributes == tuple(names) and shards.label_width == len(names)
