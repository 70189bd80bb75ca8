"""The shard job on real local Spark, read back with MXNet's own readers and compared with im2rec."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mxnet as mx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_shard_helpers import TEST_CONF, labels_rows, read_rec, write_images, write_labels_dir

from softlines_attr.config import load_config
from softlines_attr.io.commit import POINTER_FILE, resolve_current
from softlines_attr.shard import ShardInputError, ShardJob, run_shard_job
from softlines_attr.shard.recordio import pad_labels

# Spark's Python workers must run this interpreter (the venv), whoever starts the session.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _conf(tmp: Path, extra: str = ""):
    path = tmp / "conf.toml"
    path.write_text(TEST_CONF + extra)
    return load_config(conf_path=path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _table(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _cur(out: Path) -> Path:
    """The current version of a job's output (``<out>/runs/<run_id>``)."""
    return Path(resolve_current(str(out)))


@pytest.fixture(scope="module")
def base_run(spark, tmp_path_factory):
    """Base shards from good, exotic and bad images plus bad label rows."""
    root = tmp_path_factory.mktemp("shard_base")
    images = write_images(root / "img", n_good=14)
    uris = list(images.paths.values()) + [u for u in images.bad if u not in images.paths.values()]
    rows = labels_rows(uris)
    expected = {r["asin"]: images.bad[r["image_uri"]] for r in rows if r["image_uri"] in images.bad}
    extra = [
        dict(rows[0], asin="X_nolabels", labels_500=[]),
        dict(rows[0], asin="X_badlabel", labels_500=[3, 999]),
        dict(rows[0], asin="X_badsplit", split="test"),
        dict(rows[0], asin="X_nouri", image_uri=None),
        dict(rows[1], image_uri=rows[1]["image_uri"] + ".dup"),  # a second row of an asin (sorts after the first)
    ]
    expected.update(
        {"X_nolabels": "no_labels", "X_badlabel": "bad_label", "X_badsplit": "bad_split", "X_nouri": "no_image_uri"}
    )
    write_labels_dir(root / "labels", rows + extra)
    conf = _conf(root)
    summary = run_shard_job(spark, conf, ShardJob(str(root / "labels"), str(root / "out"), vocab_size=500))
    return {
        "root": root,
        "out": _cur(root / "out"),
        "rows": rows + extra,
        "expected": expected,
        "summary": summary,
        "images": images,
    }


def test_accounting_and_rejects(base_run) -> None:
    s, out = base_run["summary"], base_run["out"]
    assert s["rows_in"] == len(base_run["rows"]) == s["records_written"] + s["rows_rejected"]
    assert json.loads((out / "_summary.json").read_text())["run_id"] == s["run_id"]
    rejects = _table(out / "rejects")
    by_asin = {r["asin"]: r for r in rejects if r["reason"] != "duplicate_asin"}
    assert {a: r["reason"] for a, r in by_asin.items()} == base_run["expected"]
    dup = [r for r in rejects if r["reason"] == "duplicate_asin"]
    assert len(dup) == 1 and dup[0]["asin"] == base_run["rows"][1]["asin"]
    assert all(r["message"] and r["stage"] in ("labels", "fetch", "decode") for r in rejects)
    assert by_asin[next(a for a, why in base_run["expected"].items() if why == "truncated")]["stage"] == "decode"
    index = _table(out / "record_index")
    assert len(index) == s["records_written"] and len({r["asin"] for r in index}) == len(index)
    assert not set(r["asin"] for r in index) & set(base_run["expected"])
    assert (
        out == base_run["root"] / "out" / "runs" / s["run_id"]
        and json.loads((base_run["root"] / "out" / POINTER_FILE).read_text())["job"] == "shard"
    )


