"""Test data for the scoring tests: tiny model bundles (width-0.125 Inception-BN, initialised, not trained) and
catalogs.

Imported by the tests/test_score_*.py modules; holds no tests itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_shard_helpers import write_images

from softlines_attr.config import PipelineConfig, load_config

SIZE = 32  # network input (the smallest Inception-BN takes)
SCORE_CONF = """
[images]
store_size = 40
input_size = 32
max_pixels = 200000

[score]
batch_size = 4
fetch_threads = 2
top_k = 3
rows_per_task = 8
fetch_retries = 1
fetch_timeout_s = 5.0
"""

HEMLINE = ("mini", "knee_length", "midi", "maxi", "high_low")
PATTERN = ("solid", "floral", "stripe", "plaid")
SLEEVE = ("sleeveless", "cap", "short", "three_quarter", "long")
CATALOG_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("parent_asin", pa.string()),
        ("title", pa.string()),
        ("image_uri", pa.string()),
        ("product_type", pa.string()),
    ]
)


def score_conf(tmp: Path, extra: str = "") -> PipelineConfig:
    """The pipeline config with the tiny-image scoring overrides (and ``extra`` TOML appended)."""
    path = tmp / "score_conf.toml"
    path.write_text(SCORE_CONF + extra)
    return load_config(conf_path=path)


def make_bundle(
    path: Path,
    heads: list[tuple[str, tuple[str, ...]]],
    conf: PipelineConfig,
    *,
    seed: int,
    thresholds: dict[str, float] | None = None,
    region: str = "full",
) -> Path:
    """A bundle of a width-0.125 Inception-BN with one softmax head per (attribute, classes), initialised from ``seed``.

    The FC weights are scaled up so the (untrained) network's confidences spread over (0, 1).
    """
    import mxnet as mx

    from softlines_attr.model.bundle import save_bundle
    from softlines_attr.model.inception_bn import classification_head, inception_bn_features
    from softlines_attr.model.manifest import Head

    features = inception_bn_features(0.125)
    outs = [classification_head(features, len(classes), attr) for attr, classes in heads]
    sym = outs[0] if len(outs) == 1 else mx.sym.Group(outs)
    shapes = {"data": (1, 3, SIZE, SIZE), **{f"{attr}_label": (1,) for attr, _ in heads}}
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    rng = np.random.default_rng(seed)
    arg, aux = {}, {}
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name == "data" or name.endswith("_label"):
            continue
        if name.endswith("_gamma"):
            value = np.ones(shape)
        elif name.endswith(("_beta", "_bias")):
            value = np.zeros(shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape) * (8.0 if name.startswith("fc_") else 1.0)
        arg[name] = mx.nd.array(value)
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        aux[name] = mx.nd.array(np.zeros(shape) if name.endswith("moving_mean") else np.ones(shape))
    save_bundle(
        path,
        sym,
        arg,
        aux,
        heads=[Head(attr, classes, attribute=attr) for attr, classes in heads],
        # region given as a plain str on purpose (parametrised)
        images=dataclasses.replace(conf.images, input_size=SIZE),
        region=region,  # type: ignore[arg-type]
        thresholds=thresholds or {},
    )
    return path


def write_catalog(path: Path, rows: list[dict]) -> Path:
    """A catalog Parquet file with the catalog's columns."""
    full = [{"parent_asin": None, "title": "a dress", "product_type": "DRESS", **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=CATALOG_SCHEMA), path)
    return path


def catalog_with_bad_rows(root: Path, n_good: int = 10, seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """Good, exotic and every bad image class, plus null image_uri, a duplicate asin and a skipped product type.

    Returns:
        The catalog rows and asin -> expected error reason (the duplicate's reason is checked apart).
    """
    images = write_images(root / "img", n_good=n_good, seed=seed)
    uris = list(images.paths.values()) + [u for u in images.bad if u not in images.paths.values()]
    rows = [{"asin": f"A{i:04d}", "image_uri": uri} for i, uri in enumerate(sorted(uris))]
    expected = {r["asin"]: images.bad[r["image_uri"]] for r in rows if r["image_uri"] in images.bad}
    rows += [
        {"asin": "X_nouri", "image_uri": None},
        {"asin": "X_blankuri", "image_uri": "  "},
        {"asin": None, "image_uri": rows[0]["image_uri"]},
        {"asin": rows[1]["asin"], "image_uri": rows[1]["image_uri"] + ".dup"},  # second row of an asin
        {"asin": "S_skirt", "image_uri": rows[2]["image_uri"], "product_type": "SKIRT"},
    ]
    expected.update({"X_nouri": "missing_image_uri", "X_blankuri": "missing_image_uri"})
    return rows, expected
