"""Model bundles: round trip on real MXNet, checksums, refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from softlines_attr.config import ImageConfig, PipelineConfig
from softlines_attr.errors import SoftlinesAttrError
from softlines_attr.model.bundle import load_bundle, save_bundle
from softlines_attr.model.errors import BundleError, BundleIntegrityError, PredictorError
from softlines_attr.model.inception_bn import inception_bn
from softlines_attr.model.manifest import (
    MANIFEST_FILE,
    PARAMS_FILE,
    SYMBOL_FILE,
    Head,
    Preprocessing,
    VocabularyRef,
    read_manifest,
    sha256_file,
    update_manifest,
    upgrade_manifest,
)
from softlines_attr.model.predictor import Predictor

SIZE = 48
CLASSES = ("mini", "knee_length", "midi", "maxi", "high_low")


@pytest.fixture(scope="module")
def images(conf: PipelineConfig) -> ImageConfig:
    return dataclasses.replace(conf.images, input_size=SIZE)


@pytest.fixture(scope="module")
def trained() -> tuple[mx.mod.Module, mx.sym.Symbol, np.ndarray]:
    """A tiny network after two SGD steps (so BN moving statistics are not their initial values)."""
    mx.random.seed(3)
    rng = np.random.default_rng(3)
    sym = inception_bn(len(CLASSES), 0.125, head="hemline")
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["hemline_label"], context=mx.cpu())
    mod.bind(data_shapes=[("data", (4, 3, SIZE, SIZE))], label_shapes=[("hemline_label", (4,))])
    mod.init_params(mx.init.Xavier())
    # a gentle step: lr 0.05 with momentum 0.9 on pure-noise batches of 4 diverges (NaN) on some runs
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.01})
    for _ in range(2):
        batch = mx.io.DataBatch(
            [mx.nd.array(rng.normal(size=(4, 3, SIZE, SIZE)))], [mx.nd.array(rng.integers(0, 5, 4))]
        )
        mod.forward_backward(batch)
        mod.update()
    x = rng.normal(size=(4, 3, SIZE, SIZE)).astype(np.float32)
    return mod, sym, x


def _save(path: Path, trained, images: ImageConfig, **kwargs) -> None:
    mod, sym, _ = trained
    arg, aux = mod.get_params()
    save_bundle(path, sym, arg, aux, heads=[Head("hemline", CLASSES, attribute="hemline")], images=images, **kwargs)


def test_round_trip_gives_the_same_outputs(tmp_path: Path, trained, images: ImageConfig) -> None:
    mod, _, x = trained
    mod.forward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros(4)]), is_train=False)
    before = mod.get_outputs()[0].asnumpy()
    assert np.isfinite(before).all()
    _save(
        tmp_path / "b",
        trained,
        images,
        base_model="base@abc",
        vocabulary=VocabularyRef(500, "s3://x/labels"),
        metrics={"accuracy": 0.5},
        thresholds={"hemline": 0.7},
    )

    bundle = load_bundle(tmp_path / "b")
    after = Predictor(bundle, len(x)).predict(x)["hemline"]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before, before[0])  # outputs really depend on the input

    m = bundle.manifest
    assert m.heads == (Head("hemline", CLASSES, attribute="hemline"),)
    assert m.attributes == ("hemline",)
    assert m.input_shape == (3, SIZE, SIZE)
    assert m.mean == images.mean and m.std == images.std
    assert m.base_model == "base@abc" and m.vocabulary == VocabularyRef(500, "s3://x/labels")
    assert m.metrics == {"accuracy": 0.5} and m.thresholds == {"hemline": 0.7}
    assert m.mxnet_version == mx.__version__
    assert m.files == {name: sha256_file(tmp_path / "b" / name) for name in (SYMBOL_FILE, PARAMS_FILE)}
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted([SYMBOL_FILE, PARAMS_FILE, MANIFEST_FILE])
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging folder left behind


def test_params_file_is_mxnet_ndarray_format_not_pickle(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    raw = (tmp_path / "b" / PARAMS_FILE).read_bytes()
    assert not raw.startswith(b"\x80")  # no pickle protocol header
    loaded = mx.nd.load(str(tmp_path / "b" / PARAMS_FILE))
    assert "arg:fc_hemline_weight" in loaded and any(k.startswith("aux:") for k in loaded)


def test_corrupted_params_are_refused_naming_the_file(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    params = tmp_path / "b" / PARAMS_FILE
    raw = bytearray(params.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    params.write_bytes(bytes(raw))
    with pytest.raises(BundleIntegrityError, match=f"file {PARAMS_FILE} does not match its checksum") as info:
        load_bundle(tmp_path / "b")
    assert isinstance(info.value, SoftlinesAttrError)


def test_changed_symbol_is_refused_naming_the_file(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    sym_file = tmp_path / "b" / SYMBOL_FILE
    sym_file.write_text(sym_file.read_text().replace('"num_hidden": "5"', '"num_hidden": "6"'))
    with pytest.raises(BundleIntegrityError, match=f"file {SYMBOL_FILE} does not match"):
        load_bundle(tmp_path / "b")


@pytest.mark.parametrize("name", [SYMBOL_FILE, PARAMS_FILE, MANIFEST_FILE])
def test_missing_file_is_refused_naming_it(tmp_path: Path, trained, images: ImageConfig, name: str) -> None:
    _save(tmp_path / "b", trained, images)
    (tmp_path / "b" / name).unlink()
    with pytest.raises(BundleIntegrityError, match=f"file {name} is missing"):
        load_bundle(tmp_path / "b")


def test_manifest_whose_classes_do_not_fit_the_network_is_refused(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    head = read_manifest(tmp_path / "b").heads[0]
    update_manifest(tmp_path / "b", heads=(dataclasses.replace(head, classes=head.classes[:4]),))  # checksum recomputed
    with pytest.raises(BundleError, match="fc_hemline has 5 outputs but the head lists 4 classes"):
        load_bundle(tmp_path / "b")


def test_a_class_renamed_in_the_manifest_is_refused(tmp_path: Path, trained, images: ImageConfig) -> None:
    """Issue 11 item 7: the manifest is covered by a checksum; a hand edit (a renamed class) is refused."""
    _save(tmp_path / "b", trained, images)
    manifest = tmp_path / "b" / MANIFEST_FILE
    manifest.write_text(manifest.read_text().replace('"knee_length"', '"mini_renamed"'))
    with pytest.raises(BundleIntegrityError, match=f"file {MANIFEST_FILE} does not match its checksum"):
        load_bundle(tmp_path / "b")
    data = json.loads(manifest.read_text())
    data["thresholds"] = {"hemline": 0.0}
    manifest.write_text(json.dumps(data))
    with pytest.raises(BundleIntegrityError, match="does not match its checksum"):
        load_bundle(tmp_path / "b")


def test_bundle_carries_its_whole_preprocessing(tmp_path: Path, trained, images: ImageConfig) -> None:
    """Issue 11 item 5: store size, resize mode, input size, crop, region, mean and std are in the manifest."""
    pad = dataclasses.replace(images, store_size=SIZE + 8, resize_mode="pad_square")
    _save(tmp_path / "b", trained, pad, region="upper")
    data = json.loads((tmp_path / "b" / MANIFEST_FILE).read_text())
    assert data["preprocessing"] == {
        "store_size": SIZE + 8,
        "resize_mode": "pad_square",
        "input_size": SIZE,
        "crop": "center",
        "region": "upper",
        "mean": list(images.mean),
        "std": list(images.std),
    }
    prep = load_bundle(tmp_path / "b").manifest.preprocessing
    assert prep == Preprocessing(SIZE + 8, "pad_square", SIZE, tuple(images.mean), tuple(images.std), region="upper")
    assert prep.input_shape == (3, SIZE, SIZE)


def test_model_digest_covers_thresholds_heads_preprocessing_not_metrics(
    tmp_path: Path, trained, images: ImageConfig
) -> None:
    """Issue 11 item 7: everything that changes an output row changes the digest (model_version); metrics do not."""
    _save(tmp_path / "b", trained, images)
    before = load_bundle(tmp_path / "b").manifest.model_digest
    assert update_manifest(tmp_path / "b", metrics={"accuracy": 0.1}).model_digest == before
    after = update_manifest(tmp_path / "b", thresholds={"hemline": 0.6})
    assert after.model_digest != before and load_bundle(tmp_path / "b").manifest.model_digest == after.model_digest
    _save(tmp_path / "c", trained, dataclasses.replace(images, store_size=SIZE + 16))
    _save(tmp_path / "d", trained, images, region="upper")
    digests = {
        before,
        after.model_digest,
        load_bundle(tmp_path / "c").manifest.model_digest,
        load_bundle(tmp_path / "d").manifest.model_digest,
    }
    assert len(digests) == 4


def test_format_1_bundle_is_refused_clearly_and_upgraded_explicitly(
    tmp_path: Path, trained, images: ImageConfig
) -> None:
    _save(tmp_path / "b", trained, images)
    manifest = tmp_path / "b" / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    old = {k: v for k, v in data.items() if k not in ("preprocessing", "manifest_sha256")}
    manifest.write_text(json.dumps({**old, "format_version": 1}))
    with pytest.raises(BundleError, match="found 1, which records no preprocessing"):
        load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="the manifest records input_shape"):
        upgrade_manifest(tmp_path / "b", dataclasses.replace(images, input_size=SIZE + 8))
    upgrade_manifest(tmp_path / "b", images)
    assert load_bundle(tmp_path / "b").manifest.preprocessing == Preprocessing.from_images(images)


def test_save_refuses_params_that_do_not_fit(tmp_path: Path, trained, images: ImageConfig) -> None:
    mod, sym, _ = trained
    arg, aux = mod.get_params()
    arg = {k: v for k, v in arg.items() if k != "fc_hemline_bias"}
    with pytest.raises(BundleError, match="'fc_hemline_bias' of the symbol is missing"):
        save_bundle(tmp_path / "b", sym, arg, aux, heads=[Head("hemline", CLASSES)], images=images)
    with pytest.raises(BundleError, match="2 classes"):
        save_bundle(tmp_path / "c", sym, *mod.get_params(), heads=[Head("hemline", CLASSES[:2])], images=images)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_an_existing_folder_unless_overwrite(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    with pytest.raises(BundleError, match="already exists"):
        _save(tmp_path / "b", trained, images)
    _save(tmp_path / "b", trained, images, overwrite=True, metrics={"accuracy": 1.0})
    assert load_bundle(tmp_path / "b").manifest.metrics == {"accuracy": 1.0}


def test_bad_manifest_json_and_format_version_are_refused(tmp_path: Path, trained, images: ImageConfig) -> None:
    _save(tmp_path / "b", trained, images)
    manifest = tmp_path / "b" / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(BundleError, match="expected format_version 2, found 99"):
        load_bundle(tmp_path / "b")
    manifest.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path / "b")


def test_predictor_of_a_training_network_equals_its_saved_bundle(tmp_path: Path, trained, images: ImageConfig) -> None:
    """Training validation predicts with Predictor.for_network: the same outputs as the bundle saved from the module."""
    mod, sym, x = trained
    _save(tmp_path / "b", trained, images)
    bundle = load_bundle(tmp_path / "b")
    saved = Predictor(bundle, len(x)).predict(x)["hemline"]
    arg, aux = mod.get_params()
    live = Predictor.for_network(sym, bundle.manifest.heads, (3, SIZE, SIZE), arg, aux, batch_size=3, ctx=mx.cpu())
    np.testing.assert_allclose(live.predict(x)["hemline"], saved, rtol=1e-5, atol=1e-6)  # 4 = 3 + 1 (padded)
    # a data iterator's last batch is padded: predict_iter drops the padding, of the labels too
    it = mx.io.NDArrayIter(x[:3], np.arange(3, dtype=np.float32), batch_size=2, last_batch_handle="pad")
    labels, probs = live.predict_iter(it)
    np.testing.assert_array_equal(labels[0], [0, 1, 2])
    np.testing.assert_allclose(probs["hemline"], saved[:3], rtol=1e-5, atol=1e-6)
    with pytest.raises(PredictorError, match="expected batch_size >= 1, found 0"):
        Predictor(bundle, 0)
