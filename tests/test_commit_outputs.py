"""Output folders on real jobs (local Spark, real MXNet bundles): run ids, bad --out, another job's output,
empty results, and the label job killed at each step of its commit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_commit_faults import KILLED, run_hooked, snapshots
from test_score_helpers import CATALOG_SCHEMA, HEMLINE, make_bundle, score_conf, write_catalog

from softlines_attr.cli import build_parser, main
from softlines_attr.io.commit import POINTER_FILE, StagedOutput, read_current, resolve_current
from softlines_attr.io.errors import OutputLocationError, RunIdError
from softlines_attr.labels.job import EmptyLabelsError, run_label_job
from softlines_attr.score import ScoreJob, run_score_job
from softlines_attr.shard import ShardJob, run_shard_job

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
REPO = Path(__file__).resolve().parent.parent


def _catalog(path: Path, n: int, prefix: str = "A") -> Path:
    words = ["floral", "maxi", "lace", "midi", "striped", "wrap"]
    rows = [
        {
            "asin": f"{prefix}{i:03d}",
            "parent_asin": f"P{prefix}{i // 2}",
            "title": f"{words[i % 6]} {words[(i + 1) % 6]} dress",
            "image_uri": f"/img/{prefix}{i}.jpg",
            "product_type": "DRESS",
        }
        for i in range(n)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=CATALOG_SCHEMA), path)
    return path


@pytest.fixture(scope="module")
def small_conf(tmp_path_factory):
    from softlines_attr.config import load_config

    path = tmp_path_factory.mktemp("conf") / "conf.toml"
    path.write_text("[labels]\nvocab_sizes = [3, 0]\nmin_doc_freq = 1\n\n[output]\nkeep_versions = 1\n")
    return load_config(conf_path=path)


@pytest.fixture(scope="module")
def labels_l1(spark, small_conf, tmp_path_factory) -> tuple[Path, Path]:
    """One committed label run (run id L1) of a 10-row catalog: (the catalog, its --out). Tests work on copies."""
    root = tmp_path_factory.mktemp("labels_l1")
    catalog = _catalog(root / "c.parquet", 10)
    run_label_job(spark, small_conf, catalog_path=str(catalog), out_dir=str(root / "labels"), run_id="L1")
    return catalog, root / "labels"


def test_unsafe_run_ids_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--run-id ..`` used to make Spark write into ``--out`` itself; now: exit 2 with one line, before Spark
    starts."""
    for bad in ("..", "a/b", ".hidden", "x" * 129, ""):
        with pytest.raises(RunIdError, match="expected 1 to 128 letters, digits"):
            StagedOutput(str(tmp_path / "o"), bad, job="score")
    labels = ["labels", "--catalog", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "o"), "--run-id", ".."]
    shard = [
        "shard",
        "--labels",
        str(tmp_path / "l"),
        "--out",
        str(tmp_path / "o"),
        "--vocab-size",
        "0",
        "--run-id",
        "..",
    ]
    for argv in (labels, shard):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"softlines-attr {argv[0]}: error: run id '..': expected 1 to 128 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit"
        ]
    assert not (tmp_path / "o").exists()
    args = build_parser().parse_args(["labels", "--catalog", "c", "--out", "o", "--allow-empty", "--run-id", "r-1"])
    assert args.allow_empty and args.run_id == "r-1"


def test_out_that_is_a_file_or_read_only_is_refused_before_the_work(spark, small_conf, tmp_path: Path) -> None:
    """The catalog does not even exist: the --out check comes first (it used to come after all the work)."""
    missing = str(tmp_path / "no_such_catalog.parquet")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OutputLocationError, match=r"--out .*/file: expected a folder \(or nothing\), found a file"):
        run_label_job(spark, small_conf, catalog_path=missing, out_dir=str(tmp_path / "file"))
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root ignores file modes: make the folder immutable instead
        if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot make a read-only folder here (chattr +i refused)")
        undo = ["chattr", "-i", str(ro)]
    else:
        ro.chmod(0o555)
        undo = ["chmod", "755", str(ro)]
    try:
        with pytest.raises(
            OutputLocationError, match=r"--out .*/ro: expected a writable folder, found it cannot be written"
        ):
            run_label_job(spark, small_conf, catalog_path=missing, out_dir=str(ro))
        with pytest.raises(OutputLocationError, match="expected a writable folder"):
            run_score_job(spark, small_conf, ScoreJob(missing, (str(tmp_path / "no_models"),), str(ro)))
    finally:
        subprocess.run(undo, check=True)
    assert list(ro.iterdir()) == []


