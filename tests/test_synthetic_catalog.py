"""The generated catalog (softlines_attr.synthetic): real files, real Pillow decodes, small n and images."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from softlines_attr.cli import main
from softlines_attr.config import PipelineConfig, load_config
from softlines_attr.synthetic import (
    BAD_KINDS,
    TITLE_SCHEMA,
    CatalogGenError,
    CatalogOutputError,
    generate_catalog,
    iter_title_batches,
    write_titles_parquet,
)
from softlines_attr.synthetic.draw import render
from softlines_attr.synthetic.plan import NATIVE_CLASSES
from softlines_attr.synthetic.shoot import RenderTask

N = 240  # >= 200: every bad-row kind appears
SEED = 7
SMALL_CONF = """
[catalog]
min_size = [96, 128]
max_size = [168, 224]
workers = 1
"""
ASIN_RE = re.compile(r"^B0[0-9A-Z]{8}$")


@pytest.fixture(scope="module")
def small_conf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("conf") / "small.toml"
    path.write_text(SMALL_CONF, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_conf(small_conf_path: Path) -> PipelineConfig:
    return load_config(small_conf_path)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, small_conf: PipelineConfig) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("catalog") / "cat"
    summary = generate_catalog(out, small_conf, n=N, seed=SEED)
    return out, summary


def _read(out: Path, name: str):
    return pq.read_table(out / name).to_pandas()


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_outputs_and_schemas(catalog: tuple[Path, dict]) -> None:
    out, summary = catalog
    for name in ("catalog.parquet", "tags.parquet", "truth.parquet", "bad_rows.parquet", "summary.json"):
        assert (out / name).is_file(), name
    schema = pq.read_schema(out / "catalog.parquet")
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in TITLE_SCHEMA]
    for name in ("tags.parquet", "truth.parquet"):
        assert pq.read_schema(out / name).names == ["asin", "attribute", "label"]
    assert pq.read_schema(out / "bad_rows.parquet").names[:2] == ["asin", "kind"]

    cat = _read(out, "catalog.parquet")
    assert len(cat) == N + 1 == summary["rows"]
    assert cat.asin.map(lambda a: bool(ASIN_RE.match(a))).all()
    assert cat.asin.duplicated().sum() == 1
    assert set(cat.product_type) >= {"DRESS"} and len(set(cat.product_type)) >= 2
    uris = cat.image_uri.dropna()
    assert uris.map(lambda u: Path(u).is_absolute()).all()
    variants = cat.drop_duplicates("asin").dropna(subset=["parent_asin"]).groupby("parent_asin").size()
    assert variants.min() >= 1 and variants.max() <= 6 and (variants > 1).any()
    # colour variants share the attributes
    truth = _read(out, "truth.parquet").merge(cat.drop_duplicates("asin")[["asin", "parent_asin"]], on="asin")
    per_parent = truth.dropna(subset=["parent_asin"]).groupby(["parent_asin", "attribute"]).label.nunique()
    assert (per_parent == 1).all()
    assert summary["seed"] == SEED and summary["n"] == N
    assert json.loads((out / "summary.json").read_text())["bad_rows"] == summary["bad_rows"]


def test_every_class_appears_and_pairs_are_plausible(catalog: tuple[Path, dict], small_conf: PipelineConfig) -> None:
    out, summary = catalog
    truth = _read(out, "truth.parquet")
    dresses = summary["dresses"]
    assert len(truth) == dresses * len(small_conf.taxonomy.attributes)
    for attr in small_conf.taxonomy.attributes:
        seen = truth[truth.attribute == attr.name].label.value_counts()
        assert set(seen.index) == set(attr.classes), attr.name
        assert summary["class_counts"][attr.name] == {c: int(seen.get(c, 0)) for c in attr.classes}
    wide = truth.pivot(index="asin", columns="attribute", values="label")
    long_sil = wide[wide.silhouette.isin(["maxi", "gown"])]
    assert long_sil.hemline.isin(["maxi", "high_low"]).all()
    assert (wide[wide.hemline == "maxi"].silhouette.isin(["maxi", "gown"])).all()
    strapless = wide[wide.neck_style.isin(["sweetheart", "halter", "one_shoulder"])]
    assert (strapless.sleeve_type == "sleeveless").all()


def test_images_decode_and_bad_rows_are_as_recorded(catalog: tuple[Path, dict]) -> None:
    out, summary = catalog
    cat = _read(out, "catalog.parquet")
    bad = _read(out, "bad_rows.parquet")
    assert set(bad.kind) == set(BAD_KINDS)
    assert summary["bad_rows"]["by_kind"] == bad.kind.value_counts().to_dict()
    for rec in bad.itertuples():
        row = cat.iloc[rec.row]
        assert row.asin == rec.asin, rec
        if rec.kind == "null_title":
            assert row.title is None
        elif rec.kind == "empty_title":
            assert row.title is not None and row.title.strip() == ""
        elif rec.kind == "size_only_title":
            assert row.title and all(re.fullmatch(r"[0-9A-Z/]+", t) for t in row.title.split()), row.title
        elif rec.kind == "missing_image":
            assert row.image_uri and not Path(row.image_uri).exists()
        elif rec.kind == "null_image_uri":
            assert row.image_uri is None
        elif rec.kind == "corrupt_jpeg":
            with pytest.raises(OSError):
                with Image.open(row.image_uri) as im:
                    im.load()
        elif rec.kind == "png_alpha":
            with Image.open(row.image_uri) as im:
                assert (im.format, im.mode) == ("PNG", "RGBA")
                assert im.getchannel("A").getextrema()[0] < 255
        elif rec.kind == "grayscale_jpeg":
            with Image.open(row.image_uri) as im:
                assert (im.format, im.mode) == ("JPEG", "L")
        elif rec.kind == "duplicate_asin":
            assert (cat.asin == rec.asin).sum() == 2
    broken = set(bad[bad.kind.isin(["missing_image", "null_image_uri", "corrupt_jpeg"])].asin)
    (w0, h0), (w1, h1) = (96, 128), (168, 224)
    for row in cat[~cat.asin.isin(broken)].drop_duplicates("asin").itertuples():
        with Image.open(row.image_uri) as im:
            im.load()
            assert w0 <= im.width <= w1 and h0 <= im.height <= h1
            assert im.mode in ("RGB", "RGBA", "L")


def test_tags_have_the_configured_wrong_share(catalog: tuple[Path, dict], small_conf: PipelineConfig) -> None:
    out, summary = catalog
    cat_conf = small_conf.catalog
    tags = _read(out, "tags.parquet")
    truth = _read(out, "truth.parquet")
    for attr in small_conf.taxonomy.attributes:
        sub = tags[tags.attribute == attr.name]
        assert abs(len(sub) - cat_conf.tag_share * summary["dresses"]) <= 1
        assert set(sub.label) <= set(attr.classes)
        assert not sub.asin.duplicated().any()
    merged = tags.merge(truth, on=["asin", "attribute"], suffixes=("_tag", "_true"), validate="one_to_one")
    assert len(merged) == len(tags)
    wrong = (merged.label_tag != merged.label_true).mean()
    assert abs(wrong - cat_conf.wrong_tag_share) < 0.01
    assert summary["tags"]["wrong"] == int((merged.label_tag != merged.label_true).sum())


def test_titles_are_vendor_like(catalog: tuple[Path, dict]) -> None:
    out, summary = catalog
    cat = _read(out, "catalog.parquet")
    titles = cat.title.dropna()
    text = "\n".join(titles)
    assert any(t in text for t in ("&amp;", "&quot;", "&#39;", "\u2019", "\u00e9", "\u2013", "\u2014", "\u00a0"))
    assert titles.str.contains("Dress|dress|DRESS|Gown").mean() > 0.6
    assert 0 < summary["spam_titles"] < N * 0.3
    # titles name the drawn class some of the time (the weak labels are learnable)
    truth = _read(out, "truth.parquet")
    pat = truth[truth.attribute == "sleeve_type"].merge(cat[["asin", "title"]].dropna(), on="asin")
    hits = pat.apply(lambda r: "long sleeve" in r.title.lower(), axis=1)
    assert hits[pat.label == "long"].mean() > hits[pat.label != "long"].mean() + 0.2


def test_deterministic_across_runs_and_workers(tmp_path: Path, small_conf: PipelineConfig) -> None:
    out = tmp_path / "cat"
    one = dataclasses.replace(small_conf, catalog=dataclasses.replace(small_conf.catalog, workers=1))
    two = dataclasses.replace(small_conf, catalog=dataclasses.replace(small_conf.catalog, workers=2))
    generate_catalog(out, one, n=N, seed=SEED)
    first = _all_files(out)
    generate_catalog(out, two, n=N, seed=SEED)  # replaces the previous catalog in place
    second = _all_files(out)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = tmp_path / "other"
    generate_catalog(other, one, n=N, seed=SEED + 1)
    assert (other / "truth.parquet").read_bytes() != first["truth.parquet"]


def test_refuses_foreign_output_folder_and_bad_arguments(tmp_path: Path, small_conf: PipelineConfig) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CatalogOutputError, match="not empty"):
        generate_catalog(tmp_path, small_conf, n=5, seed=1)
    with pytest.raises(CatalogGenError, match="at least 1"):
        generate_catalog(tmp_path / "x", small_conf, n=0)
    bad_size = dataclasses.replace(small_conf, catalog=dataclasses.replace(small_conf.catalog, max_size=(64, 64)))
    with pytest.raises(CatalogGenError, match="min_size"):
        generate_catalog(tmp_path / "y", bad_size, n=5)


CUSTOM_TAXONOMY = """
[attributes.hemline]
classes = ["mini", "maxi"]

