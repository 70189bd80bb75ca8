"""Refine: a base bundle's backbone with a new head, on real MXNet (tiny network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_model_train import write_base_shards

from softlines_attr.config import PipelineConfig
from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.predictor import Predictor
from softlines_attr.model.refine import backbone_names, backbone_params, base_model_ref, refine_network
from softlines_attr.model.train import train
from softlines_attr.train_config import TrainConfig

TC = TrainConfig(epochs=1, batch_size=16, learning_rate=0.02, width=0.125, input_size=32, threads=1, seed=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, conf: PipelineConfig) -> Bundle:
    root = tmp_path_factory.mktemp("refine_base")
    train(write_base_shards(root / "base_shards", {"train": 32, "val": 16}), root / "base", conf, TC)
    return load_bundle(root / "base" / "bundle")


@pytest.fixture(scope="module")
def refine_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_base_shards(tmp_path_factory.mktemp("refine_shards"), {"train": 32, "val": 16}, refine="hemline")


def test_refine_keeps_every_backbone_weight_and_replaces_only_the_head(base: Bundle) -> None:
    sym = refine_network(base, 5, "hemline")
    arg, aux = backbone_params(base, sym)
    assert "fc_hemline_weight" in sym.list_arguments() and "fc_base_weight" not in sym.list_arguments()
    assert set(arg) == set(base.arg_params) - {"fc_base_weight", "fc_base_bias"}
    assert set(arg) == set(backbone_names(sym, "hemline"))
    assert set(aux) == set(base.aux_params)
    for name, value in arg.items():
        np.testing.assert_array_equal(value.asnumpy(), base.arg_params[name].asnumpy(), err_msg=name)
    for name, value in aux.items():
        np.testing.assert_array_equal(value.asnumpy(), base.aux_params[name].asnumpy(), err_msg=name)
    _, out, _ = sym.infer_shape(data=(2, 3, 32, 32))
    assert out == [(2, 5)]


def _backbone_unchanged(refined: Bundle, base: Bundle) -> bool:
    names = [n for n in refined.arg_params if not n.startswith("fc_")]
    return all(np.array_equal(refined.arg_params[n].asnumpy(), base.arg_params[n].asnumpy()) for n in names)


def test_frozen_backbone_trains_only_the_head(
    tmp_path: Path, conf: PipelineConfig, base: Bundle, refine_shards: Path
) -> None:
    manifest = train(
        refine_shards, tmp_path / "refined", conf, dataclasses.replace(TC, freeze_backbone=True), base=base
    )
    refined = load_bundle(tmp_path / "refined" / "bundle")
    assert manifest.base_model == base_model_ref(base) and manifest.heads[0].name == "hemline"
    assert _backbone_unchanged(refined, base)
    assert set(refined.arg_params) - set(base.arg_params) == {"fc_hemline_weight", "fc_hemline_bias"}


def test_backbone_learning_rate_multiplier_applies(
    tmp_path: Path, conf: PipelineConfig, base: Bundle, refine_shards: Path
) -> None:
    train(refine_shards, tmp_path / "zero", conf, dataclasses.replace(TC, backbone_lr_mult=0.0), base=base)
    assert _backbone_unchanged(load_bundle(tmp_path / "zero" / "bundle"), base)
    train(refine_shards, tmp_path / "full", conf, TC, base=base)
    assert not _backbone_unchanged(load_bundle(tmp_path / "full" / "bundle"), base)


def write_multi_shards(out: Path, per_split: dict[str, int], attributes: tuple[str, ...], seed: int = 0) -> Path:
    """Multi shards as the shard job lays them out: one colour of three per image; label column 0 is the
    colour's index, column 1 is (colour + 1) % 3, every other column -1 (untagged); a quarter of the
    records have column 1 untagged too."""
    from test_model_train import COLOURS, STORE, _jpeg

    from softlines_attr.config import load_config
    from softlines_attr.shard.contract import ShardSetWriter
    from softlines_attr.shard.recordio import pack_image_record

    rng = np.random.default_rng(seed)
    taxonomy = load_config().taxonomy
    classes = {a: taxonomy.attribute(a).classes for a in attributes}
    writer = ShardSetWriter(
        out,
        mode="multi",
        label_width=len(attributes),
        image_size=STORE,
        num_classes=sum(len(c) for c in classes.values()),
        attributes=attributes,
        classes=classes,
    )
    record_id = 0
    for split, n in per_split.items():
        with writer.shard(split, 0) as rec:
            for _ in range(n):
                k = int(rng.integers(0, 3))
                labels = [-1.0] * len(attributes)
                labels[0] = float(k)
                labels[1] = float((k + 1) % 3) if rng.random() >= 0.25 else -1.0
                rec.write(record_id, pack_image_record(labels, record_id, _jpeg(COLOURS[k], rng)))
                record_id += 1
    return writer.close()


def _refine_cli(*args: str) -> list[str]:
    return [
        "refine",
        *args,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--lr",
        "0.02",
        "--input-size",
        "32",
        "--width",
        "0.125",
    ]


def test_refine_command_from_a_base_and_from_scratch(
    tmp_path: Path, base: Bundle, refine_shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from softlines_attr.cli import main

    out = tmp_path / "refined"
    assert (
        main(
            _refine_cli(
                "--base",
                str(base.path),
                "--shards",
                str(refine_shards),
                "--attribute",
                "hemline",
                "--out",
                str(out),
                "--backbone-lr-mult",
                "0.5",
                "--class-weights",
                "effective",
                "--focal-gamma",
                "1",
            )
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refined = load_bundle(out / "bundle")
    assert (
        printed["heads"] == ["hemline"] and printed["base_model"] == base_model_ref(base) == refined.manifest.base_model
    )
    assert set(refined.manifest.metrics) >= {"val_accuracy", "val_mean_class_accuracy", "val_records"}
    # the class weights it was trained with are kept, unchanged by training (three colours used of five classes)
    weights = refined.arg_params["hemline_class_weight"].asnumpy()
    assert weights.shape == (5,) and (weights[:3] > 0).all() and (weights[3:] == 0).all()
    probs = Predictor(refined, 2).predict(np.zeros((2, 3, 32, 32), np.float32))["hemline"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    assert (
        main(
            _refine_cli(
                "--base",
                "none",
                "--shards",
                str(refine_shards),
                "--attribute",
                "hemline",
                "--out",
                str(tmp_path / "scratch"),
            )
        )
        == 0
    )
    scratch = load_bundle(tmp_path / "scratch" / "bundle")
    assert (
        scratch.manifest.base_model is None and scratch.manifest.heads[0].classes == refined.manifest.heads[0].classes
    )
    assert "hemline_class_weight" not in scratch.arg_params  # plain softmax cross-entropy


def test_refine_command_refuses_shards_of_another_attribute(
    tmp_path: Path, refine_shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from softlines_attr.cli import main

    assert (
        main(
            _refine_cli(
                "--base",
                "none",
                "--shards",
                str(refine_shards),
                "--attribute",
                "neck_style",
                "--out",
                str(tmp_path / "x"),
            )
        )
        == 2
    )
    assert "expected refine shards of 'neck_style', found shards of attribute 'hemline'" in capsys.readouterr().err
    assert (
        main(
            _refine_cli(
                "--base", "none", "--shards", str(refine_shards), "--attribute", "all", "--out", str(tmp_path / "x")
            )
        )
        == 2
    )
    assert "--attribute all expects multi shards" in capsys.readouterr().err
    assert (
        main(
            _refine_cli(
                "--base", "none", "--shards", str(refine_shards), "--attribute", "colour", "--out", str(tmp_path / "x")
            )
        )
        == 2
    )
    assert "no attribute 'colour'" in capsys.readouterr().err
    assert not (tmp_path / "x" / "bundle").exists()


def test_multi_head_masked_labels_give_no_gradient_to_their_head(conf: PipelineConfig) -> None:
    """Two heads on one backbone: a record with -1 for head A adds nothing to A's gradient; B still learns from it."""
    import mxnet as mx

    from softlines_attr.model.losses import LossConfig
    from softlines_attr.model.manifest import Head
    from softlines_attr.model.network import build_network

    heads = [
        Head("hemline", conf.taxonomy.attribute("hemline").classes, "hemline"),
        Head("sleeve_type", conf.taxonomy.attribute("sleeve_type").classes, "sleeve_type"),
    ]
    sym = build_network(heads, LossConfig(), base=None, width=0.125, masked=True)
    assert sym.list_outputs() == ["hemline_output", "sleeve_type_output"]
    rng = np.random.default_rng(3)
    data = rng.normal(0, 1, (3, 3, 32, 32)).astype(np.float32)
    exe = sym.simple_bind(mx.cpu(), data=data.shape, hemline_label=(3,), sleeve_type_label=(3,))
    mx.random.seed(0)
    for name, arr in exe.arg_dict.items():
        if name not in ("data", "hemline_label", "sleeve_type_label"):
            arr[:] = mx.nd.random.normal(0, 0.1, arr.shape)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1.0 if name.endswith("var") else 0.0

    def grads(hemline: list[float], sleeve: list[float]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        exe.arg_dict["data"][:] = data
        exe.arg_dict["hemline_label"][:] = hemline
        exe.arg_dict["sleeve_type_label"][:] = sleeve
        outs = exe.forward(is_train=True)
        exe.backward()
        return (
            exe.grad_dict["fc_hemline_weight"].asnumpy().copy(),
            exe.grad_dict["fc_sleeve_type_weight"].asnumpy().copy(),
            [o.asnumpy() for o in outs],
        )

    g_hem, g_sleeve, (p_hem, p_sleeve) = grads([0, -1, -1], [1, 4, 2])
    # hemline: only image 0 counts, so the gradient is (p_0 - onehot(0)) x features_0, a rank-one matrix
    # whose row factor is image 0's own probabilities
    v = g_hem[0] / (p_hem[0][0] - 1.0)
    np.testing.assert_allclose(g_hem, np.outer(p_hem[0] - np.eye(5)[0], v), rtol=1e-4, atol=1e-6)
    # contributions add up per image, and an untagged image's is zero
    g_hem_1, _, _ = grads([-1, 3, -1], [1, 4, 2])
    g_hem_01, g_sleeve_01, _ = grads([0, 3, -1], [1, 4, 2])
    np.testing.assert_allclose(g_hem_01, g_hem + g_hem_1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g_sleeve_01, g_sleeve, rtol=1e-5, atol=1e-7)  # the other head does not care
    g_none, g_sleeve_none, _ = grads([-1, -1, -1], [1, 4, 2])
    np.testing.assert_array_equal(g_none, 0.0)
    assert np.abs(g_sleeve_none).sum() > 0
    _, g_sleeve_masked, _ = grads([0, -1, -1], [1, -1, -1])
    _, g_sleeve_2, _ = grads([0, -1, -1], [-1, 4, 2])
    np.testing.assert_allclose(g_sleeve_masked + g_sleeve_2, g_sleeve, rtol=1e-4, atol=1e-6)


def test_multi_head_model_from_a_base_learns_every_tagged_attribute(
    tmp_path: Path, conf: PipelineConfig, base: Bundle, capsys: pytest.CaptureFixture[str]
) -> None:
    from softlines_attr.cli import main

    attributes = conf.taxonomy.names
    shards = write_multi_shards(tmp_path / "multi", {"train": 96, "val": 32}, attributes)
    out = tmp_path / "multi_model"
    assert (
        main(
            [
                "refine",
                "--base",
                str(base.path),
                "--shards",
                str(shards),
                "--attribute",
                "all",
                "--out",
                str(out),
                "--epochs",
                "8",
                "--batch-size",
                "16",
                "--threads",
                "1",
                "--lr",
                "0.02",
                "--backbone-lr-mult",
                "1",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = load_bundle(out / "bundle")
    assert [h.name for h in bundle.manifest.heads] == list(attributes) == printed["heads"]
    assert [h.classes for h in bundle.manifest.heads] == [conf.taxonomy.attribute(a).classes for a in attributes]
    m = bundle.manifest.metrics
    # chance: 1/3 (three classes used); the untagged columns have no val records
    assert m["val_hemline_accuracy"] > 0.9 and m["val_neck_style_accuracy"] > 0.9, m
    assert m["val_hemline_records"] == 32 and 0 < m["val_neck_style_records"] < 32 and m["val_pattern_records"] == 0
    probs = Predictor(bundle, 2).predict(np.zeros((2, 3, 32, 32), np.float32))
    assert list(probs) == list(attributes)
    for name, p in probs.items():
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5, err_msg=name)
    with pytest.raises(Exception, match="expected refine shards of 'hemline'"):
        from softlines_attr.model.refine import check_refine_inputs
        from softlines_attr.shard.contract import read_shard_set

        check_refine_inputs(read_shard_set(shards), "hemline", conf.taxonomy)
