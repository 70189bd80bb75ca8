"""The promotion gate and the model registry: the gate's rule on hand-made numbers, then real MXNet models on real
shards (the session's tiny hemline model and a worse copy of it): a worse candidate is refused, a better one
promoted, the pointer flips in one step (a reader of every intermediate state finds one whole model), and
``score --models REGISTRY`` reads the current model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mxnet as mx
import pytest

from softlines_attr.config import PipelineConfig, PromoteConfig
from softlines_attr.io.commit import StagedOutput
from softlines_attr.model.bundle import load_bundle, save_bundle
from softlines_attr.promote.errors import PromoteInputError
from softlines_attr.promote.gate import HeadScore, apply_gate
from softlines_attr.promote.job import run_promote
from softlines_attr.promote.registry import publish_bundle
from softlines_attr.score.models import resolve_model_dirs


def _score(attribute: str, accuracy: float, coverage: float) -> HeadScore:
    return HeadScore(attribute, attribute, accuracy, coverage, target_precision=0.9, records=100)


# --------------------------------------------------------------------------------------------
# The gate, on numbers
# --------------------------------------------------------------------------------------------


def test_gate_allows_the_configured_drop_and_not_more() -> None:
    settings = PromoteConfig(max_accuracy_drop=2.0, min_coverage=0.5)
    current = {"hemline": _score("hemline", 0.80, 0.60), "pattern": _score("pattern", 0.70, 0.55)}
    # hemline exactly 2 points lower (passes), pattern higher
    ok = apply_gate(
        {"hemline": _score("hemline", 0.78, 0.51), "pattern": _score("pattern", 0.75, 0.50)}, current, settings
    )
    assert ok.promote and [c.check for c in ok.checks] == ["accuracy", "coverage", "accuracy", "coverage"]
    assert all(c.passed for c in ok.checks) and "every check passed (4)" in ok.reasons[0]
    # 2.5 points lower: refused, and only that check fails
    low = apply_gate(
        {"hemline": _score("hemline", 0.775, 0.70), "pattern": _score("pattern", 0.75, 0.70)}, current, settings
    )
    assert not low.promote and [(c.attribute, c.check) for c in low.checks if not c.passed] == [("hemline", "accuracy")]
    assert low.reasons == (
        "hemline: accuracy 77.50% vs the current model's 80.00% (-2.50 points); expected at most "
        "promote.max_accuracy_drop 2 points lower",
    )
    # better accuracy but coverage at the target precision below the floor
    thin = apply_gate(
        {"hemline": _score("hemline", 0.90, 0.40), "pattern": _score("pattern", 0.90, 0.90)}, current, settings
    )
    assert not thin.promote and thin.reasons == (
        "hemline: coverage at precision 0.90 is 0.400; expected at least promote.min_coverage 0.500",
    )


def test_gate_refuses_a_candidate_that_drops_an_attribute_and_promotes_without_a_current_model() -> None:
    settings = PromoteConfig(max_accuracy_drop=1.0, min_coverage=0.9)
    current = {"hemline": _score("hemline", 0.5, 0.0)}
    candidate = {"hemline": _score("hemline", 0.9, 0.95)}
    dropped = apply_gate(candidate, current, settings, current_attributes=["hemline", "pattern"])
    assert not dropped.promote and len(dropped.reasons) == 1 and dropped.reasons[0].startswith("pattern: the current")
    # the candidate predicts pattern too (the shards do not tag it): nothing is dropped
    kept = apply_gate(
        candidate, current, settings, current_attributes=["hemline", "pattern"], candidate_attributes=["pattern"]
    )
    assert kept.promote
    first = apply_gate({"hemline": _score("hemline", 0.1, 0.0)}, None, settings)
    assert first.promote and "no current model" in first.reasons[0]
    assert [c.passed for c in first.checks] == [False]  # reported, not applied


# --------------------------------------------------------------------------------------------
# Real models on real shards
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(hemline_model, tmp_path_factory) -> dict[str, Path]:
    """The session's hemline model ("good") and a copy whose head's class rows are rotated ("worse": every colour
    is predicted as the next class), same network, same preprocessing."""
    shards, good = hemline_model
    root = tmp_path_factory.mktemp("promote_models")
    bundle = load_bundle(good)
    arg = dict(bundle.arg_params)
    for name in ("fc_hemline_weight", "fc_hemline_bias"):
        values = arg[name].asnumpy()
        values[:3] = values[[2, 0, 1]]  # class k's row scores colour k-1: colour k now wins class k+1
        arg[name] = mx.nd.array(values)
    worse = root / "hemline-worse" / "bundle"
    save_bundle(
        worse,
        bundle.symbol,
        arg,
        bundle.aux_params,
        heads=bundle.manifest.heads,
        preprocessing=bundle.manifest.preprocessing,
    )
    good_copy = root / "hemline-good" / "bundle"
    shutil.copytree(good, good_copy)
    return {"shards": shards, "good": good_copy, "worse": worse}


def _current_params(registry: Path) -> str:
    """What ``score --models REGISTRY`` would load: the current bundle, verified; its params sha256."""
    (found,) = resolve_model_dirs([str(registry)])
    return load_bundle(found).manifest.files["model.params"]


def _sha(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["files"]["model.params"]


def test_worse_candidate_refused_better_promoted_and_a_retry_changes_nothing(
    models, conf: PipelineConfig, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    shards = str(models["shards"])
    first = run_promote(str(models["good"]), shards, str(registry), conf, run_id="p1")
    assert first["decision"] == "promoted" and first["current_run_id_before"] is None
    assert "no current model" in first["reasons"][0]
    assert first["candidate"]["heads"]["hemline"]["accuracy"] > 0.9
    assert _current_params(registry) == _sha(models["good"])
    assert Path(first["bundle"]).name == "hemline-good"  # the scoring tables' model name

    pointer = (registry / "_current.json").read_bytes()
    worse = run_promote(str(models["worse"]), shards, str(registry), conf, run_id="p2")
    assert worse["decision"] == "refused" and not worse["promoted"]
    assert worse["current_run_id_before"] == worse["current_run_id_after"] == "p1"
    assert len(worse["reasons"]) == 1 and worse["reasons"][0].startswith("hemline: accuracy ")
    assert worse["candidate"]["heads"]["hemline"]["accuracy"] < 0.5 < worse["current"]["heads"]["hemline"]["accuracy"]
    assert (registry / "_current.json").read_bytes() == pointer  # the pointer was not touched
    assert sorted(p.name for p in (registry / "runs").iterdir()) == ["p1"]
    decision = json.loads((registry / "decisions" / "p2" / "decision.json").read_text())
    assert decision["decision"] == "refused" and decision["reasons"] == worse["reasons"]
    evaluation = json.loads((registry / "decisions" / "p2" / "candidate.json").read_text())
    assert evaluation["heads"]["hemline"]["accuracy"] == worse["candidate"]["heads"]["hemline"]["accuracy"]

    again = run_promote(str(models["good"]), shards, str(registry), conf, run_id="p3")  # a retried step
    assert again["decision"] == "already_current" and (registry / "_current.json").read_bytes() == pointer


def test_better_candidate_replaces_a_worse_current_model_through_the_command(
    models, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from softlines_attr.cli import main

    registry = tmp_path / "registry"
    args = ["promote", "--shards", str(models["shards"]), "--models", str(registry)]
    assert main([*args, "--candidate", str(models["worse"]), "--run-id", "w1"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "promoted"
    assert _current_params(registry) == _sha(models["worse"])
    assert main([*args, "--candidate", str(models["good"]), "--run-id", "g1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "promoted" and out["current_run_id_before"] == "w1"
    assert [c["check"] for c in out["checks"]] == ["accuracy", "coverage"] and all(c["passed"] for c in out["checks"])
    assert _current_params(registry) == _sha(models["good"])
    pointer = json.loads((registry / "_current.json").read_text())
    assert pointer["job"] == "promote" and pointer["run_id"] == "g1" and pointer["history"] == ["w1"]


def test_the_pointer_flips_in_one_step_a_reader_finds_one_whole_model_at_every_change(
    models, conf: PipelineConfig, tmp_path: Path
) -> None:
    """One promotion of the good model over the worse one, with a copy of the registry taken before each filesystem
    change (tests/test_commit_faults.py's ``snapshots``): each copy is what a kill at that step leaves."""
    from test_commit_faults import snapshots

    from softlines_attr.cli import main

    registry, snaps = tmp_path / "registry", tmp_path / "snaps"
    assert run_promote(str(models["worse"]), str(models["shards"]), str(registry), conf, run_id="w1")["promoted"]
    args = ["promote", "--candidate", str(models["good"]), "--shards", str(models["shards"]), "--models"]
    with snapshots(registry, snaps):
        assert main([*args, str(registry), "--run-id", "g1"]) == 0
    seen = []
    for snap in sorted(snaps.iterdir()):
        change = (snap / "change.txt").read_text().strip()
        seen.append(("good" if _current_params(snap / "out") == _sha(models["good"]) else "worse", change))
    states = [s for s, _ in seen]
    flip = states.index("good")
    assert flip >= 1, seen  # the worse model is current until the commit
    assert states == ["worse"] * flip + ["good"] * (len(states) - flip), seen  # one flip, never back
    assert seen[flip - 1][1].startswith("move ") and "_current.json" in seen[flip - 1][1], seen  # the pointer's rename
    assert _current_params(registry) == _sha(models["good"])


def test_a_registry_on_s3_promotes_and_score_downloads_only_the_current_model(
    models, conf: PipelineConfig, s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="registry-test")
    registry = "s3://registry-test/models/dresses"
    for path in Path(models["shards"]).rglob("*"):  # the shards on S3 too: promote downloads them
        if path.is_file():
            s3.upload_file(str(path), "registry-test", f"shards/{path.relative_to(models['shards'])}")
    shards = "s3://registry-test/shards"
    assert run_promote(str(models["worse"]), shards, registry, conf, run_id="w1")["decision"] == "promoted"
    refused = run_promote(str(models["worse"]), shards, registry, conf, run_id="w2")
    assert refused["decision"] == "already_current"
    promoted = run_promote(str(models["good"]), shards, registry, conf, run_id="g1")
    assert promoted["decision"] == "promoted" and promoted["bundle"] == f"{registry}/runs/g1/hemline-good"
    assert promoted["candidate"]["heads"]["hemline"]["records"] == 32  # the val split, read from the downloaded shards
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="registry-test")["Contents"])
    assert "models/dresses/decisions/w2/decision.json" in keys and "models/dresses/runs/w1/_summary.json" in keys
    (found,) = resolve_model_dirs([registry], tmp_path / "download")
    assert found.name == "hemline-good" and load_bundle(found).manifest.files["model.params"] == _sha(models["good"])
    downloaded = sorted(str(p.relative_to(tmp_path / "download")) for p in (tmp_path / "download").rglob("*.*"))
    assert [p.rsplit("/", 1)[1] for p in downloaded] == [
        "_summary.json",
        "manifest.json",
        "model.params",
        "symbol.json",
    ]
    # a candidate on S3 is named by its URI in the registry (and so in the score tables), not by the download folder
    for path in Path(models["worse"]).iterdir():
        s3.upload_file(str(path), "registry-test", f"candidates/hemline-again/bundle/{path.name}")
    fresh = "s3://registry-test/models/fresh"  # no current model: the candidate is promoted
    again = run_promote("s3://registry-test/candidates/hemline-again/bundle", shards, fresh, conf, run_id="a1")
    assert again["decision"] == "promoted" and again["bundle"] == f"{fresh}/runs/a1/hemline-again", again
    from softlines_attr.promote.registry import version_name

    assert version_name("s3://registry-test/candidates/hemline-again/bundle") == "hemline-again"
    assert version_name("s3://registry-test/evaluations/") == "evaluations"


