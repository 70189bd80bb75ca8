"""Scoring models: the bound Predictor against one plain bind, bundles as bytes, the per-process cache, --models
folders."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import boto3
import mxnet as mx
import numpy as np
import pytest
from test_score_helpers import HEMLINE, PATTERN, SIZE, SLEEVE, make_bundle, score_conf

from softlines_attr.model.bundle import Bundle, load_bundle
from softlines_attr.model.errors import BundleIntegrityError, PredictorError
from softlines_attr.model.inception_bn import DATA_NAME
from softlines_attr.model.predictor import Predictor
from softlines_attr.score.errors import ScoreInputError, ScoreModelError
from softlines_attr.score.model_cache import (
    ModelCache,
    bundle_from_payload,
    cached_bundle,
    cached_predictor,
    process_load_counts,
)
from softlines_attr.score.models import check_payloads, read_payload, resolve_model_dirs
from softlines_attr.score.resources import load_models
from softlines_attr.score.task import top_k_rows


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("score_models")
    conf = score_conf(root)
    hem = make_bundle(root / "models" / "hemline", [("hemline", HEMLINE)], conf, seed=1, thresholds={"hemline": 0.4})
    multi = make_bundle(
        root / "models" / "multi", [("pattern", PATTERN), ("sleeve_type", SLEEVE)], conf, seed=2, region="upper"
    )
    sleeve = make_bundle(root / "more" / "sleeve", [("sleeve_type", SLEEVE)], conf, seed=3)
    return {"root": root, "conf": conf, "hem": hem, "multi": multi, "sleeve": sleeve}


def _bind_once(bundle: Bundle, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The reference: the bundle's inference symbol bound once for exactly this batch (no padding, no chunks)."""
    sym = bundle.inference_symbol()
    args = {name: arr for name, arr in bundle.arg_params.items() if name in sym.list_arguments()}
    args[DATA_NAME] = mx.nd.array(batch)
    exe = sym.bind(mx.cpu(), args=args, aux_states=dict(bundle.aux_params), grad_req="null")
    return {h.name: out.asnumpy() for h, out in zip(bundle.manifest.heads, exe.forward(is_train=False))}


def test_predictor_equals_one_plain_bind_with_padding_and_chunks(bundles) -> None:
    x = np.random.default_rng(0).normal(size=(11, 3, SIZE, SIZE)).astype(np.float32)
    for path in (bundles["hem"], bundles["multi"]):
        bundle = load_bundle(path)
        direct = _bind_once(bundle, x)
        pred = Predictor(bundle, batch_size=4)  # 11 = 4 + 4 + 3 (padded)
        for _ in range(2):  # reused across calls
            got = pred.predict(x)
            assert set(got) == set(direct)
            for head in direct:
                np.testing.assert_allclose(got[head], direct[head], rtol=1e-5, atol=1e-6)
        one = pred.predict(x[5:6])
        for head in direct:
            np.testing.assert_allclose(one[head], direct[head][5:6], rtol=1e-5, atol=1e-6)
            assert pred.predict(x[:0])[head].shape == (0, direct[head].shape[1])
    assert not np.allclose(direct["pattern"], direct["pattern"][0])  # outputs depend on the input
    with pytest.raises(PredictorError, match=r"expected a batch of shape \(N, 3, 32, 32\)"):
        pred.predict(x[:, :, :16])


