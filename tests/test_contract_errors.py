"""Clear errors instead of tracebacks, and the smaller things a hostile user finds (issue 11), on real local Spark."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from softlines_attr.cli import main
from softlines_attr.errors import InputFormatError, InputSchemaError
from softlines_attr.images import ImageError, decode_image
from softlines_attr.labels.job import clean_catalog, run_label_job
from softlines_attr.score.errors import ScoreInputError
from softlines_attr.score.incremental import read_previous
from softlines_attr.score.inputs import read_catalog, tag_catalog

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _corrupt_parquet(path: Path) -> Path:
    path.write_bytes(b"PAR1" + os.urandom(64) + b"PAR1")
    return path


def test_corrupt_parquet_catalog_is_one_clear_error(spark, conf, tmp_path: Path) -> None:
    bad = _corrupt_parquet(tmp_path / "catalog.parquet")
    with pytest.raises(InputFormatError, match=r"catalog\.parquet: expected a readable Parquet table, found") as info:
        read_catalog(spark, str(bad))
    assert "\n" not in str(info.value) and len(str(info.value)) < 600
    with pytest.raises(InputFormatError, match="expected a readable Parquet table"):
        run_label_job(spark, conf, catalog_path=str(bad), out_dir=str(tmp_path / "out"))


def test_corrupt_parquet_catalog_exits_2_with_one_line(
    spark, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The command in-process, on the session's Spark (a command leaves a session it did not start running)."""
    bad = _corrupt_parquet(tmp_path / "catalog.parquet")
    code = main(["labels", "--catalog", str(bad), "--out", str(tmp_path / "out")])
    stderr = capfd.readouterr().err
    assert code == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("softlines-attr labels: error:")]
    assert (
        len(errors) == 1
        and errors[0].startswith("softlines-attr labels: error: input ")
        and "expected a readable Parquet table" in errors[0]
    )
    assert "Traceback" not in stderr


