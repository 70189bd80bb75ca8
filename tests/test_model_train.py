"""Training from RecordIO shards written in the shard job's layout, on real MXNet (tiny network)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from softlines_attr.config import PipelineConfig, load_config
from softlines_attr.model.bundle import load_bundle
from softlines_attr.model.checkpoint import latest_checkpoint
from softlines_attr.model.data import first_label, multi_hot
from softlines_attr.model.errors import TrainInputError
from softlines_attr.model.metrics import average_precision
from softlines_attr.model.predictor import Predictor
from softlines_attr.model.train import train
from softlines_attr.shard.contract import ShardSetWriter, read_shard_set
from softlines_attr.shard.errors import ShardContractError
from softlines_attr.shard.recordio import pack_image_record, pad_labels
from softlines_attr.train_config import TrainConfig

STORE = 40
WORDS = ("red", "green", "blue", "dress")
COLOURS = ((220, 30, 30), (30, 200, 40), (30, 40, 220))
LABEL_WIDTH = 4


def _jpeg(colour: tuple[int, int, int], rng: np.random.Generator) -> bytes:
    arr = np.clip(np.asarray(colour) + rng.normal(0, 20, (STORE, STORE + 8, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_base_shards(
    out: Path,
    per_split: dict[str, int],
    parts: int = 2,
    seed: int = 0,
    refine: str | None = None,
    classes: tuple[str, ...] | None = None,
    resize_mode: str = "shorter_side",
) -> Path:
    """Shards as the shard job lays them out, one colour of three per image.

    Base shards (``refine=None``): labels [colour word, 'dress'] padded with -1 to LABEL_WIDTH.
    Refine shards (``refine=ATTRIBUTE``): the colour's index as the attribute's class (flag 0).
    """
    rng = np.random.default_rng(seed)
    names = {refine: classes or load_config().taxonomy.attribute(refine).classes} if refine else {}
    mode, width, num_classes = ("refine", 1, len(names[refine])) if refine else ("base", LABEL_WIDTH, len(WORDS))
    writer = ShardSetWriter(
        out,
        mode=mode,
        label_width=width,
        image_size=STORE,
        num_classes=num_classes,
        attributes=(refine,) if refine else (),
        classes=names,
        vocab_size=None if refine else len(WORDS),
        labels=str(out / "no_labels"),
        resize_mode=resize_mode,
    )
    record_id = 0
    for split, n in per_split.items():
        for part in range(parts):
            with writer.shard(split, part) as rec:
                for _ in range(n // parts):
                    k = int(rng.integers(0, 3))
                    label = float(k) if refine else pad_labels([k, 3], LABEL_WIDTH)
                    rec.write(record_id, pack_image_record(label, record_id, _jpeg(COLOURS[k], rng)))
                    record_id += 1
    return writer.close()


def test_multi_hot_drops_the_padding() -> None:
    hot = multi_hot(np.array([[2, 0, -1, -1], [3, -1, -1, -1]], dtype=np.float32), 4)
    np.testing.assert_array_equal(hot, [[1, 0, 1, 0], [0, 0, 0, 1]])
    with pytest.raises(TrainInputError, match="label index 4"):
        multi_hot(np.array([[4, -1]]), 4)


def test_read_shard_set(tmp_path: Path) -> None:
    shards = read_shard_set(write_base_shards(tmp_path, {"train": 8, "val": 4}))
    assert shards.mode == "base" and shards.label_width == LABEL_WIDTH and shards.num_classes == 4
    assert [p.name for p in shards.train] == ["train-00000-000.rec", "train-00001-000.rec"]
    assert shards.train_records == 8 and shards.val_records == 4
    with pytest.raises(ShardContractError, match="no shard manifest"):
        read_shard_set(tmp_path / "nowhere")


def test_tiny_base_model_trains_checkpoints_and_writes_a_bundle(tmp_path: Path, conf: PipelineConfig) -> None:
    shards = write_base_shards(tmp_path / "shards_out", {"train": 96, "val": 32})
    tc = TrainConfig(
        epochs=12, batch_size=16, learning_rate=0.02, width=0.125, input_size=32, threads=1, seed=1, loss="sigmoid"
    )
    manifest = train(shards, tmp_path / "model", conf, tc)

    for epoch in range(1, 13):
        assert (tmp_path / "model" / "checkpoints" / f"model-{epoch:04d}.params").is_file()
    bundle = load_bundle(tmp_path / "model" / "bundle")
    assert bundle.manifest == manifest
    head = bundle.manifest.heads[0]
    assert head.name == "base" and head.multi_label and head.attribute is None
    assert len(head.classes) == len(WORDS)
    assert bundle.manifest.input_shape == (3, 32, 32)
    assert bundle.manifest.vocabulary is not None and bundle.manifest.vocabulary.vocab_size == len(WORDS)
    metrics = bundle.manifest.metrics
    assert metrics["val_records"] == 32
    # chance: about 0.33 AP for each colour word, 1.0 for "dress" (on every image): mAP about 0.5
    assert metrics["val_map"] > 0.9, metrics


def test_average_precision() -> None:
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
    ap = average_precision(labels, scores)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert np.isnan(ap[1])


def test_refine_shards_train_a_softmax_head_named_after_the_attribute(
    hemline_model: tuple[Path, Path], conf: PipelineConfig
) -> None:
    # conftest.py's session model: refine shards of 96 + 32 records, 10 epochs (lr 0.01, seed 1)
    manifest = load_bundle(hemline_model[1]).manifest
    head = manifest.heads[0]
    assert head.name == "hemline" and head.attribute == "hemline" and not head.multi_label
    assert head.classes == conf.taxonomy.attribute("hemline").classes
    assert manifest.vocabulary is None
    assert manifest.metrics["val_accuracy"] > 0.9, manifest.metrics  # chance: 1/3 (three classes used)
    probs = Predictor(load_bundle(hemline_model[1]), 2).predict(np.zeros((2, 3, 32, 32), np.float32))["hemline"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_on_base_shards_uses_the_first_word(tmp_path: Path, conf: PipelineConfig) -> None:
    shards = write_base_shards(tmp_path / "shards_out", {"train": 32, "val": 16})
    tc = TrainConfig(epochs=1, batch_size=16, learning_rate=0.02, width=0.125, input_size=32, threads=1, loss="softmax")
    manifest = train(shards, tmp_path / "model", conf, tc)
    # trained on the first word, validated against every title word (the same metrics as any base model)
    assert not manifest.heads[0].multi_label and {"val_map", "val_prior_map", "val_distinct_top1"} <= set(
        manifest.metrics
    )
    with pytest.raises(TrainInputError, match="no label"):
        first_label(np.array([[-1, -1]]))


def test_train_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from softlines_attr.cli import main

    shards = write_base_shards(tmp_path / "shards_out", {"train": 32, "val": 16})
    out = tmp_path / "model"
    code = main(
        [
            "train",
            "--shards",
            str(shards),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--width",
            "0.125",
            "--input-size",
            "32",
            "--threads",
            "1",
            "--lr",
            "0.02",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["bundle"] == f"{out}/bundle" and printed["heads"] == ["base"]
    assert load_bundle(out / "bundle").manifest.metrics == printed["metrics"]

    assert (
        main(
            [
                "train",
                "--shards",
                str(shards),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--width",
                "0.125",
                "--input-size",
                "32",
                "--threads",
                "1",
                "--lr",
                "0.02",
                "--resume",
            ]
        )
        == 0
    )
    assert latest_checkpoint(out) == 2
    capsys.readouterr()

    assert main(["train", "--shards", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "no shard manifest" in capsys.readouterr().err


def test_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path: Path, conf: PipelineConfig) -> None:
    shards = write_base_shards(tmp_path / "shards_out", {"train": 48, "val": 16})
    tc = TrainConfig(
        epochs=3,
        batch_size=16,
        learning_rate=0.02,
        width=0.125,
        input_size=32,
        threads=1,
        seed=5,
        lr_step_epochs=(2,),
        lr_schedule="step",
    )
    train(shards, tmp_path / "whole", conf, tc)
    train(shards, tmp_path / "parts", conf, dataclasses.replace(tc, epochs=2))
    assert latest_checkpoint(tmp_path / "parts") == 2
    train(shards, tmp_path / "parts", conf, tc, resume=True)
    assert latest_checkpoint(tmp_path / "parts") == 3

    whole, parts = load_bundle(tmp_path / "whole" / "bundle"), load_bundle(tmp_path / "parts" / "bundle")
    for name, value in whole.arg_params.items():
        np.testing.assert_allclose(
            parts.arg_params[name].asnumpy(), value.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=name
        )
    for name, value in whole.aux_params.items():
        np.testing.assert_allclose(
            parts.aux_params[name].asnumpy(), value.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=name
        )
    # and the run really trained: epoch 2's parameters differ from epoch 3's
    after_2 = mx.nd.load(str(tmp_path / "parts" / "checkpoints" / "model-0002.params"))["arg:fc_base_weight"].asnumpy()
    assert not np.allclose(after_2, whole.arg_params["fc_base_weight"].asnumpy())


def test_validation_counts_every_val_record_once(tmp_path: Path, conf: PipelineConfig) -> None:
    """20 val records in batches of 16: the padded last batch must not drop or repeat records."""
    shards = write_base_shards(tmp_path / "shards_out", {"train": 16, "val": 20}, refine="hemline")
    tc = TrainConfig(epochs=1, batch_size=16, learning_rate=0.01, width=0.125, input_size=32, threads=1)
    assert train(shards, tmp_path / "model", conf, tc).metrics["val_records"] == 20


def test_color_jitter_changes_training_images_only(tmp_path: Path, conf: PipelineConfig) -> None:
    from softlines_attr.model.data import record_iter

    shards = read_shard_set(write_base_shards(tmp_path / "shards_out", {"train": 16, "val": 16}, refine="hemline"))
    tc = TrainConfig(batch_size=16, width=0.125, input_size=32, threads=1, seed=4)

    def first(paths, cfg: TrainConfig, train: bool) -> np.ndarray:
        return (
            next(
                iter(record_iter(paths, shards, conf, cfg, train=train, label_name="hemline_label", multi_label=False))
            )
            .data[0]
            .asnumpy()
        )

    jitter = dataclasses.replace(tc, color_jitter=True)
    np.testing.assert_array_equal(first(shards.train, tc, True), first(shards.train, tc, True))  # same seed, same batch
    assert not np.allclose(first(shards.train, jitter, True), first(shards.train, tc, True))
    np.testing.assert_array_equal(first(shards.val, jitter, False), first(shards.val, tc, False))  # never at validation