[attributes.fabric]
classes = ["cotton", "silk", "denim", "wool", "linen", "lace", "velvet_crush"]

[attributes.closure]
classes = ["zipper", "buttons"]
"""


def test_custom_taxonomy(tmp_path: Path, small_conf_path: Path) -> None:
    tax = tmp_path / "tax.toml"
    tax.write_text(CUSTOM_TAXONOMY, encoding="utf-8")
    conf = load_config(small_conf_path, tax)
    summary = generate_catalog(tmp_path / "cat", conf, n=120, seed=3)
    assert {k: v["render"] for k, v in summary["taxonomy"].items()} == {
        "hemline": "native",
        "fabric": "marker",
        "closure": "marker",
    }
    truth = _read(tmp_path / "cat", "truth.parquet")
    for attr in conf.taxonomy.attributes:
        assert set(truth[truth.attribute == attr.name].label) == set(attr.classes)
    titles = " ".join(_read(tmp_path / "cat", "catalog.parquet").title.dropna()).lower()
    assert any(w in titles for w in ("velvet crush", "velvet-crush", "velvetcrush"))
    assert "zipper" in titles
    batch = next(iter_title_batches(500, 1, conf.taxonomy, batch_size=500))
    assert "cotton" in " ".join(batch.column("title").to_pylist()).lower()


def test_marker_badges_encode_the_class() -> None:
    attrs = tuple((name, classes[0]) for name, classes in NATIVE_CLASSES.items())

    def task(cls: int) -> RenderTask:
        return RenderTask(
            index=5,
            parent=5,
            seed=1,
            product_type="DRESS",
            attrs=attrs,
            markers=((0, cls),),
            colour=3,
            min_size=(120, 160),
            max_size=(120, 160),
        )

    a, b, c = (np.asarray(render(task(k))[0]) for k in (0, 0, 7))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cli_end_to_end(tmp_path: Path, small_conf_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    rc = main(
        [
            "make-catalog",
            "--conf",
            str(small_conf_path),
            "--out",
            str(out),
            "--n",
            "30",
            "--seed",
            "3",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "catalog.parquet" in printed
    assert pq.read_table(out / "catalog.parquet").num_rows >= 30
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    rc = main(["make-catalog", "--conf", str(small_conf_path), "--out", str(tmp_path / "busy"), "--n", "3"])
    assert rc == 2
    assert "not empty" in capsys.readouterr().err


def test_titles_only_path(tmp_path: Path, small_conf: PipelineConfig) -> None:
    n = 61_000  # crosses an internal chunk boundary
    batches = list(iter_title_batches(n, 5, small_conf.taxonomy, batch_size=25_000))
    assert [b.num_rows for b in batches] == [25_000, 25_000, 11_000]
    assert all(b.schema.equals(TITLE_SCHEMA) for b in batches)
    table = pa.Table.from_batches(batches)
    other = pa.Table.from_batches(list(iter_title_batches(n, 5, small_conf.taxonomy, batch_size=7_000)))
    assert table.equals(other)  # rows do not depend on the batch size
    asins = table.column("asin").to_pylist()
    assert len(set(asins)) == n and all(ASIN_RE.match(a) for a in asins[:1000])
    assert all(u.startswith("s3://") for u in table.column("image_uri").to_pylist()[:1000])
    assert set(table.column("product_type").to_pylist()) == {"DRESS", "SKIRT", "SHIRT"}
    path = tmp_path / "titles.parquet"
    assert write_titles_parquet(path, 3_000, 5, small_conf.taxonomy) == 3_000
    written = pq.read_table(path)
    assert written.schema.equals(TITLE_SCHEMA)
    assert written.equals(table.slice(0, 3_000))