def test_wrong_typed_text_columns_are_refused_not_cast(spark, conf, tmp_path: Path) -> None:
    """An int64 title used to be cast and commit an empty vocabulary with exit 0; float asins became '0.0'."""
    ints = tmp_path / "int_title.parquet"
    pq.write_table(
        pa.table({"asin": ["A1", "A2"], "title": pa.array([1, 2], pa.int64()), "image_uri": ["/a.jpg", "/b.jpg"]}), ints
    )
    with pytest.raises(InputSchemaError, match=r"column 'title': expected string \(text\), found bigint"):
        run_label_job(spark, conf, catalog_path=str(ints), out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out" / "_current.json").exists()
    floats = tmp_path / "float_asin.parquet"
    pq.write_table(pa.table({"asin": pa.array([0.0, 1.5]), "image_uri": ["/a.jpg", "/b.jpg"]}), floats)
    with pytest.raises(InputSchemaError, match=r"column 'asin': expected string \(text\), found double"):
        read_catalog(spark, str(floats))
    nulls = tmp_path / "null_type.jsonl"
    nulls.write_text(
        json.dumps({"asin": "A1", "title": "red dress", "image_uri": "/a.jpg", "product_type": None}) + "\n"
    )
    assert read_catalog(spark, str(nulls)).count() == 1  # an all-null column is fine


def test_trailing_newline_in_a_uri_is_not_missing(spark) -> None:
    df = spark.createDataFrame(
        [("A1", " /img/a.jpg\n", "DRESS"), ("A2", "\t/img/b.jpg\r\n", "DRESS"), ("A3", "\n", "DRESS")],
        "asin string, image_uri string, product_type string",
    )
    rows = {r["asin"]: r for r in tag_catalog(df, ["DRESS"]).collect()}
    assert rows["A1"]["status"] == "candidate" and rows["A1"]["image_uri"] == "/img/a.jpg"
    assert rows["A2"]["image_uri"] == "/img/b.jpg"
    assert rows["A3"]["reason"] == "missing_image_uri"
    cat = spark.createDataFrame(
        [("A1 \n", None, "t", "/img/a.jpg\n", None)],
        "asin string, parent_asin string, title string, image_uri string, product_type string",
    )
    cleaned = clean_catalog(cat).first()
    assert cleaned["asin"] == "A1" and cleaned["image_uri"] == "/img/a.jpg" and cleaned["parent_asin"] == "A1"


def test_duplicate_asin_message_says_which_row_is_scored(spark) -> None:
    df = spark.createDataFrame(
        [("A1", "/z.jpg", "DRESS"), ("A1", "/a.jpg", "DRESS")], "asin string, image_uri string, product_type string"
    )
    rows = tag_catalog(df, ["DRESS"]).collect()
    kept = [r for r in rows if r["status"] == "candidate"]
    dup = [r for r in rows if r["reason"] == "duplicate_asin"]
    assert [r["image_uri"] for r in kept] == ["/a.jpg"] and [r["image_uri"] for r in dup] == ["/z.jpg"]
    assert "the first is scored" not in dup[0]["message"] and "smallest image_uri" in dup[0]["message"]


def test_reject_messages_are_capped(spark, conf, tmp_path: Path) -> None:
    """A 3 MB title of numbers only is a no_title_words reject whose message does not repeat the title."""
    huge = " ".join(["12345"] * 500_000)
    catalog = tmp_path / "catalog.parquet"
    rows = [{"asin": "BIG", "title": huge, "image_uri": "/a.jpg"}] + [
        {"asin": f"A{i}", "title": "red floral midi dress", "image_uri": f"/{i}.jpg"} for i in range(4)
    ]
    pq.write_table(pa.Table.from_pylist(rows), catalog)
    import dataclasses

    small = dataclasses.replace(conf, labels=dataclasses.replace(conf.labels, min_doc_freq=1, vocab_sizes=(0,)))
    run_label_job(spark, small, catalog_path=str(catalog), out_dir=str(tmp_path / "out"))
    from softlines_attr.io.commit import resolve_current

    rejects = pq.read_table(Path(resolve_current(str(tmp_path / "out"))) / "rejects").to_pylist()
    big = [r for r in rejects if r["asin"] == "BIG"]
    assert big and big[0]["reason"] == "no_title_words" and len(big[0]["message"]) <= 500


def test_previous_without_attributes_or_with_corrupt_files(spark, tmp_path: Path) -> None:
    from softlines_attr.score.schema import schema_version

    prev = tmp_path / "prev"
    prev.mkdir()
    (prev / "_summary.json").write_text(
        json.dumps({"job": "score", "run_id": "r1", "schema_version": schema_version()})
    )
    with pytest.raises(
        ScoreInputError, match=r"--previous .*table attributes: expected a Parquet folder at .*attributes, found none"
    ):
        read_previous(spark, str(prev))
    part = prev / "attributes" / "attribute=hemline"
    part.mkdir(parents=True)
    (part / "part-00000.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(
        ScoreInputError, match=r"expected readable Parquet files, found attribute=hemline/part-00000.parquet unreadable"
    ):
        read_previous(spark, str(prev))


def test_bomb_message_quotes_one_limit_and_unreadable_quotes_no_content(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "JPEG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own bomb error (past 2 x its limit) fires on open
    with pytest.raises(ImageError) as info:
        decode_image(buf.getvalue(), max_pixels=5000)
    message = str(info.value)
    assert (
        info.value.reason == "too_large"
        and message == "expected at most 5000 pixels, found 10000 pixels (read from the header)"
    )
    monkeypatch.undo()
    passwd = b"root:x:0:0:root:/root:/bin/bash\n"
    with pytest.raises(ImageError) as info:
        decode_image(passwd, max_pixels=1_000_000)
    assert (
        info.value.reason == "unreadable" and "root" not in str(info.value) and "text, not an image" in str(info.value)
    )
