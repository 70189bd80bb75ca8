"""Preprocessing travels with the model: the scoring job decodes every image with the bundle's store size,
resize mode, crop, region, mean and std, never with the conf's [images] (issue 11 item 5); real local Spark,
real MXNet."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from test_score_helpers import HEMLINE, SIZE, make_bundle, write_catalog
from test_shard_helpers import write_images

from softlines_attr.config import load_config
from softlines_attr.images import load_image, to_network_input
from softlines_attr.model.bundle import load_bundle
from softlines_attr.model.predictor import Predictor
from softlines_attr.score import ScoreJob, run_score_job

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def test_scoring_uses_the_bundles_preprocessing_not_the_confs(spark, tmp_path: Path) -> None:
    # the bundle was trained on 48 px padded squares; the scoring conf is the default (256 px, shorter side)
    train_conf = load_config()
    train_conf = dataclasses.replace(
        train_conf,
        images=dataclasses.replace(train_conf.images, store_size=48, resize_mode="pad_square", max_pixels=400000),
    )
    bundle_dir = make_bundle(tmp_path / "models" / "hemline", [("hemline", HEMLINE)], train_conf, seed=5)
    prep = load_bundle(bundle_dir).manifest.preprocessing
    assert (prep.store_size, prep.resize_mode, prep.input_size) == (48, "pad_square", SIZE)

    images = write_images(tmp_path / "img", n_good=4, seed=3, bad=False, exotic=False)
    uris = sorted(images.paths.values())
    catalog = write_catalog(
        tmp_path / "catalog.parquet", [{"asin": f"A{i}", "image_uri": u} for i, u in enumerate(uris)]
    )
    score_conf = load_config()
    score_conf = dataclasses.replace(
        score_conf, score=dataclasses.replace(score_conf.score, batch_size=4, fetch_threads=2, rows_per_task=8)
    )
    assert score_conf.images.store_size == 256 and score_conf.images.resize_mode == "shorter_side"
    summary = run_score_job(spark, score_conf, ScoreJob(str(catalog), (str(bundle_dir),), str(tmp_path / "out")))
    assert summary["rows_scored"] == len(uris)
    assert summary["models"][0]["preprocessing"]["store_size"] == 48

    from softlines_attr.io.commit import resolve_current

    rows = {
        r["asin"]: r for r in pq.read_table(Path(resolve_current(str(tmp_path / "out"))) / "attributes").to_pylist()
    }
    bundle = load_bundle(bundle_dir)
    changed = 0
    for i, uri in enumerate(uris):
        data = Path(uri).read_bytes()
        expected = Predictor(bundle, 1).predict(prep.network_input(data, max_pixels=400000)[None])["hemline"][0]
        got = {t["value"]: t["probability"] for t in rows[f"A{i}"]["top_k"]}
        for cls, p in got.items():
            assert abs(p - float(expected[HEMLINE.index(cls)])) < 1e-4, (uri, cls, p, expected)
        # what the old code fed the network: the conf's decode (256 px shorter side), then the bundle's crop
        conf_img = load_image(data, size=256, mode="shorter_side", max_pixels=400000)
        old = Predictor(bundle, 1).predict(
            to_network_input(conf_img, input_size=SIZE, mean=prep.mean, std=prep.std)[None]
        )["hemline"][0]
        changed += int(not np.allclose(old, expected, atol=1e-4))
    assert changed == len(uris)  # the two preprocessings really differ on every image


def test_a_batch_normalised_at_once_is_bit_for_bit_its_images_one_by_one(tmp_path: Path) -> None:
    # the scoring job crops on its fetch threads and normalises a whole batch at once; training, evaluation and
    # the predict_batch_udf peer call to_network_input per image: every bit must agree, or output rows would move
    from PIL import Image

    from softlines_attr.images import crop_pixels, normalise
    from softlines_attr.model.manifest import Preprocessing

    images = write_images(tmp_path / "img", n_good=6, seed=11, bad=False, exotic=False)
    decoded = [
        load_image(Path(u).read_bytes(), size=64, mode="shorter_side", max_pixels=400000) for u in images.paths.values()
    ]
    rng = np.random.default_rng(3)
    odd = [
        Image.fromarray(rng.integers(0, 256, (70, 90), dtype=np.uint8), "L"),
        Image.fromarray(rng.integers(0, 256, (90, 70, 4), dtype=np.uint8), "RGBA"),
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).convert("P"),
    ]
    for region in ("full", "upper"):
        for mean, std in (((123.68, 116.779, 103.939), (58.393, 57.12, 57.375)), ((0.3, 0.1, 0.2), (0.7, 1.3, 3.0))):
            prep = Preprocessing(64, "shorter_side", 56, mean, std, region=region)  # type: ignore[arg-type]
            imgs = decoded + odd
            one_by_one = np.stack([to_network_input(i, input_size=56, mean=mean, std=std, region=region) for i in imgs])
            at_once = prep.normalise(np.stack([prep.pixels(i) for i in imgs]))
            # written out: float32 pixels minus the mean, divided by the std, channels first
            pixels = np.stack([crop_pixels(i, 56, region) for i in imgs]).astype(np.float32)
            by_hand = ((pixels - np.float32(mean)) / np.float32(std)).transpose(0, 3, 1, 2)
            assert at_once.dtype == np.float32 and at_once.shape == (len(imgs), 3, 56, 56)
            assert at_once.flags.c_contiguous
            assert at_once.tobytes() == one_by_one.tobytes() == np.ascontiguousarray(by_hand).tobytes()
            assert normalise(crop_pixels(imgs[0], 56, region), mean, std).tobytes() == one_by_one[0].tobytes()