def test_payload_round_trip_and_process_cache(bundles, tmp_path: Path) -> None:
    payload = read_payload(bundles["multi"])
    digest = load_bundle(bundles["multi"]).manifest.model_digest
    assert payload.model_version == f"multi@{digest[:12]}" and digest[:12] != payload.params_sha256[:12]
    trained = tmp_path / "multi-base" / "bundle"  # train's layout: <out>/bundle is named by <out>
    shutil.copytree(bundles["multi"], trained)
    assert read_payload(trained).model_version == f"multi-base@{digest[:12]}"
    assert [(h.attribute, h.threshold) for h in payload.heads] == [("pattern", 0.0), ("sleeve_type", 0.0)]
    assert payload.region == "upper" and payload.input_shape == (3, SIZE, SIZE)
    assert payload.preprocessing.store_size == 40 and payload.preprocessing.resize_mode == "shorter_side"
    rebuilt = bundle_from_payload(payload)
    original = load_bundle(bundles["multi"])
    for name, arr in original.arg_params.items():
        np.testing.assert_array_equal(rebuilt.arg_params[name].asnumpy(), arr.asnumpy())
    first = cached_bundle(payload)
    assert cached_bundle(payload) is first and process_load_counts()[payload.params_sha256] == 1
    assert cached_predictor(payload, 4) is cached_predictor(payload, 4)
    assert process_load_counts()[payload.params_sha256] == 1

    tampered = dataclasses.replace(payload, params=payload.params[:-8] + b"\x00" * 8, params_sha256="0" * 64)
    with pytest.raises(BundleIntegrityError, match="model.params does not match its checksum"):
        bundle_from_payload(tampered)