def test_promote_and_audit_conf_keys_are_parsed_strictly_and_range_checked(tmp_path: Path) -> None:
    from softlines_attr.config import load_config
    from softlines_attr.errors import ConfigError

    defaults = load_config()
    assert (defaults.promote.max_accuracy_drop, defaults.promote.min_coverage) == (1.0, 0.0)
    assert defaults.audit.tagged_at_column == "tagged_at"
    over = tmp_path / "over.toml"
    over.write_text(
        '[promote]\nmax_accuracy_drop = 0.5\nmin_coverage = 0.3\n[audit]\ntagged_at_column = "checked_on"\n'
    )
    loaded = load_config(conf_path=over)
    assert (loaded.promote.max_accuracy_drop, loaded.promote.min_coverage) == (0.5, 0.3)
    assert loaded.audit.tagged_at_column == "checked_on"
    for text, message in (
        (
            "[promote]\nmax_accuracy_drop = -1.0\n",
            r"'promote.max_accuracy_drop': expected 0..100 \(percentage points\)",
        ),
        ("[promote]\nmin_coverage = 1.5\n", r"'promote.min_coverage': expected 0 <= value <= 1, found 1.5"),
        ('[promote]\nmin_coverage = "high"\n', "promote.min_coverage"),
        ("[promote]\nmax_drop = 1.0\n", "unknown key 'promote.max_drop'"),
        ('[audit]\ntagged_at_column = "tagged at"\n', r"'audit.tagged_at_column': expected a column name"),
    ):
        over.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(conf_path=over)


