"""INT8 quantisation of a trained bundle, calibrated on shard records, on real MXNet (oneDNN)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_model_train import STORE, write_base_shards

from softlines_attr.cli import main
from softlines_attr.config import PipelineConfig
from softlines_attr.images import load_image
from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.predictor import Predictor, read_records
from softlines_attr.model.quantize import QuantizeError, calibration_images, quantize_bundle
from softlines_attr.model.train import train
from softlines_attr.shard.contract import read_shard_set
from softlines_attr.train_config import TrainConfig

TC = TrainConfig(epochs=3, batch_size=16, learning_rate=0.02, width=0.125, input_size=32, threads=1, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, conf: PipelineConfig) -> tuple[Path, Bundle]:
    """A tiny hemline model trained on colour-coded shards (three learnable classes)."""
    root = tmp_path_factory.mktemp("quantize")
    # shards stored pad_square at STORE: the bundle records the shards' preprocessing, which differs from the
    # default conf's
    shards = write_base_shards(root / "shards", {"train": 64, "val": 32}, refine="hemline", resize_mode="pad_square")
    train(
        shards,
        root / "fp32",
        dataclasses.replace(conf, images=dataclasses.replace(conf.images, store_size=STORE, resize_mode="pad_square")),
        TC,
    )
    return shards, load_bundle(root / "fp32" / "bundle")


def test_quantize_command_writes_an_int8_bundle_that_agrees_with_fp32(
    tmp_path: Path, conf: PipelineConfig, trained: tuple[Path, Bundle], capsys: pytest.CaptureFixture[str]
) -> None:
    shards, fp32 = trained
    out = tmp_path / "int8"
    assert (
        main(["quantize", "--model", str(fp32.path), "--shards", str(shards), "--out", str(out), "--num-calib", "24"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["precision"] == "int8" and printed["calibration"]["examples"] == 16  # whole batches of 16 from 24

    int8 = load_bundle(out)  # checksums verified
    m = int8.manifest
    assert (
        m.preprocessing == fp32.manifest.preprocessing
        and m.preprocessing.store_size == STORE
        and m.preprocessing.resize_mode == "pad_square"
    )
    assert m.precision == "int8" and m.heads == fp32.manifest.heads and m.input_shape == fp32.manifest.input_shape
    assert (
        m.calibration["mode"] == "naive"
        and m.calibration["excluded_layers"] == ["conv_1"]
        and "(val)" in m.calibration["source"]
    )
    assert (
        m.base_model
        and m.base_model.startswith(str(fp32.path))
        and m.metrics == {f"fp32_{k}": v for k, v in fp32.manifest.metrics.items()}
    )
    ops = {node["op"] for node in json.loads((out / "symbol.json").read_text())["nodes"]}
    assert any("quantize" in op for op in ops), ops  # the graph really is quantised

    images = calibration_images(read_shard_set(shards).val, fp32.manifest, conf.images, limit=32)
    p32 = Predictor(fp32, len(images)).predict(images)["hemline"]
    p8 = Predictor(int8, len(images)).predict(images)["hemline"]
    assert p8.shape == p32.shape == (32, 5)
    np.testing.assert_allclose(p8.sum(axis=1), 1.0, atol=1e-3)
    assert np.abs(p8 - p32).max() < 0.15
    assert (p8.argmax(axis=1) == p32.argmax(axis=1)).mean() >= 0.9


def test_calibration_images_are_scoring_inputs(conf: PipelineConfig, trained: tuple[Path, Bundle]) -> None:
    shards, fp32 = trained
    images = calibration_images(read_shard_set(shards).val, fp32.manifest, conf.images, limit=5)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.float32
    # the bundle's preprocessing (pad_square at STORE), never the conf's (shorter_side at 256)
    other = dataclasses.replace(conf.images, store_size=64, resize_mode="shorter_side")
    np.testing.assert_array_equal(calibration_images(read_shard_set(shards).val, fp32.manifest, other, limit=5), images)
    prep = fp32.manifest.preprocessing
    first = next(iter(read_records(read_shard_set(shards).val)))[1]
    np.testing.assert_array_equal(
        images[0], prep.tensor(load_image(first, size=STORE, mode="pad_square", max_pixels=1 << 20))
    )
    # the shards' images are one flat colour plus noise: normalised red/green/blue channel means differ by class
    assert np.isfinite(images).all() and images.std() > 0.1


def test_bad_requests_are_refused(
    tmp_path: Path, trained: tuple[Path, Bundle], capsys: pytest.CaptureFixture[str]
) -> None:
    shards, fp32 = trained
    with pytest.raises(QuantizeError, match=r"expected images of shape \(N>0, 3, 32, 32\), found \(2, 3, 40, 40\)"):
        quantize_bundle(fp32, np.zeros((2, 3, 40, 40), np.float32), tmp_path / "x")
    assert (
        main(
            [
                "quantize",
                "--model",
                str(fp32.path),
                "--shards",
                str(shards),
                "--out",
                str(tmp_path / "y"),
                "--num-calib",
                "0",
            ]
        )
        == 2
    )
    assert "expected a positive number of images, found 0" in capsys.readouterr().err
    int8_dir = tmp_path / "int8"
    quantize_bundle(
        fp32, np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32), int8_dir, batch_size=4
    )
    with pytest.raises(QuantizeError, match="expected an fp32 bundle to quantise, found precision 'int8'"):
        quantize_bundle(load_bundle(int8_dir), np.zeros((4, 3, 32, 32), np.float32), tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def _mxnet_records(paths: list[Path]) -> list[tuple[np.ndarray, bytes]]:
    """(labels, image bytes) of every record, read by MXNet's own reader: the reference for ours."""
    import mxnet as mx

    out = []
    for path in paths:
        reader = mx.recordio.MXRecordIO(str(path), "r")
        while (item := reader.read()) is not None:
            header, image = mx.recordio.unpack(item)
            out.append((np.atleast_1d(np.asarray(header.label, dtype=np.float32)), image))
        reader.close()
    return out


def test_evaluation_and_calibration_read_records_as_mxnets_reader_does(
    tmp_path: Path, conf: PipelineConfig, trained: tuple[Path, Bundle]
) -> None:
    """read_records and calibration_images go through shard/recordio's reader: MXRecordIO's records, in order."""
    from softlines_attr.shard.errors import RecordIOError

    shards, fp32 = trained
    base = read_shard_set(write_base_shards(tmp_path / "base", {"train": 4, "val": 6}))  # label arrays (flag 4)
    for paths in (list(read_shard_set(shards).val), [*base.train, *base.val]):
        ours, theirs = list(read_records(paths)), _mxnet_records(paths)
        assert len(ours) == len(theirs) > 0
        for (labels, image), (want_labels, want_image) in zip(ours, theirs):
            assert image == want_image and labels.dtype == np.float32
            np.testing.assert_array_equal(labels, want_labels)
    val = list(read_shard_set(shards).val)
    prep = fp32.manifest.preprocessing
    want = [prep.network_input(image, conf.images.max_pixels) for _, image in _mxnet_records(val)[:7]]
    np.testing.assert_array_equal(calibration_images(val, fp32.manifest, conf.images, limit=7), np.stack(want))
    # a shard cut short is refused with the reader's message, not read as fewer images
    cut = tmp_path / "cut.rec"
    cut.write_bytes(val[0].read_bytes()[:-5])
    with pytest.raises(RecordIOError, match=r"cut\.rec: expected \d+ bytes of the part at byte \d+, found \d+"):
        calibration_images([cut], fp32.manifest, conf.images, limit=10_000)