def test_model_cache_is_bounded_and_drops_the_least_recently_used(bundles) -> None:
    hem, multi, sleeve = (read_payload(bundles[k]) for k in ("hem", "multi", "sleeve"))
    x = np.random.default_rng(0).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)
    cache = ModelCache(max_models=2, max_bytes=1 << 40)
    (p_hem,) = cache.predictors([hem], 4)
    cache.predictors([multi], 4)
    assert cache.predictors([hem], 4)[0] is p_hem  # a hit: hem is now the most recently used
    cache.predictors([sleeve], 4)  # a third model: multi, the least recently used, goes
    assert len(cache) == 2 and hem.params_sha256 in cache and sleeve.params_sha256 in cache
    assert multi.params_sha256 not in cache and cache.evictions == 1
    (p_multi,) = cache.predictors([multi], 4)  # back in: rebuilt, and now hem is the one dropped
    assert cache.loads[multi.params_sha256] == 2 and hem.params_sha256 not in cache and len(cache) == 2
    np.testing.assert_allclose(
        p_multi.predict(x)["pattern"], Predictor(load_bundle(bundles["multi"]), 4).predict(x)["pattern"], rtol=1e-6
    )
    stats = cache.stats()
    assert stats["peak_models"] == 2 and stats["evictions"] == 2 and stats["mb"] > 0
    assert cache.nbytes >= len(multi.params) + len(sleeve.params)

    one = ModelCache(max_models=1, max_bytes=1 << 40)
    pair = one.predictors([hem, multi], 4)  # a task's own models are kept, even above the bound
    assert len(pair) == 2 and len(one) == 2 and one.evictions == 0
    one.predictors([sleeve], 4)
    assert len(one) == 1 and sleeve.params_sha256 in one and one.evictions == 2

    small = ModelCache(max_models=10, max_bytes=len(hem.params) + len(multi.params) // 2)  # one model fits in size
    small.predictors([hem], 4)
    small.predictors([multi], 4)
    assert len(small) == 1 and multi.params_sha256 in small and small.evictions == 1


def test_a_run_with_more_bundles_than_the_cache_keeps_is_refused(bundles, tmp_path: Path) -> None:
    conf = score_conf(tmp_path, "model_cache_models = 1\n")
    with pytest.raises(ScoreModelError, match=r"expected at most 1 model bundles per run \(score.model_cache_models"):
        load_models((str(bundles["hem"]), str(bundles["multi"])), conf)
    assert [p.name for p in load_models((str(bundles["hem"]),), conf)[0]] == ["hemline"]


def test_check_payloads(bundles) -> None:
    hem, multi = read_payload(bundles["hem"]), read_payload(bundles["multi"])
    assert hem.heads[0].threshold == 0.4
    assert check_payloads([hem, multi]) == ["hemline", "pattern", "sleeve_type"]
    with pytest.raises(ScoreModelError, match="is the same model as"):
        check_payloads([hem, hem])


def test_model_version_changes_with_thresholds_and_preprocessing(bundles, tmp_path: Path) -> None:
    """Issue 11 item 7: new abstain thresholds (evaluate --write-thresholds) or another preprocessing give a new
    model_version."""
    from softlines_attr.model.manifest import update_manifest

    copy = tmp_path / "hemline"
    shutil.copytree(bundles["hem"], copy)
    before = read_payload(copy).model_version
    update_manifest(copy, metrics={"eval.hemline.accuracy": 0.5})
    assert read_payload(copy).model_version == before  # metrics change no output row
    update_manifest(copy, thresholds={"hemline": 0.9})
    after = read_payload(copy)
    assert after.model_version != before and after.heads[0].threshold == 0.9
    prep = after.preprocessing
    update_manifest(copy, preprocessing=dataclasses.replace(prep, resize_mode="pad_square"))
    assert read_payload(copy).model_version not in (before, after.model_version)


def test_resolve_model_dirs(bundles, tmp_path: Path) -> None:
    models = bundles["root"] / "models"
    assert resolve_model_dirs([str(models)]) == [models / "hemline", models / "multi"]  # a folder of bundles
    assert resolve_model_dirs([str(bundles["hem"])]) == [bundles["hem"]]
    with pytest.raises(ScoreInputError, match="expected a model bundle folder, found nothing"):
        resolve_model_dirs([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoreInputError, match="or a folder of bundles"):
        resolve_model_dirs([str(tmp_path / "empty")])


def test_models_from_s3(bundles, s3_endpoint: str, tmp_path: Path) -> None:
    """``--models s3://bucket/models/current/`` (the EMR step): bundles downloaded, checksums verified."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="models")
    for path in (bundles["root"] / "models").rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "models", f"current/{path.relative_to(bundles['root'] / 'models')}")
    dirs = resolve_model_dirs(["s3://models/current/"], download_dir=tmp_path)
    assert [d.name for d in dirs] == ["hemline", "multi"]
    assert read_payload(dirs[1]).params_sha256 == read_payload(bundles["multi"]).params_sha256


def test_top_k_rows() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]], dtype=np.float32)
    best, conf, tops = top_k_rows(probs, ("a", "b", "c"), 2)
    assert best.tolist() == [1, 0] and conf.tolist() == pytest.approx([0.6, 0.5])
    assert tops[0] == [
        {"value": "b", "probability": pytest.approx(0.6)},
        {"value": "c", "probability": pytest.approx(0.3)},
    ]
    assert len(top_k_rows(probs, ("a", "b", "c"), 10)[2][0]) == 3


def test_a_cached_model_never_reads_its_broadcast_again(bundles) -> None:
    """Tasks pass the bundles without their bytes and a loader (their broadcasts' ``.value``): the loader runs for a
    model the cache lacks, never on a hit; a loaded payload that is not the model asked for is refused."""
    hem, multi = read_payload(bundles["hem"]), read_payload(bundles["multi"])
    light = [hem.light(), multi.light()]
    assert light[0].params == b"" and light[0].symbol_json == "" and light[0].model_version == hem.model_version
    loaded: list[int] = []

    def load(i: int):
        loaded.append(i)
        return (hem, multi)[i]

    cache = ModelCache(max_models=6, max_bytes=1 << 40)
    first = cache.predictors(light, 4, load=load)
    assert loaded == [0, 1]
    assert cache.predictors(light, 4, load=load) == first and loaded == [0, 1]  # hits: no broadcast read
    x = np.random.default_rng(1).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32)
    np.testing.assert_allclose(  # the model the loader gave, bound
        first[0].predict(x)["hemline"], Predictor(load_bundle(bundles["hem"]), 4).predict(x)["hemline"], atol=1e-6
    )
    with pytest.raises(ScoreModelError, match=r"expected its payload to have params sha256"):
        ModelCache(max_models=6, max_bytes=1 << 40).predictors([hem.light()], 4, load=lambda i: multi)


def test_decode_overlap_is_a_strict_conf_key(tmp_path: Path) -> None:
    from softlines_attr.errors import ConfigError

    assert score_conf(tmp_path).score.decode_overlap == "auto"
    assert score_conf(tmp_path, 'decode_overlap = "off"\n').score.decode_overlap == "off"
    with pytest.raises(
        ConfigError, match=r"key 'score.decode_overlap': expected one of 'auto', 'on', 'off', found 'yes'"
    ):
        score_conf(tmp_path, 'decode_overlap = "yes"\n')
