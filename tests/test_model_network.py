"""Inception-BN network: size at full width, shapes and a real forward/backward pass at a tiny width."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from softlines_attr.errors import SoftlinesAttrError
from softlines_attr.model.errors import ModelError
from softlines_attr.model.inception_bn import (
    FEATURES_NAME,
    count_macs,
    count_parameters,
    inception_bn,
    inception_bn_features,
)

# Measured on this implementation (see docs/MODEL.md): 11,285,224 learnable parameters with a
# 1000-class head, 2,032,600,064 MACs per 224x224 image. The paper's network is "about 11M
# parameters, about 2 GMAC"; the test allows 5% either side of those round figures.
FULL_PARAMS = 11_285_224
FULL_MACS = 2_032_600_064


def test_full_width_size_matches_the_papers_network() -> None:
    sym = inception_bn(1000)
    params = count_parameters(sym, (3, 224, 224))
    macs = count_macs(sym, (3, 224, 224))
    assert params == FULL_PARAMS
    assert macs == FULL_MACS
    assert abs(params - 11e6) / 11e6 < 0.05
    assert abs(macs - 2e9) / 2e9 < 0.05


def test_full_width_features_are_1024_wide_on_a_7x7_grid() -> None:
    internals = inception_bn(1000).get_internals()
    _, out, _ = internals.infer_shape(data=(1, 3, 224, 224))
    shapes = dict(zip(internals.list_outputs(), out))
    assert shapes["ch_concat_5b_output"] == (1, 1024, 7, 7)
    assert shapes[f"{FEATURES_NAME}_output"] == (1, 1024)
    assert shapes["fc_base_output"] == (1, 1000)


def test_parameters_do_not_depend_on_input_size_but_macs_do() -> None:
    sym = inception_bn(10, 0.25)
    assert count_parameters(sym, (3, 64, 64)) == count_parameters(sym, (3, 160, 96))
    assert count_macs(sym, (3, 128, 128)) > 3.5 * count_macs(sym, (3, 64, 64))


@pytest.mark.parametrize("size", [32, 33, 64, 97])
def test_any_input_size_gives_one_output_per_class(size: int) -> None:
    sym = inception_bn(7, 0.125)
    _, out, _ = sym.infer_shape(data=(2, 3, size, size + 5))
    assert out == [(2, 7)]


def test_width_scales_every_convolution() -> None:
    full = inception_bn_features(1.0)
    tiny = inception_bn_features(0.125)
    _, full_out, _ = full.infer_shape(data=(1, 3, 64, 64))
    _, tiny_out, _ = tiny.infer_shape(data=(1, 3, 64, 64))
    assert full_out == [(1, 1024)]
    assert tiny_out == [(1, 128)]
    assert count_parameters(tiny, (3, 64, 64)) < count_parameters(full, (3, 64, 64)) / 40


def test_head_is_named_predictably() -> None:
    sym = inception_bn(5, 0.125, head="hemline")
    args = sym.list_arguments()
    assert "fc_hemline_weight" in args and "fc_hemline_bias" in args
    assert "hemline_label" in args
    assert sym.list_outputs() == ["hemline_output"]


def test_tiny_softmax_network_trains_a_step_and_outputs_probabilities() -> None:
    mx.random.seed(0)
    np.random.seed(0)
    sym = inception_bn(4, 0.125)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["base_label"], context=mx.cpu())
    mod.bind(data_shapes=[("data", (4, 3, 64, 64))], label_shapes=[("base_label", (4,))])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1})
    batch = mx.io.DataBatch([mx.nd.random.normal(shape=(4, 3, 64, 64))], [mx.nd.array([0, 1, 2, 3])])
    before = mod.get_params()[0]["fc_base_weight"].asnumpy().copy()
    mod.forward_backward(batch)
    mod.update()
    probs = mod.get_outputs()[0].asnumpy()
    assert probs.shape == (4, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(mod.get_params()[0]["fc_base_weight"].asnumpy(), before)


def test_multi_label_output_is_one_sigmoid_per_class() -> None:
    sym = inception_bn(6, 0.125, multi_label=True)
    exe = sym.simple_bind(mx.cpu(), data=(3, 3, 48, 48), grad_req="null")
    rng = np.random.default_rng(1)
    for name, arr in exe.arg_dict.items():
        if name.endswith("_gamma"):
            arr[:] = 1.0
        elif name.endswith("_beta"):
            arr[:] = 0.0
        elif name != "data":
            arr[:] = rng.normal(0, 0.1, arr.shape)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1.0 if name.endswith("_var") else 0.0
    out = exe.forward(is_train=False, data=mx.nd.random.normal(shape=(3, 3, 48, 48)))[0].asnumpy()
    assert out.shape == (3, 6)
    assert ((out > 0) & (out < 1)).all()
    assert not np.allclose(out.sum(axis=1), 1.0)


@pytest.mark.parametrize("width", [0, -1.0, float("nan")])
def test_bad_width_is_refused(width: float) -> None:
    with pytest.raises(ModelError, match="width"):
        inception_bn(5, width)


def test_bad_class_count_and_input_shape_are_refused() -> None:
    with pytest.raises(ModelError, match="num_classes"):
        inception_bn(0)
    with pytest.raises(ModelError, match="channels, height, width"):
        count_parameters(inception_bn(5, 0.125), (1, 3, 64, 64))
    assert issubclass(ModelError, SoftlinesAttrError)
