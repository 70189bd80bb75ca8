"""Neck style looks at the neck: the taxonomy's upper region through training, evaluation and scoring (real
RecordIO, real MXNet)."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from softlines_attr.config import PipelineConfig
from softlines_attr.model.bundle import load_bundle, save_bundle
from softlines_attr.model.data import RegionRecordIter, record_iter, training_region
from softlines_attr.model.errors import TrainInputError
from softlines_attr.model.evaluate import evaluate_bundle
from softlines_attr.model.inception_bn import DATA_NAME, classification_head, inception_bn_features
from softlines_attr.model.manifest import Head
from softlines_attr.model.predictor import Predictor, network_input, read_records
from softlines_attr.shard.contract import ShardSetWriter, read_shard_set
from softlines_attr.shard.recordio import pack_image_record
from softlines_attr.train_config import TrainConfig

STORE, INPUT = 40, 32
NECKS = (
    "sweetheart",
    "off_the_shoulder",
    "v_neck",
    "one_shoulder",
    "high_neck",
    "halter",
    "boat_neck",
    "square_neck",
    "scoop_neck",
    "collared",
    "turtle_neck",
)


def _dress(k: int, rng: np.random.Generator) -> bytes:
    """A stored-size JPEG: the top half's colour tells the class (0 red, 1 green), the bottom half is always blue."""
    arr = np.zeros((STORE + 12, STORE, 3), np.float64)
    arr[: (STORE + 12) // 2] = ((230, 30, 30), (30, 220, 30))[k]
    arr[(STORE + 12) // 2 :] = (30, 30, 230)
    arr = np.clip(arr + rng.normal(0, 8, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture(scope="module")
def neck_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(2)
    out = tmp_path_factory.mktemp("region") / "shards_out"
    writer = ShardSetWriter(
        out,
        mode="refine",
        label_width=1,
        image_size=STORE,
        num_classes=len(NECKS),
        attributes=("neck_style",),
        classes={"neck_style": NECKS},
    )
    rid = 0
    for split, n in (("train", 24), ("val", 10)):
        with writer.shard(split, 0) as rec:
            for i in range(n):
                rec.write(rid, pack_image_record(float(i % 2), rid, _dress(i % 2, rng)))
                rid += 1
    return writer.close()


def _conf(conf: PipelineConfig) -> PipelineConfig:
    return dataclasses.replace(conf, images=dataclasses.replace(conf.images, store_size=STORE, input_size=INPUT))


def test_training_region_comes_from_the_taxonomy_for_single_attribute_models(
    neck_shards: Path, conf: PipelineConfig
) -> None:
    shards = read_shard_set(neck_shards)
    assert conf.taxonomy.attribute("neck_style").region == "upper"
    assert training_region(shards, conf) == "upper"
    assert training_region(dataclasses.replace(shards, attribute="hemline"), conf) == "full"
    assert (
        training_region(dataclasses.replace(shards, mode="multi", attribute=None), conf) == "full"
    )  # one input for all heads


def test_region_iterator_feeds_what_evaluate_and_scoring_feed(
    neck_shards: Path, conf: PipelineConfig, tmp_path: Path
) -> None:
    c = _conf(conf)
    shards = read_shard_set(neck_shards)
    tc = TrainConfig(batch_size=4, input_size=INPUT, threads=1, seed=3)
    val = record_iter(
        shards.val, shards, c, tc, train=False, label_name="neck_style_label", multi_label=False, region="upper"
    )
    batches = list(val)
    assert [b.pad for b in batches] == [0, 0, 2]  # 10 records in batches of 4: the last one padded
    data = np.concatenate([b.data[0].asnumpy() for b in batches])[:10]
    labels = np.concatenate([b.label[0].asnumpy() for b in batches])[:10]
    assert labels.tolist() == [float(i % 2) for i in range(10)]

    bundle_dir = _tiny_bundle(tmp_path / "bundle", c, region="upper")
    bundle = load_bundle(bundle_dir)
    assert bundle.manifest.preprocessing.region == "upper"
    expected = np.stack([network_input(jpeg, bundle) for _, jpeg in read_records(shards.val)])
    np.testing.assert_allclose(
        data, expected, atol=1e-4
    )  # training's val inputs = evaluate's = scoring's (same Preprocessing)
    mean, std = np.asarray(c.images.mean, np.float32), np.asarray(c.images.std, np.float32)
    blue = data[:, 2] * std[2] + mean[2]
    assert blue.max() < 120  # the upper view never sees the (blue) skirt

    train = record_iter(
        shards.train, shards, c, tc, train=True, label_name="neck_style_label", multi_label=False, region="upper"
    )
    seen = [b for b in train]
    assert len(seen) == 6 and all(b.pad == 0 for b in seen)
    train_blue = np.concatenate([b.data[0].asnumpy()[:, 2] for b in seen]) * std[2] + mean[2]
    assert train_blue.max() < 120  # random crops of the same upper view
    with pytest.raises(TrainInputError, match="expected one worker"):
        record_iter(
            shards.train, shards, c, tc, train=True, label_name="x", multi_label=False, region="upper", num_parts=2
        )


def test_an_upper_region_model_trains_and_evaluates_on_its_view(
    neck_shards: Path, conf: PipelineConfig, tmp_path: Path
) -> None:
    """A model trained on the upper view (Module.fit on RegionRecordIter), saved with training_region, evaluated
    through its region."""
    c = _conf(conf)
    shards = read_shard_set(neck_shards)
    sym = classification_head(inception_bn_features(0.125), len(NECKS), "neck_style")
    it = RegionRecordIter(
        shards.train,
        batch_size=8,
        input_size=INPUT,
        mean=c.images.mean,
        std=c.images.std,
        region="upper",
        train=True,
        label_name="neck_style_label",
        seed=1,
    )
    mx.random.seed(1)
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=["neck_style_label"])
    mod.fit(
        it,
        num_epoch=2,
        optimizer="sgd",
        optimizer_params={"learning_rate": 0.01},
        initializer=mx.init.Xavier(magnitude=2),
    )
    arg, aux = mod.get_params()
    save_bundle(
        tmp_path / "neck",
        sym,
        arg,
        aux,
        heads=[Head("neck_style", NECKS, attribute="neck_style")],
        images=c.images,
        region=training_region(shards, c),
    )
    bundle = load_bundle(tmp_path / "neck")
    assert bundle.manifest.preprocessing.region == "upper"
    ev = evaluate_bundle(bundle, shards, c.evaluate, threads=1)
    views = np.stack(
        [bundle.manifest.preprocessing.network_input(jpeg, 1 << 20) for _, jpeg in read_records(shards.val)]
    )
    predicted = Predictor(bundle, len(views)).predict(views)["neck_style"].argmax(axis=1)
    truth = np.array([i % 2 for i in range(10)])
    expected = np.zeros((len(NECKS), len(NECKS)), int)
    np.add.at(expected, (truth, predicted), 1)
    np.testing.assert_array_equal(ev.heads[0].confusion, expected)  # evaluate fed the upper view


def _tiny_bundle(path: Path, c: PipelineConfig, *, region: str) -> Path:
    sym = classification_head(inception_bn_features(0.125), len(NECKS), "neck_style")
    mod = mx.mod.Module(sym, data_names=[DATA_NAME], label_names=["neck_style_label"])
    mod.bind(
        data_shapes=[(DATA_NAME, (1, 3, INPUT, INPUT))], label_shapes=[("neck_style_label", (1,))], for_training=False
    )
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    # region given as a plain str on purpose (parametrised)
    save_bundle(
        path, sym, arg, aux, heads=[Head("neck_style", NECKS, attribute="neck_style")], images=c.images, region=region
    )  # type: ignore[arg-type]
    return path