def test_manifest_matches_files(base_run) -> None:
    out, s = base_run["out"], base_run["summary"]
    manifest = _table(out / "manifest")
    assert len(manifest) == s["shards"] and sum(m["records"] for m in manifest) == s["records_written"]
    for m in manifest:
        rec, idx = out / m["shard"], out / m["idx"]
        assert rec.stat().st_size == m["bytes"] and _sha(rec) == m["sha256"] and _sha(idx) == m["idx_sha256"]
        assert m["label_width"] == s["label_width"] == 6 and m["image_size"] == 64 and m["split"] in ("train", "val")
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "shards").rglob("*") if p.is_file())
    assert on_disk == sorted(["shards/_manifest.json"] + [m["shard"] for m in manifest] + [m["idx"] for m in manifest])
    assert len(json.loads((out / "shards" / "_manifest.json").read_text())["shards"]) == len(manifest)


def test_records_read_back_with_mxnet(base_run) -> None:
    out = base_run["out"]
    rows = {r["asin"]: r for r in base_run["rows"] if r["asin"] not in base_run["expected"]}
    index = {(r["shard"], r["record_id"]): r for r in _table(out / "record_index")}
    seen = 0
    for m in _table(out / "manifest"):
        for key, header, img in read_rec(str(out / m["shard"])):
            entry = index[(m["shard"], key)]
            assert header.id == key and header.id2 == 0 and header.flag == 6
            np.testing.assert_array_equal(
                header.label, np.asarray(pad_labels(rows[entry["asin"]]["labels_500"], 6), dtype=np.float32)
            )
            assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) == 64
            assert (img.shape[1], img.shape[0]) == (entry["width"], entry["height"])
            assert entry["split"] == m["split"] == rows[entry["asin"]]["split"]
            seen += 1
    assert seen == base_run["summary"]["records_written"]


