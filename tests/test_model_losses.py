"""Class-weighted and focal softmax heads, and label masking, on real MXNet executors against numpy."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from softlines_attr.model.errors import ModelError
from softlines_attr.model.losses import LossConfig, class_weights, loss_constants, softmax_head

K = 4  # classes
N = 6  # images


def _run(
    loss: LossConfig, logits: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None, masked: bool = False
) -> dict[str, np.ndarray]:
    """Forward and backward of a head whose features are the logits themselves (fc = identity, no bias).

    Returns the probabilities, the per-image loss (when the head has a loss output) and the
    gradient with respect to the logits.
    """
    feat = mx.sym.Variable("feat")
    sym = softmax_head(feat, K, "h", loss, masked=masked)
    args = {
        "feat": mx.nd.array(logits),
        "fc_h_weight": mx.nd.array(np.eye(K, dtype=np.float32)),
        "fc_h_bias": mx.nd.zeros(K),
        "h_label": mx.nd.array(labels),
    }
    args.update(loss_constants(sym, {"h": weights if weights is not None else np.ones(K, np.float32)}))
    grads = {"feat": mx.nd.zeros(logits.shape)}
    exe = sym.bind(
        mx.cpu(),
        args=args,
        args_grad=grads,
        grad_req={n: ("write" if n == "feat" else "null") for n in sym.list_arguments()},
    )
    outs = exe.forward(is_train=True)
    exe.backward()
    result = {"probs": outs[0].asnumpy(), "grad": grads["feat"].asnumpy()}
    if len(outs) == 2:
        result["loss"] = outs[1].asnumpy()
    return result


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _numpy_focal(z: np.ndarray, y: np.ndarray, w: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-image loss -w_y (1 - p_y)^gamma log p_y and its gradient with respect to the logits, by hand."""
    p = _softmax(z.astype(np.float64))
    rows = np.arange(len(y))
    py = p[rows, y]
    loss = -w[y] * (1 - py) ** gamma * np.log(py)
    onehot = np.eye(z.shape[1])[y]
    # dL/dz_j = w_y (delta_jy - p_j) [gamma (1 - p_y)^(gamma - 1) p_y log p_y - (1 - p_y)^gamma]
    factor = gamma * (1 - py) ** (gamma - 1) * py * np.log(py) - (1 - py) ** gamma
    grad = w[y][:, None] * (onehot - p) * factor[:, None]
    return loss, grad


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 2, (N, K)).astype(np.float32), np.array([0, 1, 2, 3, 1, 1])


def test_class_weights_inverse_and_effective_number() -> None:
    counts = np.array([10, 30, 60, 0])
    inv = class_weights(counts, "inverse")
    # proportional to 1/n, the average weight over the training images is 1, an absent class weighs 0
    np.testing.assert_allclose(inv[:3] * counts[:3], inv[0] * counts[0], rtol=1e-6)
    assert (inv * counts).sum() == pytest.approx(counts.sum()) and inv[3] == 0
    np.testing.assert_allclose(
        class_weights(counts, "inverse"), counts.sum() / 3 / np.where(counts, counts, 1) * (counts > 0), rtol=1e-6
    )

    beta = 0.99
    eff = class_weights(counts, "effective", beta)
    raw = (1 - beta) / (1 - beta ** counts[:3].astype(float))
    np.testing.assert_allclose(eff[:3], raw * counts.sum() / (raw * counts[:3]).sum(), rtol=1e-5)
    assert eff[0] > eff[1] > eff[2] and eff[0] / eff[2] < inv[0] / inv[2]  # milder than inverse frequency
    np.testing.assert_allclose(class_weights(counts[:3], "effective", 0.0), 1.0)  # beta 0: equal weights
    np.testing.assert_array_equal(class_weights(counts, "none"), 1.0)
    with pytest.raises(ModelError, match="beta"):
        class_weights(counts, "effective", 1.0)
    with pytest.raises(ModelError, match="non-negative count"):
        class_weights([3, -1], "inverse")
    with pytest.raises(ModelError, match="zero for every class"):
        class_weights([0, 0], "inverse")


def test_focal_gamma_zero_equals_plain_cross_entropy(batch) -> None:
    z, y = batch
    focal0 = _run(LossConfig(focal_gamma=0.0, class_weights="inverse"), z, y, weights=np.ones(K, np.float32))
    plain = _run(LossConfig(), z, y)  # MXNet's own SoftmaxOutput
    np.testing.assert_allclose(focal0["grad"], plain["grad"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(focal0["probs"], _softmax(z), rtol=1e-5)
    np.testing.assert_allclose(focal0["loss"], -np.log(_softmax(z)[np.arange(N), y]), rtol=1e-5)


def test_class_weight_scales_each_images_gradient(batch) -> None:
    z, y = batch
    w = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    weighted = _run(LossConfig(class_weights="inverse"), z, y, weights=w)
    plain = _run(LossConfig(), z, y)
    np.testing.assert_allclose(weighted["grad"], plain["grad"] * w[y][:, None], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weighted["loss"], -w[y] * np.log(_softmax(z)[np.arange(N), y]), rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss_and_gradient_match_numpy(batch, gamma: float) -> None:
    z, y = batch
    w = np.array([1.0, 0.5, 2.0, 1.5], np.float32)
    out = _run(LossConfig(class_weights="effective", focal_gamma=gamma), z, y, weights=w)
    loss, grad = _numpy_focal(z, y, w.astype(np.float64), gamma)
    np.testing.assert_allclose(out["loss"], loss, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["grad"], grad, rtol=1e-4, atol=1e-6)
    # focal loss down-weights easy images: every image's loss is below its weighted cross-entropy
    assert (out["loss"] < -w[y] * np.log(_softmax(z)[np.arange(N), y])).all()


@pytest.mark.parametrize(
    "loss", [LossConfig(), LossConfig(class_weights="inverse", focal_gamma=2.0)], ids=["plain", "weighted-focal"]
)
def test_untagged_images_add_no_loss_and_no_gradient(batch, loss: LossConfig) -> None:
    z, y = batch
    masked_labels = y.copy()
    masked_labels[[1, 4]] = -1
    out = _run(loss, z, masked_labels, masked=True)
    np.testing.assert_array_equal(out["grad"][[1, 4]], 0.0)
    assert np.abs(out["grad"][[0, 2, 3, 5]]).sum() > 0
    full = _run(loss, z, y, masked=True)
    np.testing.assert_allclose(out["grad"][[0, 2, 3, 5]], full["grad"][[0, 2, 3, 5]], rtol=1e-5, atol=1e-7)
    if "loss" in out:
        assert out["loss"][1] == 0.0 and out["loss"][4] == 0.0


def test_bad_loss_settings_are_refused() -> None:
    with pytest.raises(ModelError, match="focal gamma"):
        softmax_head(mx.sym.Variable("feat"), K, "h", LossConfig(focal_gamma=-1.0))
    with pytest.raises(ModelError, match="class weights"):
        # a wrong value on purpose: the refusal is under test
        LossConfig(class_weights="sqrt").validate()  # type: ignore[arg-type]
    sym = softmax_head(mx.sym.Variable("feat"), K, "h", LossConfig(class_weights="inverse"))
    with pytest.raises(ModelError, match="class weights for head 'h'"):
        loss_constants(sym, {"other": np.ones(K)})
