"""The shard set contract on the shard job's real output (real local Spark): typed, versioned, read by evaluate.

Before issue 11, evaluate checked class names against ``summary["classes"]``, a key the shard job never
wrote (it wrote them under ``inputs``), so the check never ran on real shard output.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_score_helpers import make_bundle
from test_shard_helpers import TEST_CONF, labels_rows, write_images, write_labels_dir

from softlines_attr.config import load_config
from softlines_attr.model.bundle import load_bundle
from softlines_attr.model.errors import ClassMismatchError
from softlines_attr.model.eval_inputs import match_heads
from softlines_attr.shard import ShardJob, run_shard_job
from softlines_attr.shard.contract import read_shard_set
from softlines_attr.shard.errors import ShardContractError
from softlines_attr.shard.manifest import SHARD_CONTRACT_VERSION, SHARD_MANIFEST, ShardManifest, ShardSummary

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="module")
def refine_out(spark, tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("contract_shards")
    images = write_images(root / "img", n_good=6, seed=8, bad=False, exotic=False)
    rows = labels_rows(sorted(images.paths.values()), seed=4)
    write_labels_dir(root / "labels", rows)
    hemlines = ["mini", "midi", "maxi", "mini", "knee_length", "high_low"]
    tags = [
        {"asin": r["asin"], "attribute": "hemline", "label": hemlines[i % len(hemlines)]} for i, r in enumerate(rows)
    ]
    pq.write_table(pa.Table.from_pylist(tags), root / "tags.parquet")
    (root / "conf.toml").write_text(TEST_CONF)
    conf = load_config(conf_path=root / "conf.toml")
    run_shard_job(
        spark,
        conf,
        ShardJob(str(root / "labels"), str(root / "out"), tags_path=str(root / "tags.parquet"), attribute="hemline"),
    )
    return root / "out", conf


def test_the_shard_job_writes_the_typed_versioned_contract(refine_out) -> None:
    out, conf = refine_out
    shards = read_shard_set(out)
    hemline = conf.taxonomy.attribute("hemline").classes
    assert shards.contract_version == SHARD_CONTRACT_VERSION == 2
    assert shards.mode == "refine" and shards.attribute == "hemline" and shards.classes == {"hemline": hemline}
    assert (shards.image_size, shards.resize_mode) == (conf.images.store_size, conf.images.resize_mode)
    manifest = json.loads((shards.root / SHARD_MANIFEST).read_text())
    assert manifest["contract_version"] == 2 and manifest["classes"] == {"hemline": list(hemline)}
    summary = ShardSummary.from_dict(shards.summary, "summary")
    assert (
        summary.classes == {"hemline": hemline}
        and summary.attribute == "hemline"
        and summary.rows_in == summary.records_written + summary.rows_rejected
    )


def test_evaluate_checks_class_names_on_real_shard_output(refine_out, tmp_path: Path) -> None:
    out, conf = refine_out
    shards = read_shard_set(out)
    hemline = conf.taxonomy.attribute("hemline").classes
    good = make_bundle(tmp_path / "good", [("hemline", hemline)], conf, seed=1)
    assert [p.head.name for p in match_heads(load_bundle(good), shards)] == ["hemline"]
    renamed = tuple(reversed(hemline))  # same count, other order: only the names tell
    bad = make_bundle(tmp_path / "bad", [("hemline", renamed)], conf, seed=1)
    with pytest.raises(ClassMismatchError, match=r"has classes \['high_low', .*the shards .* have classes \['mini', "):
        match_heads(load_bundle(bad), shards)


def test_a_contradicting_manifest_is_refused(refine_out, tmp_path: Path) -> None:
    import shutil

    out, _ = refine_out
    copy = tmp_path / "copy"
    shutil.copytree(read_shard_set(out).root.parent, copy)
    file = copy / "shards" / SHARD_MANIFEST
    data = json.loads(file.read_text())
    data["shards"][0]["num_classes"] = 4
    file.write_text(json.dumps(data))
    with pytest.raises(ShardContractError, match="expected the set's"):
        read_shard_set(copy)
    data["shards"][0]["num_classes"] = 5
    data["contract_version"] = 7
    file.write_text(json.dumps(data))
    with pytest.raises(ShardContractError, match="expected shard contract_version 2 .*found 7"):
        read_shard_set(copy)
    assert ShardManifest.__dataclass_fields__["contract_version"]  # the manifest is a typed definition