def test_exotic_images_are_rgb_in_shards(base_run) -> None:
    out = base_run["out"]
    paths = base_run["images"].paths
    uri_of = {r["asin"]: r["image_uri"] for r in base_run["rows"]}
    index = {uri_of[r["asin"]]: r for r in _table(out / "record_index")}
    for name in ("rotated.jpg", "cmyk.jpg", "palette.png", "gray.jpg", "gray16.png", "rgba.png"):
        assert paths[name] in index, name
    entry = index[paths["rgba.png"]]
    rec = mx.recordio.MXIndexedRecordIO(str(out / entry["shard"])[:-4] + ".idx", str(out / entry["shard"]), "r")
    _, img = mx.recordio.unpack_img(rec.read_idx(entry["record_id"]))
    assert img[:, : img.shape[1] // 3].min() > 240  # the transparent half is white
    rot = index[paths["rotated.jpg"]]
    assert rot["height"] > rot["width"]  # EXIF orientation 6 applied: upright portrait


def test_image_record_iter_reads_label_width_and_parts(base_run) -> None:
    out = base_run["out"]
    manifest = _table(out / "manifest")
    m = max(manifest, key=lambda x: x["records"])
    expected = sorted(tuple(h.label) for _, h, _ in read_rec(str(out / m["shard"])))
    got = []
    for part in range(2):
        it = mx.io.ImageRecordIter(
            path_imgrec=str(out / m["shard"]),
            path_imgidx=str(out / m["idx"]),
            data_shape=(3, 56, 56),
            label_width=6,
            batch_size=1,
            num_parts=2,
            part_index=part,
            round_batch=False,
            preprocess_threads=1,
            shuffle=False,
        )
        for batch in it:
            assert batch.data[0].shape == (1, 3, 56, 56)
            got.append(tuple(batch.label[0].asnumpy()[0]))
    assert sorted(got) == expected


@pytest.fixture(scope="module")
def clean_run(spark, tmp_path_factory):
    """Only good JPEGs: for the im2rec comparison, exact balance and byte-identical reruns."""
    root = tmp_path_factory.mktemp("shard_clean")
    images = write_images(root / "img", n_good=23, seed=9, bad=False, exotic=False)
    images.paths["rotated.jpg"] = write_images(root / "img2", n_good=0, seed=9, bad=False).paths["rotated.jpg"]
    rows = labels_rows(sorted(images.paths.values()), seed=5)
    write_labels_dir(root / "labels", rows)
    conf = _conf(root)
    # the rerun decodes more images at once per task (shard.decode_threads_extra): the bytes must not change
    one_at_a_time = replace(conf, shard=replace(conf.shard, decode_threads_extra=0))
    many_at_once = replace(conf, shard=replace(conf.shard, decode_threads_extra=3))
    s1 = run_shard_job(spark, one_at_a_time, ShardJob(str(root / "labels"), str(root / "out1"), vocab_size=2000))
    s2 = run_shard_job(spark, many_at_once, ShardJob(str(root / "labels"), str(root / "out2"), vocab_size=2000))
    return {"root": root, "rows": rows, "s1": s1, "s2": s2, "conf": conf}


def test_balanced_equal_count_shards(clean_run) -> None:
    s = clean_run["s1"]
    assert s["rows_rejected"] == 0 and s["records_written"] == len(clean_run["rows"]) == 24
    for split, info in s["splits"].items():
        assert info["records_per_part_max"] - info["records_per_part_min"] <= 1, (split, info)
        assert info["records_per_part_max"] <= 6  # records_per_shard in the test conf


def test_summary_profiles_the_shard_tasks(clean_run) -> None:
    """The run summary's per-stage profile: every stage present, none negative, and the task thread's stages
    within the tasks' time (the fetch-thread stages run beside them, per image)."""
    from softlines_attr.shard.profile import IMAGE_STAGES, ShardProfile

    prof = clean_run["s1"]["profile_seconds"]
    assert set(prof) == set(ShardProfile.__dataclass_fields__)
    assert all(v >= 0 for v in prof.values()), prof
    assert prof["task"] > 0 and prof["task_cpu"] > 0
    assert prof["decode"] > 0 and prof["encode"] > 0 and prof["record"] > 0  # every clean image went through them
    tolerance = 0.05 + 0.01 * clean_run["s1"]["tasks"]  # rounding, and the clock reads between the stages
    task_thread = prof["input"] + prof["wait"] + prof["record"] + prof["rows_out"] + prof["commit"]
    assert 0.5 * prof["task"] <= task_thread <= prof["task"] + tolerance, prof
    for stage in IMAGE_STAGES:  # a thread's CPU time never exceeds its wall time
        assert prof[f"{stage}_cpu"] <= prof[stage] + tolerance, stage


def test_rerun_is_byte_identical(clean_run) -> None:
    """A rerun writes the same bytes, also when it decodes more images at once (decode_threads_extra 0 vs 3)."""
    root = clean_run["root"]
    out1, out2 = _cur(root / "out1"), _cur(root / "out2")
    files1 = {p.relative_to(out1): p for p in (out1 / "shards").rglob("*.*") if p.suffix in (".rec", ".idx")}
    files2 = {p.relative_to(out2): p for p in (out2 / "shards").rglob("*.*") if p.suffix in (".rec", ".idx")}
    assert files1.keys() == files2.keys() and files1
    for rel, path in files1.items():
        assert path.read_bytes() == files2[rel].read_bytes(), rel
    assert clean_run["s1"]["run_id"] != clean_run["s2"]["run_id"]


def test_same_records_as_im2rec(clean_run, tmp_path: Path) -> None:
    """Our records and im2rec's for the same images, ids and labels agree field for field."""
    root = clean_run["root"]
    out = _cur(root / "out1")
    rows = {r["asin"]: r for r in clean_run["rows"]}
    width = clean_run["s1"]["label_width"]
    ours: dict[int, tuple] = {}
    for m in _table(out / "manifest"):
        for key, header, img in read_rec(str(out / m["shard"])):
            ours[key] = (header, img)
    index = sorted(_table(out / "record_index"), key=lambda r: r["record_id"])
    lst = tmp_path / "ref.lst"
    with lst.open("w") as fh:
        for r in index:
            labels = pad_labels(rows[r["asin"]]["labels_2000"], width)
            fh.write("\t".join([str(r["record_id"]), *(f"{v:f}" for v in labels), rows[r["asin"]]["image_uri"]]) + "\n")
    cmd = [
        sys.executable,
        "-m",
        "mxnet.tools.im2rec",
        str(tmp_path / "ref"),
        "/",
        "--resize",
        "64",
        "--quality",
        "90",
        "--pack-label",
        "--num-thread",
        "1",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    theirs = {key: (h, img) for key, h, img in read_rec(str(tmp_path / "ref.rec"))}
    assert sorted(theirs) == sorted(ours) and len(ours) == 24
    for key, (h_ref, img_ref) in theirs.items():
        h, img = ours[key]
        assert (h.flag, h.id, h.id2) == (h_ref.flag, h_ref.id, h_ref.id2)
        np.testing.assert_array_equal(h.label, h_ref.label)
        assert img.shape == img_ref.shape
        diff = np.abs(img.astype(np.int16) - img_ref.astype(np.int16)).mean()
        assert diff < 8.0, (key, diff)  # Pillow (antialiased) vs OpenCV resize: close, not equal


def test_refine_shards(spark, tmp_path: Path) -> None:
    images = write_images(tmp_path / "img", n_good=8, seed=4, bad=False, exotic=False)
    uris = sorted(images.paths.values())
    rows = labels_rows(uris[:6], seed=2)
    write_labels_dir(tmp_path / "labels", rows)
    tags = [
        {"asin": rows[0]["asin"], "attribute": "neck_style", "label": "v_neck", "image_uri": None, "parent_asin": None},
        {"asin": rows[1]["asin"], "attribute": "neck_style", "label": "halter", "image_uri": None, "parent_asin": None},
        {"asin": rows[1]["asin"], "attribute": "neck_style", "label": "halter", "image_uri": None, "parent_asin": None},
        {"asin": rows[2]["asin"], "attribute": "neck_style", "label": "v_neck", "image_uri": None, "parent_asin": None},
        {
            "asin": rows[2]["asin"],
            "attribute": "neck_style",
            "label": "collared",
            "image_uri": None,
            "parent_asin": None,
        },
        {
            "asin": rows[3]["asin"],
            "attribute": "neck_style",
            "label": "no_such_neck",
            "image_uri": None,
            "parent_asin": None,
        },
        {"asin": rows[4]["asin"], "attribute": "hemline", "label": "mini", "image_uri": None, "parent_asin": None},
        {
            "asin": "NEW1",
            "attribute": "neck_style",
            "label": "boat_neck",
            "image_uri": uris[6],
            "parent_asin": rows[4]["parent_asin"],
        },
        {"asin": "NEW2", "attribute": "neck_style", "label": "turtle_neck", "image_uri": uris[7], "parent_asin": None},
        {"asin": "NEW3", "attribute": "neck_style", "label": "turtle_neck", "image_uri": None, "parent_asin": None},
        {"asin": "NEW4", "attribute": "neck_style", "label": "halter", "image_uri": None, "parent_asin": None},
    ]
    catalog = [{"asin": "NEW3", "parent_asin": "P_NEW3", "image_uri": uris[5]}]  # NEW3's image only in the catalog
    pq.write_table(pa.Table.from_pylist(catalog), tmp_path / "catalog.parquet")
    tags_path = tmp_path / "tags.parquet"
    pq.write_table(pa.Table.from_pylist(tags), tags_path)
    conf = _conf(tmp_path)
    job = ShardJob(
        str(tmp_path / "labels"),
        str(tmp_path / "out"),
        tags_path=str(tags_path),
        attribute="neck_style",
        catalog_path=str(tmp_path / "catalog.parquet"),
    )
    s = run_shard_job(spark, conf, job)
    assert s["rows_in"] == 10 and s["records_written"] == 5 and s["rows_rejected"] == 5
    assert s["rejects_by_reason"] == {
        "conflicting_labels": 2,
        "duplicate_tag": 1,
        "unknown_label": 1,
        "no_image_uri": 1,
    }
    assert s["inputs"]["split_source"] == {"labels": 2, "parent": 1, "hash": 2}
    classes = conf.taxonomy.attribute("neck_style").classes
    want = {"v_neck", "halter", "boat_neck", "turtle_neck"}
    index = {r["record_id"]: r for r in _table(_cur(tmp_path / "out") / "record_index")}
    labels = {}
    for m in _table(_cur(tmp_path / "out") / "manifest"):
        assert m["label_width"] == 0 and m["mode"] == "refine" and m["num_classes"] == len(classes)
        for key, header, _ in read_rec(str(_cur(tmp_path / "out") / m["shard"])):
            assert header.flag == 0
            labels[index[key]["asin"]] = classes[int(header.label)]
    assert set(labels.values()) == want and labels["NEW1"] == "boat_neck" and labels["NEW3"] == "turtle_neck"
    split_of_parent = {r["parent_asin"]: r["split"] for r in rows}
    assert (
        index[next(k for k, r in index.items() if r["asin"] == "NEW1")]["split"]
        == split_of_parent[rows[4]["parent_asin"]]
    )


def test_job_level_errors(spark, tmp_path: Path) -> None:
    write_labels_dir(tmp_path / "labels", labels_rows(["/x.jpg"]))
    conf = _conf(tmp_path)
    with pytest.raises(ShardInputError, match="expected words for vocab_size 123"):
        run_shard_job(spark, conf, ShardJob(str(tmp_path / "labels"), str(tmp_path / "out"), vocab_size=123))
    with pytest.raises(ShardInputError, match="expected either --vocab-size"):
        ShardJob(str(tmp_path / "labels"), str(tmp_path / "out")).validate()
    with pytest.raises(ShardInputError, match="expected tags for attribute 'hemline'"):
        pq.write_table(
            pa.Table.from_pylist([{"asin": "A00000", "attribute": "neck_style", "label": "v_neck"}]),
            tmp_path / "t.parquet",
        )
        run_shard_job(
            spark,
            conf,
            ShardJob(
                str(tmp_path / "labels"),
                str(tmp_path / "out"),
                tags_path=str(tmp_path / "t.parquet"),
                attribute="hemline",
            ),
        )
    assert not (tmp_path / "out").exists()  # a failed first run leaves no --out behind


def test_commit_check_removes_strays_and_refuses_missing_shards(tmp_path: Path) -> None:
    """What a dead attempt leaves in staging (torn temp files) is removed; a reported shard that is not there
    fails the job."""
    from softlines_attr.io.storage import LocalStorage
    from softlines_attr.shard import ShardCommitError
    from softlines_attr.shard.job import _verify_shards

    staging = tmp_path / "shards"
    (staging / "train").mkdir(parents=True)
    (staging / "train" / "train-00000-000.rec").write_bytes(b"x" * 12)
    (staging / "train" / "train-00000-000.idx").write_bytes(b"0\t0\n")
    (staging / "train" / ".train-00000-001.rec.attempt0-ab12cd34.tmp").write_bytes(b"torn")
    row = (
        "shards/train/train-00000-000.rec",
        "shards/train/train-00000-000.idx",
        "train",
        0,
        0,
        1,
        12,
        "",
        4,
        "",
        0,
        0,
    )
    strays = _verify_shards(LocalStorage(), str(staging), [row])
    assert strays == ["train/.train-00000-001.rec.attempt0-ab12cd34.tmp"]
    assert sorted(p.name for p in (staging / "train").iterdir()) == ["train-00000-000.idx", "train-00000-000.rec"]
    with pytest.raises(ShardCommitError, match="expected staged shard file train/train-00000-001.rec of 9 bytes"):
        _verify_shards(
            LocalStorage(),
            str(staging),
            [
                row,
                (
                    "shards/train/train-00000-001.rec",
                    "shards/train/train-00000-001.idx",
                    "train",
                    0,
                    1,
                    1,
                    9,
                    "",
                    4,
                    "",
                    1,
                    1,
                ),
            ],
        )