def test_another_jobs_output_is_refused_and_left_as_it_was(spark, small_conf, labels_l1, tmp_path: Path) -> None:
    catalog, committed = labels_l1
    labels = tmp_path / "labels"
    shutil.copytree(committed, labels)  # the output of the labels job, run L1
    before = {str(p.relative_to(labels)): p.read_bytes() for p in labels.rglob("*") if p.is_file()}
    with pytest.raises(
        OutputLocationError,
        match=r"expected an empty folder or a shard job's output, found the output of the labels job \(run L1\)",
    ):
        run_shard_job(spark, small_conf, ShardJob(str(labels), str(labels), vocab_size=0))
    assert {str(p.relative_to(labels)): p.read_bytes() for p in labels.rglob("*") if p.is_file()} == before
    legacy = tmp_path / "legacy"  # the flat layout's summary names its job too
    legacy.mkdir()
    (legacy / "_summary.json").write_text(json.dumps({"job": "shard", "run_id": "S0"}))
    with pytest.raises(OutputLocationError, match=r"found the output of the shard job \(run S0\)"):
        run_label_job(spark, small_conf, catalog_path=str(catalog), out_dir=str(legacy))


def test_an_empty_catalog_over_labels_is_refused_unless_allowed(spark, small_conf, labels_l1, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    shutil.copytree(labels_l1[1], out)
    first = read_current(str(out))  # a run of 10 labelled rows
    pointer = (out / POINTER_FILE).read_text()
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=CATALOG_SCHEMA), empty)
    with pytest.raises(
        EmptyLabelsError,
        match=rf"expected at least one labelled row to replace run {first.summary['run_id']} .* \(10 labelled "
        rf"rows\), found none \(0 rows in, 0 rejected\); pass --allow-empty",
    ):
        run_label_job(spark, small_conf, catalog_path=str(empty), out_dir=str(out))
    assert (out / POINTER_FILE).read_text() == pointer and [p.name for p in (out / "runs").iterdir()] == [
        first.summary["run_id"]
    ]
    allowed = run_label_job(spark, small_conf, catalog_path=str(empty), out_dir=str(out), allow_empty=True)
    assert allowed.summary["rows_in"] == allowed.summary["rows_labelled"] == 0
    assert read_current(str(out)).run_id == allowed.summary["run_id"]
    assert pq.read_table(Path(resolve_current(str(out))) / "labels").num_rows == 0
    fresh = run_label_job(
        spark, small_conf, catalog_path=str(empty), out_dir=str(tmp_path / "fresh")
    )  # nothing to replace: no refusal
    assert fresh.summary["rows_labelled"] == 0


def test_score_with_no_row_reaching_attributes_commits_empty_tables(spark, tmp_path: Path) -> None:
    """Every row skipped or failing: the tables are committed empty, with the contract's columns; the error rows
    are kept."""
    from softlines_attr.score.schema import check_written, columns

    conf = score_conf(tmp_path)
    bundle = make_bundle(tmp_path / "m", [("hemline", HEMLINE)], conf, seed=1)
    rows = [
        {"asin": "G", "image_uri": str(tmp_path / "gone.jpg")},
        {"asin": "S", "image_uri": "/x.jpg", "product_type": "SKIRT"},
    ]
    out = tmp_path / "out"
    s = run_score_job(spark, conf, ScoreJob(str(write_catalog(tmp_path / "c.parquet", rows)), (str(bundle),), str(out)))
    assert (
        s["rows_in"] == 2
        and s["rows_errors"] == 1
        and s["rows_skipped"] == 1
        and s["rows_scored"] == s["attribute_rows"] == 0
    )
    current = Path(resolve_current(str(out)))
    assert current == out / "runs" / s["run_id"] and sorted(p.name for p in out.iterdir()) == [POINTER_FILE, "runs"]
    attrs = pq.read_table(current / "attributes")
    assert attrs.num_rows == 0 and attrs.column_names == [n for n, _ in columns("attributes")]
    check_written(spark.read.parquet(str(current / "attributes")), "attributes")
    check_written(spark.read.parquet(str(current / "wide")), "wide", ["hemline"])
    errors = pq.read_table(current / "errors").to_pylist()
    assert [(e["asin"], e["reason"]) for e in errors] == [("G", "missing")]
    # an empty version is a valid previous run
    s2 = run_score_job(
        spark, conf, ScoreJob(str(tmp_path / "c.parquet"), (str(bundle),), str(out), previous_dir=str(out))
    )
    assert s2["previous_run_id"] == s["run_id"] and s2["rows_carried"] == 0 and s2["rows_errors"] == 1


