"""A staged EMR step on its node (softlines_attr/emr/node.py), against moto's S3 server on loopback.

The real ``evaluate`` command runs on the session's tiny hemline model: its bundle and shards are committed
versions on S3, the step copies their committed versions to local disk, evaluates, and commits the report and
the evaluated bundle (thresholds written into it) as ``runs/<run_id>/`` of its ``--out``, written last.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from softlines_attr.emr.errors import EmrError, EmrSpecError
from softlines_attr.emr.node import commit_folder, give_gpu, resolve_committed, run_staged
from softlines_attr.emr.steptypes import step_type, validate_step_args
from softlines_attr.model.bundle import load_bundle


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    name = "node-steps"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def committed(bucket: str, hemline_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hemline shards and bundle as the shard and refine steps leave them on S3 (committed versions)."""
    shards, bundle = hemline_model
    commit_folder(shards, f"s3://{bucket}/shards/multi", "s1", job="shard", summary={"rows_in": 128}, keep=3)
    holder = tmp_path_factory.mktemp("refine_out")
    (holder / "bundle").symlink_to(bundle, target_is_directory=True)
    commit_folder(holder, f"s3://{bucket}/models/candidate", "c1", job="refine", summary={}, keep=3)
    return f"s3://{bucket}"


def _get(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_resolve_committed_follows_the_folders_or_a_parents_pointer(committed: str) -> None:
    assert resolve_committed(f"{committed}/models/candidate") == f"{committed}/models/candidate/runs/c1"
    assert resolve_committed(f"{committed}/models/candidate/bundle") == f"{committed}/models/candidate/runs/c1/bundle"
    assert resolve_committed(f"{committed}/shards/multi/") == f"{committed}/shards/multi/runs/s1"
    assert resolve_committed(f"{committed}/nothing/here") == f"{committed}/nothing/here"


def test_evaluate_step_copies_inputs_runs_and_commits_report_and_evaluated_bundle(
    committed: str, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--model",
        f"{committed}/models/candidate/bundle",
        "--shards",
        f"{committed}/shards/multi/",
        "--out",
        f"{committed}/models/evaluated/",
        "--write-thresholds",
        "--batch-size",
        "5",
        "--threads",
        "1",
        "--run-id",
        "R7",
    ]
    result = run_staged(step_type("evaluate"), argv, tmp_path)
    assert result["run_id"] == "R7"
    pointer = json.loads(_get(bucket, "models/evaluated/_current.json"))
    assert (pointer["run_id"], pointer["path"], pointer["job"]) == ("R7", "runs/R7", "evaluate")
    summary = json.loads(_get(bucket, "models/evaluated/runs/R7/_summary.json"))
    evaluation = json.loads(_get(bucket, "models/evaluated/runs/R7/evaluation.json"))
    assert summary["inputs"] == {
        "model": f"{committed}/models/candidate/bundle",
        "shards": f"{committed}/shards/multi",  # evaluate's --shards is a Path: the trailing "/" is gone
    }
    head = summary["result"]["heads"]["hemline"]
    assert head["accuracy"] == evaluation["heads"]["hemline"]["accuracy"] > 0.5  # chance is 1/3
    assert evaluation["shards"]["records"] == 32
    assert b"<html" in _get(bucket, "models/evaluated/runs/R7/report.html").lower()
    # the evaluated bundle (with its thresholds) is committed beside the report; the candidate is untouched
    local = tmp_path / "check"
    for name in ("manifest.json", "symbol.json", "model.params"):
        (local / "evaluated").mkdir(parents=True, exist_ok=True)
        (local / "evaluated" / name).write_bytes(_get(bucket, f"models/evaluated/runs/R7/bundle/{name}"))
        (local / "candidate").mkdir(parents=True, exist_ok=True)
        (local / "candidate" / name).write_bytes(_get(bucket, f"models/candidate/runs/c1/bundle/{name}"))
    evaluated, candidate = load_bundle(local / "evaluated"), load_bundle(local / "candidate")  # checksums verified
    assert evaluated.manifest.thresholds["hemline"] == head["abstain_threshold"]
    assert "hemline" not in candidate.manifest.thresholds
    assert (tmp_path / "in" / "model" / "bundle" / "manifest.json").is_file()  # the copy it evaluated


def test_a_failed_step_commits_nothing_and_wrong_args_are_refused(committed: str, bucket: str, tmp_path: Path) -> None:
    before = _get(bucket, "models/candidate/_current.json")
    with pytest.raises(EmrError, match=r"step input .*models/nothing/bundle: expected a committed folder"):
        run_staged(
            step_type("evaluate"),
            ["--model", f"{committed}/models/nothing/bundle", "--shards", f"{committed}/shards/multi/"]
            + ["--out", f"{committed}/models/candidate/", "--run-id", "R8"],
            tmp_path,
        )
    assert _get(bucket, "models/candidate/_current.json") == before
    with pytest.raises(EmrSpecError, match=r"--split: invalid choice"):
        run_staged(step_type("evaluate"), ["--model", "m", "--shards", "s", "--split", "test"], tmp_path)


def test_the_entry_point_runs_a_staged_step_and_exits_2_on_a_wrong_argument(
    hemline_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """``jobs/evaluate.py`` as spark-submit would run it (here without Spark: local paths, nothing to commit)."""
    import shutil
    import subprocess
    import sys

    shards, bundle = hemline_model
    model = tmp_path / "model" / "bundle"
    shutil.copytree(bundle, model)
    script = Path(__file__).resolve().parent.parent / "jobs" / "evaluate.py"
    out = tmp_path / "report"
    argv = [sys.executable, str(script), "--model", str(model), "--shards", str(shards), "--out", str(out)]
    done = subprocess.run([*argv, "--batch-size", "5", "--threads", "1"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["step"] == "evaluate" and last["committed"] == {} and (out / "evaluation.json").is_file()
    bad = subprocess.run([*argv, "--split", "test"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "--split: invalid choice: 'test'" in bad.stderr


def test_the_drivers_gpu_goes_to_the_commands_own_gpu_option() -> None:
    refine, evaluate = step_type("refine"), step_type("evaluate")
    base = ["--base", "s3://b/base/bundle", "--shards", "s3://b/m/", "--attribute", "all", "--out", "s3://b/c/"]
    ns = validate_step_args(refine, base, step="r")
    assert not hasattr(ns, "gpus")  # a training flag not given is absent: the conf's [refine].gpus applies
    give_gpu(refine, ns, "1")
    assert ns.gpus == (1,)
    named = validate_step_args(refine, [*base, "--gpus", "0"], step="r")
    give_gpu(refine, named, "1")
    assert named.gpus == (0,)  # the step's own choice stands
    ns = validate_step_args(evaluate, ["--model", "m", "--shards", "s"], step="e")
    give_gpu(evaluate, ns, "0")
    assert ns.gpu == 0
