"""The demo's HTML report: sampling a scoring run's attribute table, thumbnails, escaping."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from softlines_attr.demo_report import ReportInputs, Table, render_report, sample_scored, write_report


def _scoring_run(tmp: Path) -> tuple[Path, Path, Path]:
    images = tmp / "img"
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (300, 400), (40 * i, 100, 200)).save(images / f"a{i}.jpg")
    catalog = tmp / "catalog.parquet"
    pq.write_table(
        pa.table(
            {
                "asin": ["a0", "a1", "a2"],
                "image_uri": [str(images / f"a{i}.jpg") for i in range(2)] + [str(images / "gone.jpg")],
            }
        ),
        catalog,
    )
    truth = tmp / "truth.parquet"
    pq.write_table(
        pa.table(
            {
                "asin": ["a0", "a0", "a1"],
                "attribute": ["hemline", "pattern", "hemline"],
                "label": ["mini", "floral", "maxi"],
            }
        ),
        truth,
    )
    attributes = tmp / "attributes"
    rows = {
        "hemline": [("a2", "midi", 0.7), ("a0", "mini", 0.9), ("a1", None, 0.3)],
        "pattern": [("a0", "solid", 0.8), ("a1", "floral<script>", 0.6), ("a2", "solid", 0.99)],
    }
    for attr, values in rows.items():
        (attributes / f"attribute={attr}").mkdir(parents=True)
        top_k = [[{"value": v[1] or "maxi", "probability": v[2]}] for v in values]
        pq.write_table(
            pa.table(
                {
                    "asin": [v[0] for v in values],
                    "value": [v[1] for v in values],
                    "confidence": [v[2] for v in values],
                    "top_k": top_k,
                }
            ),
            attributes / f"attribute={attr}" / "part-0.parquet",
        )
    return attributes, catalog, truth


def test_sample_joins_predictions_images_and_truth(tmp_path: Path) -> None:
    attributes, catalog, truth = _scoring_run(tmp_path)
    sample = sample_scored(attributes, catalog, truth_path=truth, n=2)
    assert [s.asin for s in sample] == ["a0", "a1"]
    a0, a1 = sample
    assert [(p.attribute, p.value, p.truth) for p in a0.predictions] == [
        ("hemline", "mini", "mini"),
        ("pattern", "solid", "floral"),
    ]
    assert [(p.attribute, p.value, p.truth) for p in a1.predictions] == [
        ("hemline", None, "maxi"),
        ("pattern", "floral<script>", None),
    ]
    assert a1.predictions[0].top == "maxi"  # abstained, but its best class is known
    assert a0.image_uri.endswith("a0.jpg")


def test_report_embeds_thumbnails_marks_predictions_and_escapes(tmp_path: Path) -> None:
    attributes, catalog, truth = _scoring_run(tmp_path)
    inputs = ReportInputs(
        title="demo <run>",
        scored=sample_scored(attributes, catalog, truth_path=truth, n=10),
        tables=[Table("Accuracy", ("attribute", "accuracy"), (("hemline", "0.900"),), note="val split")],
        facts=[("run", "r1")],
    )
    out = write_report(tmp_path / "report" / "index.html", inputs)
    text = out.read_text()
    assert "<script>" not in text and "floral&lt;script&gt;" in text and "demo &lt;run&gt;" in text
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(thumbs) == 2  # a2's image is missing: a placeholder, not a broken page
    assert "no image" in text
    assert Image.open(io.BytesIO(base64.b64decode(thumbs[0]))).size == (160, 213)  # fits THUMB_SIDE wide, 4:3 tall
    assert (
        text.count('class="ok"') == 1 and text.count('class="bad"') == 2
    )  # a0 hemline right; a0 pattern, a1 hemline (abstain) wrong
    assert "<i>abstain</i> <small>(best: maxi)</small>" in text and "<td>0.900</td>" in text
    assert render_report(inputs) == text