@pytest.mark.slow
def test_label_job_killed_at_each_commit_step(spark, small_conf, labels_l1, tmp_path: Path) -> None:
    """The label job killed before each filesystem change of its commit (copies in-process, one real kill).

    Changes 1-3 are prepare's (run folder, write probe); 4-5 write runs/<id>/_summary.json (temp,
    rename), 6-7 the pointer (temp, rename: the commit point), 8 deletes the previous version
    (keep_versions = 1). After every kill, the current version is whole: L1 before the pointer's
    rename, L2 after it.

    A Spark child costs a minute, so not one per step: the command runs to the end in this process
    with a copy of --out taken before every change (copy K holds the files a kill before change K
    leaves: after Spark's tables, the commit's changes are the only writes), and a child process, at
    the same time, is really killed before change 7 and leaves the same files as copy 7 (a fixed
    label-shuffle partition count: the same part files in both, whatever each one's Spark settings).
    """
    conf_file = tmp_path / "conf.toml"
    conf_file.write_text(
        "[labels]\nvocab_sizes = [3, 0]\nmin_doc_freq = 1\nshuffle_partitions = 2\n\n[output]\nkeep_versions = 1\n"
    )
    catalog_1, committed = labels_l1  # run L1
    catalog_2 = _catalog(tmp_path / "c2.parquet", 7, prefix="B")

    def whole(out: Path) -> str:
        current = read_current(str(out))
        for table, key in (("labels", "rows_labelled"), ("rejects", "rows_rejected")):
            assert pq.read_table(Path(current.uri) / table).num_rows == current.summary[key], (table, current.summary)
        assert pq.read_table(Path(current.uri) / "vocabulary").num_rows > 0
        return current.run_id

    def runs(out: Path) -> list[str]:
        return sorted(p.name for p in (out / "runs").iterdir())

    def files(out: Path) -> list[str]:
        """Every file under out, with the temporary files' pids and Spark's part-file uuids masked."""
        names = (re.sub(r"\.tmp-\d+", ".tmp-PID", str(p.relative_to(out))) for p in out.rglob("*") if p.is_file())
        return sorted(re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "UUID", name) for name in names)

    out, killed, snaps = tmp_path / "out", tmp_path / "killed", tmp_path / "snapshots"
    shutil.copytree(committed, out)
    shutil.copytree(committed, killed)
    args = ["labels", "--catalog", str(catalog_2), "--conf", str(conf_file), "--master", "local[1]", "--run-id", "L2"]
    with ThreadPoolExecutor(1) as pool:
        child = pool.submit(run_hooked, ["kill-at", "7", "cli", *args, "--out", str(killed)], 400)
        with snapshots(out, snaps):
            assert main([*args, "--out", str(out)]) == 0
        kill_7 = child.result()
    assert kill_7.returncode == KILLED, kill_7.stderr[-3000:]

    changes = {int(p.name[1:]): (p / "change.txt").read_text().split(" ")[0] for p in snaps.iterdir()}
    assert sorted(changes) == list(range(1, 9)), changes  # eight changes: the run was not killed at a ninth
    ops = {k: changes[k] for k in range(4, 9)}
    assert ops == {4: "open_output_stream", 5: "move", 6: "open_output_stream", 7: "move", 8: "delete_dir"}, changes
    results = {k: (whole(snaps / f"k{k:02d}" / "out"), runs(snaps / f"k{k:02d}" / "out")) for k in range(4, 9)}
    results[9] = (whole(out), runs(out))  # not killed
    assert {k: v[0] for k, v in results.items()} == {4: "L1", 5: "L1", 6: "L1", 7: "L1", 8: "L2", 9: "L2"}, results
    assert results[7][1] == ["L1", "L2"] and results[8][1] == ["L1", "L2"] and results[9][1] == ["L2"]

    # the real kill before change 7 (the pointer's rename) left what copy 7 holds
    step = kill_7.stderr.split("fault: killed before change ")[1].splitlines()[0]
    assert step.split(" ")[:2] == ["7:", "move"], step
    assert whole(killed) == "L1" and runs(killed) == ["L1", "L2"]
    assert files(killed) == files(snaps / "k07" / "out")
    # the next run removes what the killed one left (its run folder, the pointer's temporary file)
    run_label_job(spark, small_conf, catalog_path=str(catalog_1), out_dir=str(killed), run_id="L3")
    assert runs(killed) == ["L3"] and sorted(p.name for p in killed.iterdir()) == [POINTER_FILE, "runs"]