def test_a_current_model_the_shards_cannot_evaluate_refuses_the_candidate(
    models, conf: PipelineConfig, tmp_path: Path
) -> None:
    """The current model predicts silhouette (same network, a 5-class head), the shards tag hemline: the gate cannot
    compare them, so the candidate is refused with that reason (and would drop silhouette from the index)."""
    from softlines_attr.model.manifest import Head

    bundle = load_bundle(models["good"])
    silhouette = conf.taxonomy.attribute("silhouette").classes
    other = tmp_path / "silhouette" / "bundle"
    save_bundle(
        other,
        bundle.symbol,
        bundle.arg_params,
        bundle.aux_params,
        heads=(Head(name="hemline", classes=silhouette, attribute="silhouette"),),
        preprocessing=bundle.manifest.preprocessing,
    )
    registry = tmp_path / "registry"
    staged = StagedOutput(str(registry), "s1", job="promote")  # seeded through the registry's own functions
    staged.prepare()
    publish_bundle(staged, other, "silhouette")
    staged.commit({"job": "promote", "run_id": "s1"})
    pointer = (registry / "_current.json").read_bytes()
    decision = run_promote(str(models["good"]), str(models["shards"]), str(registry), conf, run_id="p1")
    assert decision["decision"] == "refused" and decision["current"]["attributes"] == ["silhouette"]
    assert decision["reasons"][0].startswith("the current model (run s1) cannot be evaluated on these shards: ")
    assert (registry / "_current.json").read_bytes() == pointer
    assert sorted(os.listdir(registry / "runs")) == ["s1"]
    # a candidate the shards cannot evaluate is an input error (exit 2), and leaves nothing behind
    with pytest.raises(PromoteInputError, match=r"--candidate .* on --shards .*: .*silhouette"):
        run_promote(str(other), str(models["shards"]), str(tmp_path / "fresh"), conf, run_id="p2")
    assert not (tmp_path / "fresh").exists()
