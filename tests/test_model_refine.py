"""Refine: a base bundle's backbone with a new head, on real MXNet (tiny network)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from softlines_attr.config import PipelineConfig
from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.refine import backbone_names, backbone_params, base_model_ref, refine_network
from softlines_attr.model.train import TrainConfig, train
from test_model_train import write_base_shards

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


def test_frozen_backbone_trains_only_the_head(tmp_path: Path, conf: PipelineConfig, base: Bundle, refine_shards: Path) -> None:
    manifest = train(refine_shards, tmp_path / "refined", conf, dataclasses.replace(TC, freeze_backbone=True), base=base)
    refined = load_bundle(tmp_path / "refined" / "bundle")
    assert manifest.base_model == base_model_ref(base) and manifest.heads[0].name == "hemline"
    assert _backbone_unchanged(refined, base)
    assert set(refined.arg_params) - set(base.arg_params) == {"fc_hemline_weight", "fc_hemline_bias"}


def test_backbone_learning_rate_multiplier_applies(tmp_path: Path, conf: PipelineConfig, base: Bundle, refine_shards: Path) -> None:
    train(refine_shards, tmp_path / "zero", conf, dataclasses.replace(TC, backbone_lr_mult=0.0), base=base)
    assert _backbone_unchanged(load_bundle(tmp_path / "zero" / "bundle"), base)
    train(refine_shards, tmp_path / "full", conf, TC, base=base)
    assert not _backbone_unchanged(load_bundle(tmp_path / "full" / "bundle"), base)
