"""Evaluation: metric functions on hand-computed examples, and the evaluate command end to end on real MXNet."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from softlines_attr.config import EvaluateConfig, PipelineConfig
from softlines_attr.model.bundle import Bundle, load_bundle, save_bundle
from softlines_attr.model.errors import BundleIntegrityError, ClassMismatchError, EvaluateInputError
from softlines_attr.model.evaluate import evaluate_bundle, evaluate_model, manifest_updates
from softlines_attr.model.evaluation import Evaluation, evaluate_head, evaluation_to_json
from softlines_attr.model.inception_bn import DATA_NAME, classification_head, inception_bn_features
from softlines_attr.model.manifest import Head, update_manifest
from softlines_attr.model.metrics import average_per_class_accuracy, confusion_matrix, per_class_table, top_k_accuracy
from softlines_attr.model.predictor import Predictor
from softlines_attr.model.report import render_html, render_markdown
from softlines_attr.model.report_png import confusion_png
from softlines_attr.model.thresholds import CurvePoint, choose_abstain_threshold, precision_coverage, threshold_grid
from softlines_attr.shard.contract import ShardSetWriter, read_shard_set
from softlines_attr.shard.recordio import pack_image_record
from tests.test_model_train import COLOURS, STORE, _jpeg, write_base_shards

INPUT = 32


# --------------------------------------------------------------------------------------------
# Metric functions, hand-computed
# --------------------------------------------------------------------------------------------

LABELS = np.array([0, 0, 1, 1, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 0, 2])


def test_confusion_matrix_and_per_class_table() -> None:
    cm = confusion_matrix(LABELS, PREDICTED, 4)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    rows = per_class_table(cm, ["a", "b", "c", "d"])
    assert [(r.name, r.support, r.correct, r.predicted) for r in rows] == [
        ("a", 2, 1, 2),
        ("b", 2, 2, 3),
        ("c", 2, 1, 1),
        ("d", 0, 0, 0),
    ]
    assert [r.accuracy for r in rows] == [0.5, 1.0, 0.5, None]
    assert (
        rows[0].precision == 0.5
        and rows[1].precision == pytest.approx(2 / 3)
        and rows[2].precision == 1.0
        and rows[3].precision is None
    )
    # class d has no support: the average is over the three classes with images
    assert average_per_class_accuracy(rows) == (pytest.approx(2 / 3), 3)
    with pytest.raises(ClassMismatchError, match="class index 4; expected indices 0..3"):
        confusion_matrix(np.array([4]), np.array([0]), 4)


def test_top_k_accuracy() -> None:
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.1, 0.3, 0.2]])
    labels = np.array([1, 0, 3])  # true class ranks: 2nd, 4th, 3rd
    assert top_k_accuracy(labels, probs, 1) == 0.0
    assert top_k_accuracy(labels, probs, 2) == pytest.approx(1 / 3)
    assert top_k_accuracy(labels, probs, 3) == pytest.approx(2 / 3)
    assert top_k_accuracy(labels, probs, 4) == 1.0


def _curve_example() -> tuple[np.ndarray, np.ndarray]:
    # top probabilities 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (right), 0.4 (wrong)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.4, 0.35]])
    labels = np.array([0, 0, 1, 0, 1])
    return labels, probs


def test_precision_coverage_and_the_abstain_threshold() -> None:
    labels, probs = _curve_example()
    curve = precision_coverage(labels, probs, [0.0, 0.5, 0.65, 0.75, 0.85, 0.95])
    assert [(p.kept, p.correct) for p in curve] == [(5, 3), (4, 3), (3, 2), (2, 1), (1, 1), (0, 0)]
    assert [p.coverage for p in curve] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    assert [p.precision for p in curve[:5]] == pytest.approx([0.6, 0.75, 2 / 3, 0.5, 1.0]) and curve[
        5
    ].precision is None

    chosen = choose_abstain_threshold(curve, 0.7)
    assert (
        chosen.reached
        and chosen.threshold == 0.5
        and chosen.precision == 0.75
        and chosen.coverage == pytest.approx(0.8)
    )
    # precision is not monotonic in the threshold: 0.76 is first reached at 0.85, not at 0.65
    chosen = choose_abstain_threshold(curve, 0.76)
    assert chosen.threshold == 0.85 and chosen.coverage == pytest.approx(0.2)
    assert choose_abstain_threshold(curve, 0.6).threshold == 0.0


def test_no_threshold_reaches_the_target() -> None:
    labels = np.array([1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])  # every top prediction is wrong
    curve = precision_coverage(labels, probs, threshold_grid(0.1))
    chosen = choose_abstain_threshold(curve, 0.5)
    assert not chosen.reached and chosen.threshold is None and chosen.precision is None
    assert chosen.coverage == 0.0 and chosen.best_precision == 0.0
    # a curve where nothing is ever kept has no precision at all
    empty = choose_abstain_threshold([CurvePoint(0.5, 0, 0, 0.0, None)], 0.9)
    assert not empty.reached and empty.best_precision is None


def test_threshold_grid() -> None:
    grid = threshold_grid(0.01)
    assert len(grid) == 101 and grid[0] == 0.0 and grid[-1] == 1.0 and grid[37] == 0.37
    np.testing.assert_allclose(threshold_grid(0.3), [0.0, 0.3, 0.6, 0.9, 1.0])


def test_evaluate_head_bounds_top_k_by_the_class_count() -> None:
    labels, probs = _curve_example()
    h = evaluate_head(labels, probs, Head("x", ("a", "b")), target_precision=0.7, threshold_step=0.05)
    assert h.accuracy == 0.6 and set(h.top_k) == {1, 2} and h.top_k[1] == h.accuracy and h.top_k[2] == 1.0
    assert h.abstain.threshold == 0.45  # kept 0.9, 0.8, 0.7, 0.6: 3 of 4 right
    with pytest.raises(ClassMismatchError, match=r"expected probabilities of shape \(N, 3\)"):
        evaluate_head(labels, probs, Head("x", ("a", "b", "c")), target_precision=0.7)


def test_manifest_updates_flag_a_target_not_reached() -> None:
    wrong = evaluate_head(
        np.array([1, 1, 0]),
        np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]),
        Head("hemline", ("a", "b"), "hemline"),
        target_precision=0.8,
    )
    right = evaluate_head(
        *_curve_example(), Head("sleeve_type", ("a", "b"), "sleeve_type"), target_precision=0.7, threshold_step=0.05
    )
    ev = Evaluation("m", "0" * 64, "s", "refine", "val", 5, (wrong, right), "now")
    thresholds, metrics = manifest_updates(ev)
    assert thresholds == {"hemline": 1.0, "sleeve_type": 0.45}
    assert metrics["eval.hemline.target_reached"] == 0.0 and metrics["eval.hemline.abstain_coverage"] == 0.0
    assert "eval.hemline.abstain_precision" not in metrics
    assert metrics["eval.sleeve_type.target_reached"] == 1.0 and metrics["eval.sleeve_type.abstain_precision"] == 0.75
    assert metrics["eval.sleeve_type.top_2_accuracy"] == 1.0 and metrics["eval.hemline.accuracy"] == 0.0
    data = evaluation_to_json(ev)
    assert (
        data["heads"]["hemline"]["abstain"]["threshold"] is None
        and data["heads"]["hemline"]["abstain"]["reached"] is False
    )
    assert "No threshold reaches the target precision 0.80" in render_markdown(ev)
    assert 'class="warn"' in render_html(ev, {"hemline": b"", "sleeve_type": b""})


def test_evaluate_config_section(tmp_path: Path) -> None:
    from softlines_attr.config import load_config
    from softlines_attr.errors import ConfigError

    assert load_config().evaluate == EvaluateConfig(target_precision=0.9, threshold_step=0.01, batch_size=64)
    user = tmp_path / "user.toml"
    user.write_text("[evaluate]\ntarget_precision = 0.8\n[evaluate.target_precision_by_attribute]\nneck_style = 0.7\n")
    ev = load_config(user).evaluate
    assert ev.target_for("neck_style") == 0.7 and ev.target_for("hemline") == 0.8
    user.write_text("[evaluate.target_precision_by_attribute]\nneck_style = 1.2\n")
    with pytest.raises(
        ConfigError, match="evaluate.target_precision_by_attribute.neck_style': expected 0 < value <= 1, found 1.2"
    ):
        load_config(user)
    user.write_text("[evaluate]\ntarget_precison = 0.8\n")
    with pytest.raises(ConfigError, match="unknown key 'evaluate.target_precison'"):
        load_config(user)


def test_confusion_png_is_a_picture() -> None:
    png = confusion_png(np.array([[3, 1], [0, 4]]), ["knee_length", "maxi"], title="t")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 2 * 34 and img.height > 2 * 34
    # the diagonal cell of a row with all its images is drawn darker than an empty cell
    arr = np.asarray(img.convert("L"))
    assert arr.min() < 100 and arr.max() == 255


# --------------------------------------------------------------------------------------------
# End to end on a tiny trained bundle
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, hemline_model: tuple[Path, Path]) -> tuple[Path, Path]:
    """Hemline refine shards (three colours as classes 0-2) and the session's tiny model trained on them for 10 epochs.

    The bundle is a copy (conftest.py's is shared): evaluate writes thresholds into it and its report beside it.
    """
    shards, bundle = hemline_model
    model = tmp_path_factory.mktemp("evaluate") / "model" / "bundle"
    shutil.copytree(bundle, model)
    return shards, model


def _decode_val(shards: Path, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """Labels and network inputs of the val records, decoded here with Pillow and a numpy centre crop."""
    labels, images = [], []
    m = bundle.manifest
    for rec in sorted((shards / "shards" / "val").glob("*.rec")):
        reader = mx.recordio.MXRecordIO(str(rec), "r")
        while (item := reader.read()) is not None:
            header, jpeg = mx.recordio.unpack(item)
            arr = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)
            top, left = (arr.shape[0] - INPUT) // 2, (arr.shape[1] - INPUT) // 2
            crop = arr[top : top + INPUT, left : left + INPUT]
            images.append(((crop - np.asarray(m.mean, np.float32)) / np.asarray(m.std, np.float32)).transpose(2, 0, 1))
            labels.append(int(header.label))
        reader.close()
    return np.array(labels), np.stack(images)


def test_evaluate_command_end_to_end(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from softlines_attr.cli import main

    shards, model = trained
    digest_before = load_bundle(model).manifest.model_digest
    code = main(
        [
            "evaluate",
            "--model",
            str(model),
            "--shards",
            str(shards),
            "--batch-size",
            "5",
            "--threads",
            "1",
            "--write-thresholds",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = model.parent / "bundle-evaluation-val"
    assert printed["evaluation"] == str(out / "evaluation.json") and printed["thresholds_written"]
    data = json.loads((out / "evaluation.json").read_text())
    assert data["shards"]["split"] == "val" and data["shards"]["records"] == 32 and data["shards"]["mode"] == "refine"
    h = data["heads"]["hemline"]

    # independently: the same images through a Predictor of their own, metrics with plain numpy
    bundle = load_bundle(model)
    labels, images = _decode_val(shards, bundle)
    probs = Predictor(bundle, len(images)).predict(images)["hemline"]
    predicted = probs.argmax(axis=1)
    assert h["records"] == 32 and h["accuracy"] == float(np.mean(predicted == labels))
    assert h["accuracy"] > 0.5, h["accuracy"]  # chance is 1/3 (three colours)
    counts = np.zeros((5, 5), int)
    np.add.at(counts, (labels, predicted), 1)
    assert h["confusion_matrix"]["counts"] == counts.tolist()
    assert [r["support"] for r in h["per_class"]] == np.bincount(labels, minlength=5).tolist()
    assert [r["class"] for r in h["per_class"]] == ["mini", "knee_length", "midi", "maxi", "high_low"]
    assert h["per_class"][3]["accuracy"] is None  # maxi: no val image
    assert h["top_k_accuracy"]["1"] == h["accuracy"] and set(h["top_k_accuracy"]) == {"1", "2", "3"}
    confidence = probs.max(axis=1)
    curve = {round(p["threshold"], 2): p for p in h["precision_coverage"]}
    assert len(curve) == 101 and curve[0.0]["kept"] == 32 and curve[0.0]["precision"] == h["accuracy"]
    for t in (0.3, 0.5, 0.7):
        assert curve[t]["kept"] == int((confidence >= t).sum())
    abstain = h["abstain"]
    assert abstain["target_precision"] == 0.9
    if abstain["reached"]:
        t = abstain["threshold"]
        assert curve[round(t, 2)]["precision"] >= 0.9
        assert all(
            p["precision"] is None or p["precision"] < 0.9 for p in h["precision_coverage"] if p["threshold"] < t
        )

    # the report files, with their tables and pictures
    md = (out / "report.md").read_text()
    assert (
        "### Per-class accuracy" in md
        and "| knee_length | " in md
        and "![confusion matrix of hemline](confusion_hemline.png)" in md
    )
    assert "### Precision and coverage by confidence threshold" in md and "| 0.50 |" in md
    assert "![precision and coverage of hemline](precision_coverage_hemline.png)" in md
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<h3>Per-class accuracy</h3>" in page and 'class="cm"' in page
    assert (
        Image.open(out / "confusion_hemline.png").format == "PNG"
        and Image.open(out / "precision_coverage_hemline.png").format == "PNG"
    )

    # thresholds and metrics went into the manifest; the bundle still verifies and holds only its own files
    manifest = load_bundle(model).manifest
    assert manifest.model_digest != digest_before  # new thresholds: a new model_version for the scoring tables
    assert manifest.thresholds["hemline"] == (abstain["threshold"] if abstain["reached"] else 1.0)
    assert manifest.metrics["eval.hemline.accuracy"] == h["accuracy"] and "val_accuracy" in manifest.metrics
    assert manifest.metrics["eval.hemline.target_reached"] == (1.0 if abstain["reached"] else 0.0)
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "model.params", "symbol.json"]


def test_evaluate_refuses_what_does_not_fit(
    trained: tuple[Path, Path], tmp_path: Path, conf: PipelineConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    from softlines_attr.cli import main

    shards, model = trained
    settings = conf.evaluate
    base = write_base_shards(tmp_path / "base", {"train": 4, "val": 4})
    with pytest.raises(EvaluateInputError, match="base shards .*expected refine or multi"):
        evaluate_model(model, base, settings, out_dir=tmp_path / "o1")

    other = write_base_shards(tmp_path / "neck", {"train": 4, "val": 4}, refine="neck_style")
    with pytest.raises(
        EvaluateInputError,
        match=r"expected a head for attribute\(s\) \['neck_style'\].*found heads \[\('hemline', 'hemline'\)\]",
    ):
        evaluate_model(model, other, settings, out_dir=tmp_path / "o2")

    hemlines = conf.taxonomy.attribute("hemline").classes
    fewer = write_base_shards(tmp_path / "fewer", {"train": 4, "val": 4}, refine="hemline", classes=hemlines[:4])
    with pytest.raises(
        ClassMismatchError,
        match=r"has classes \[.*'high_low'\]; the shards .* have classes \['mini', 'knee_length', 'midi', "
        r"'maxi'\] for attribute 'hemline'",
    ):
        evaluate_model(model, fewer, settings, out_dir=tmp_path / "o3")
    renamed = write_base_shards(
        tmp_path / "renamed",
        {"train": 4, "val": 4},
        refine="hemline",
        classes=("mini", "knee", "midi", "maxi", "high_low"),
    )
    with pytest.raises(
        ClassMismatchError, match="'knee'"
    ):  # same count, another name: the names are checked, not only the count
        evaluate_model(model, renamed, settings, out_dir=tmp_path / "o3b")

    resized = write_base_shards(tmp_path / "resized", {"train": 4, "val": 4}, refine="hemline")
    bigger = tmp_path / "bigger-bundle"
    shutil.copytree(model, bigger)
    prep = load_bundle(bigger).manifest.preprocessing
    update_manifest(bigger, preprocessing=dataclasses.replace(prep, store_size=STORE + 8))
    with pytest.raises(
        EvaluateInputError,
        match=f"shards .* hold images stored at {STORE} px shorter_side; bundle .* expects .*store size {STORE + 8} px",
    ):
        evaluate_model(bigger, resized, settings, out_dir=tmp_path / "o3c")

    empty = write_base_shards(tmp_path / "empty", {"train": 4, "val": 0}, refine="hemline")
    with pytest.raises(EvaluateInputError, match="split 'val' has no records"):
        evaluate_model(model, empty, settings, out_dir=tmp_path / "o4")

    with pytest.raises(EvaluateInputError, match="inside the bundle"):
        evaluate_model(model, shards, settings, out_dir=model / "evaluation")

    assert main(["evaluate", "--model", str(model), "--shards", str(base), "--out", str(tmp_path / "o5")]) == 2
    assert "base shards" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--shards", str(shards), "--target-precision", "1.5"]) == 2
    assert "--target-precision: expected 0 < value <= 1, found 1.5" in capsys.readouterr().err

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.params").write_bytes(b"not the params")
    with pytest.raises(BundleIntegrityError, match="model.params"):
        evaluate_model(broken, shards, settings, out_dir=tmp_path / "o6")


# --------------------------------------------------------------------------------------------
# A two-head bundle on multi shards (one column per attribute, -1 = no tag)
# --------------------------------------------------------------------------------------------


def _two_head_bundle(path: Path, conf: PipelineConfig) -> Bundle:
    import dataclasses

    features = inception_bn_features(0.125)
    sym = mx.sym.Group([classification_head(features, 5, "hemline"), classification_head(features, 5, "sleeve_type")])
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=["hemline_label", "sleeve_type_label"])
    mod.bind(
        data_shapes=[(DATA_NAME, (2, 3, INPUT, INPUT))],
        label_shapes=[("hemline_label", (2,)), ("sleeve_type_label", (2,))],
        for_training=False,
    )
    mx.random.seed(3)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg, aux = mod.get_params()
    taxonomy = conf.taxonomy
    heads = [Head(a, taxonomy.attribute(a).classes, attribute=a) for a in ("hemline", "sleeve_type")]
    save_bundle(
        path, sym, arg, aux, heads=heads, images=dataclasses.replace(conf.images, input_size=INPUT, store_size=STORE)
    )
    return load_bundle(path)


def _write_multi_shards(
    out: Path, labels: list[tuple[int, int]], train_records: int = 2, classes: dict | None = None
) -> Path:
    """Multi shards (hemline, sleeve_type columns) written with the shard contract's writer; the train split
    repeats the first labels."""
    from softlines_attr.config import load_config

    rng = np.random.default_rng(4)
    taxonomy = load_config().taxonomy
    classes = classes or {a: taxonomy.attribute(a).classes for a in ("hemline", "sleeve_type")}
    writer = ShardSetWriter(
        out,
        mode="multi",
        label_width=2,
        image_size=STORE,
        num_classes=10,
        attributes=("hemline", "sleeve_type"),
        classes=classes,
    )
    for split, items in (("train", (labels * train_records)[:train_records]), ("val", labels)):
        with writer.shard(split, 0) as rec:
            for i, pair in enumerate(items):
                rec.write(i, pack_image_record([float(v) for v in pair], i, _jpeg(COLOURS[i % 3], rng)))
    return writer.close()


def test_multi_head_bundle_on_multi_shards_skips_missing_tags(tmp_path: Path, conf: PipelineConfig) -> None:
    tags = [(0, 4), (1, -1), (-1, 2), (3, 3), (2, -1), (4, 0), (-1, 1)]
    shards = read_shard_set(_write_multi_shards(tmp_path / "multi", tags))
    bundle = _two_head_bundle(tmp_path / "bundle", conf)
    ev = evaluate_bundle(
        bundle, shards, EvaluateConfig(batch_size=3, target_precision_by_attribute={"sleeve_type": 0.5}), threads=1
    )
    assert ev.records == 7 and [h.head for h in ev.heads] == ["hemline", "sleeve_type"]

    images = []
    for jpeg in _val_jpegs(shards.val[0]):
        arr = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)
        top, left = (arr.shape[0] - INPUT) // 2, (arr.shape[1] - INPUT) // 2
        images.append(
            (
                (arr[top : top + INPUT, left : left + INPUT] - np.asarray(conf.images.mean, np.float32))
                / np.asarray(conf.images.std, np.float32)
            ).transpose(2, 0, 1)
        )
    probs = Predictor(bundle, len(images)).predict(np.stack(images))
    for column, h in enumerate(ev.heads):
        truth = np.array([t[column] for t in tags])
        tagged = truth >= 0
        assert h.records == int(tagged.sum()) and h.skipped == int((~tagged).sum())
        expected = np.zeros((5, 5), int)
        np.add.at(expected, (truth[tagged], probs[h.head][tagged].argmax(axis=1)), 1)
        np.testing.assert_array_equal(h.confusion, expected)
    assert ev.heads[0].abstain.target_precision == 0.9 and ev.heads[1].abstain.target_precision == 0.5

    sleeves = list(conf.taxonomy.attribute("sleeve_type").classes)
    hemline = list(conf.taxonomy.attribute("hemline").classes)
    fewer = read_shard_set(
        _write_multi_shards(tmp_path / "fewer", tags, classes={"hemline": hemline, "sleeve_type": sleeves[:4]})
    )
    with pytest.raises(
        ClassMismatchError,
        match=r"'sleeve_type' of bundle .* has classes .*have classes \['sleeveless', 'cap', 'short', "
        r"'three_quarter'\] for attribute 'sleeve_type'",
    ):
        evaluate_bundle(bundle, fewer, EvaluateConfig(), threads=1)
    reordered = read_shard_set(
        _write_multi_shards(tmp_path / "reordered", tags, classes={"hemline": hemline[::-1], "sleeve_type": sleeves})
    )
    with pytest.raises(
        ClassMismatchError, match=r"'hemline' of bundle .* has classes \['mini', .*have classes \['high_low', "
    ):
        evaluate_bundle(bundle, reordered, EvaluateConfig(), threads=1)


def _val_jpegs(rec: Path) -> list[bytes]:
    reader = mx.recordio.MXRecordIO(str(rec), "r")
    out = []
    while (item := reader.read()) is not None:
        out.append(mx.recordio.unpack(item)[1])
    reader.close()
    return out
