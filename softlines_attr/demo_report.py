"""The demo's HTML report: a grid of scored images with their predicted attributes, and the accuracy tables.

One self-contained file (thumbnails embedded as base64 JPEG, no scripts, no external assets) that
a reader opens in a browser after ``make demo``. The grid is a sample of the scoring job's
``attributes`` table joined with the catalog's images and, for the generated catalog, the drawn
(true) classes, so each prediction shows whether it was right.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from PIL import Image

log = logging.getLogger(__name__)

THUMB_SIDE = 160


@dataclass(frozen=True)
class Prediction:
    """One attribute of one scored image: ``value`` is None where the model abstained; ``top`` is its best class
    anyway."""

    attribute: str
    value: str | None
    confidence: float
    truth: str | None = None
    top: str | None = None


@dataclass(frozen=True)
class ScoredImage:
    """A catalog image with its predictions (one per scored attribute)."""

    asin: str
    image_uri: str
    predictions: tuple[Prediction, ...]


@dataclass(frozen=True)
class Table:
    """A titled table: column headers and rows of already formatted cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass
class ReportInputs:
    """Everything the report shows."""

    title: str
    scored: list[ScoredImage] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)


def sample_scored(
    attributes_dir: str | Path, catalog_path: str | Path, *, truth_path: str | Path | None = None, n: int = 24
) -> list[ScoredImage]:
    """The first ``n`` ASINs (in ASIN order) of a scoring run, with their images and true classes.

    Reads only the sampled ASINs' rows (a filter pushed into the Parquet scan), so it stays cheap on
    a large run's local output.

    Args:
        attributes_dir: The scoring job's ``attributes`` table (Parquet, partitioned by attribute).
        catalog_path: The catalog Parquet (asin, image_uri).
        truth_path: The generated catalog's ``truth.parquet`` (asin, attribute, label), if any.
        n: How many images.

    Returns:
        The sampled images, in ASIN order.
    """
    dataset = ds.dataset(str(attributes_dir), format="parquet", partitioning="hive")
    asins = sorted(set(dataset.to_table(columns=["asin"]).column("asin").to_pylist()))[:n]
    if not asins:
        return []
    wanted = pc.field("asin").isin(asins)
    columns = ["asin", "attribute", "value", "confidence"] + (["top_k"] if "top_k" in dataset.schema.names else [])
    rows = dataset.to_table(columns=columns, filter=wanted).to_pylist()
    catalog = pq.read_table(
        str(catalog_path), columns=["asin", "image_uri"], filters=[("asin", "in", asins)]
    ).to_pylist()
    uris = {r["asin"]: r["image_uri"] for r in catalog}
    truth: dict[tuple[str, str], str] = {}
    if truth_path is not None and Path(truth_path).exists():
        for r in pq.read_table(str(truth_path), filters=[("asin", "in", asins)]).to_pylist():
            truth[(r["asin"], r["attribute"])] = r["label"]
    by_asin: dict[str, list[Prediction]] = {a: [] for a in asins}
    for r in rows:
        top = (r.get("top_k") or [{}])[0].get("value")
        by_asin[r["asin"]].append(
            Prediction(r["attribute"], r["value"], float(r["confidence"]), truth.get((r["asin"], r["attribute"])), top)
        )
    return [
        ScoredImage(a, uris.get(a, ""), tuple(sorted(preds, key=lambda p: p.attribute))) for a, preds in by_asin.items()
    ]


def _thumbnail(uri: str) -> str | None:
    """A base64 JPEG thumbnail of a local image, or None when it cannot be read."""
    try:
        with Image.open(uri) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMB_SIDE, THUMB_SIDE * 4 // 3))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=80)
    except (OSError, ValueError) as exc:
        log.warning("report: no thumbnail for %s: %s", uri, exc)
        return None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _card(item: ScoredImage) -> str:
    thumb = _thumbnail(item.image_uri) if item.image_uri else None
    img = (
        f'<img alt="{html.escape(item.asin)}" src="data:image/jpeg;base64,{thumb}">'
        if thumb
        else '<div class="noimg">no image</div>'
    )
    lines = []
    for p in item.predictions:
        if p.value is not None:
            shown = html.escape(p.value)
        else:
            shown = "<i>abstain</i>" + (f" <small>(best: {html.escape(p.top)})</small>" if p.top else "")
        mark = ""
        if p.truth is not None:
            right = p.value == p.truth
            mark = f' <span class="{"ok" if right else "bad"}">{"✓" if right else "✗ " + html.escape(p.truth)}</span>'
        lines.append(f"<li><b>{html.escape(p.attribute)}</b>: {shown} <small>{p.confidence:.2f}</small>{mark}</li>")
    return f"<figure>{img}<figcaption>{html.escape(item.asin)}<ul>{''.join(lines)}</ul></figcaption></figure>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    note = f"<p class=note>{html.escape(t.note)}</p>" if t.note else ""
    return f"<h2>{html.escape(t.title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:200px;border:1px solid #ddd;padding:6px;font-size:12px}
figure img{display:block;margin:auto;max-width:190px}
ul{padding-left:1.1em;margin:.3em 0}.ok{color:#080}.bad{color:#b00}.note{color:#555;font-size:13px}
.noimg{height:120px;background:#eee;text-align:center;line-height:120px}
"""


def render_report(inputs: ReportInputs) -> str:
    """The report as one HTML document."""
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in inputs.facts)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(inputs.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(inputs.title)}</h1>",
        f"<table>{facts}</table>" if facts else "",
        *(_table(t) for t in inputs.tables),
        f"<h2>Scored images ({len(inputs.scored)})</h2>",
        "<p class=note>value and confidence per attribute; ✓/✗ against the class the generator drew; "
        "<i>abstain</i> where the confidence is under the model's abstain threshold (the threshold that "
        "reaches the target precision on the val split; 1.0 where no threshold does), with the best class anyway.</p>",
        '<div class="grid">',
        *(_card(s) for s in inputs.scored),
        "</div></body></html>",
    ]
    return "\n".join(parts)


def write_report(path: str | Path, inputs: ReportInputs) -> Path:
    """Write the report to ``path`` (via a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(inputs), encoding="utf-8")
    tmp.replace(path)
    return path


def format_cells(values: Sequence[float | None], digits: int = 3) -> tuple[str, ...]:
    """Numbers as table cells (``-`` for a missing one)."""
    return tuple("-" if v is None else f"{v:.{digits}f}" for v in values)
