"""The readable evaluation report: Markdown and HTML, with the pictures of :mod:`~softlines_attr.model.report_png`.

Per head: the headline figures (accuracy, average per-class accuracy, top-k, the abstain
threshold), the per-class table (the paper's Table 5), the confusion matrix as a PNG heatmap drawn
with Pillow (rows normalised: each cell's shade is the share of the true class predicted as the
column's class; the count is written in the cell) and as a table, and the precision/coverage table
at every 0.05 of confidence plus the chosen threshold, with a chart of the whole curve (PNG).
``report.md`` links the PNG files written beside it; ``report.html`` is self-contained (the PNGs
embedded as base64) and also shades the cells of its confusion tables.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from softlines_attr.model.evaluation import Evaluation, HeadEvaluation, write_text_atomic
from softlines_attr.model.report_png import (
    confusion_png,
    confusion_png_name,
    curve_png,
    curve_png_name,
    hex_colour,
    row_shares,
    shade,
)
from softlines_attr.model.thresholds import CurvePoint

log = logging.getLogger(__name__)

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
REPORT_STEP = 0.05


# --------------------------------------------------------------------------------------------
# Small formatting helpers
# --------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    """A metric for a table cell: fixed decimals, or an en dash for a missing value."""
    return "–" if value is None else f"{value:.{digits}f}"


def report_points(curve: Sequence[CurvePoint], chosen: float | None, step: float = REPORT_STEP) -> list[CurvePoint]:
    """The curve's points at multiples of ``step``, plus the chosen threshold's point."""
    keep = []
    for p in curve:
        on_grid = abs(p.threshold / step - round(p.threshold / step)) < 1e-6
        if on_grid or (chosen is not None and abs(p.threshold - chosen) < 1e-9):
            keep.append(p)
    return keep


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "l") -> list[str]:
    """A Markdown table's lines (first column left-aligned, the rest right-aligned; ``align="r"``: all right)."""
    sep = [":--" if i == 0 else "--:" for i in range(len(header))] if align == "l" else ["--:"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def abstain_sentence(h: HeadEvaluation) -> str:
    """One sentence on the abstain threshold, saying plainly when the target is not reached."""
    a = h.abstain
    if a.reached:
        return (
            f"Abstain threshold **{fmt(a.threshold, 2)}** reaches precision {fmt(a.precision)} "
            f"(target {fmt(a.target_precision, 2)}) at coverage {fmt(a.coverage)}."
        )
    return (
        f"**No threshold reaches the target precision {fmt(a.target_precision, 2)}** "
        f"(best precision at any threshold: {fmt(a.best_precision)}); threshold: none "
        f"(written to a manifest as 1.0 with `eval.{h.head}.target_reached = 0`)."
    )


def headline_rows(h: HeadEvaluation) -> list[tuple[str, str]]:
    """The head's summary figures as (name, value) pairs."""
    rows = [
        ("records", str(h.records) + (f" ({h.skipped} without a tag skipped)" if h.skipped else "")),
        ("multi-class accuracy", fmt(h.accuracy)),
        (
            "average per-class accuracy",
            f"{fmt(h.average_per_class_accuracy)} (over {h.classes_with_support} of {len(h.classes)} classes)",
        ),
    ]
    rows += [(f"top-{k} accuracy", fmt(v)) for k, v in h.top_k.items()]
    rows.append(("abstain threshold", fmt(h.abstain.threshold, 2) if h.abstain.reached else "none reaches the target"))
    return rows


def head_markdown(h: HeadEvaluation) -> list[str]:
    """The Markdown section of one head."""
    title = h.head if h.attribute in (None, h.head) else f"{h.head} ({h.attribute})"
    out = [f"## {title}", ""]
    out += md_table(["metric", "value"], headline_rows(h)) + [""]
    out += [abstain_sentence(h), "", "### Per-class accuracy", ""]
    out += md_table(
        ["class", "support", "correct", "accuracy (recall)", "predicted", "precision"],
        [
            [r.name, str(r.support), str(r.correct), fmt(r.accuracy), str(r.predicted), fmt(r.precision)]
            for r in h.per_class
        ],
    ) + [""]
    out += ["### Confusion matrix", "", f"![confusion matrix of {h.head}]({confusion_png_name(h.head)})", ""]
    out += md_table(
        ["true \\ predicted", *h.classes],
        [[name, *(str(int(v)) for v in h.confusion[i])] for i, name in enumerate(h.classes)],
    ) + [""]
    out += [
        "### Precision and coverage by confidence threshold",
        "",
        f"![precision and coverage of {h.head}]({curve_png_name(h.head)})",
        "",
    ]
    points = report_points(h.curve, h.abstain.threshold)
    out += md_table(
        ["threshold", "kept", "coverage", "precision"],
        [
            [
                fmt(p.threshold, 2)
                + (" ←" if h.abstain.reached and abs(p.threshold - (h.abstain.threshold or 0)) < 1e-9 else ""),
                str(p.kept),
                fmt(p.coverage),
                fmt(p.precision),
            ]
            for p in points
        ],
    ) + [""]
    return out


def render_markdown(ev: Evaluation) -> str:
    """The whole report as Markdown (pictures referenced by file name)."""
    out = [
        "# Model evaluation",
        "",
        f"- model: `{ev.model}` (model.params sha256 `{ev.params_sha256[:16]}…`)",
        f"- shards: `{ev.shards}` ({ev.mode}), split `{ev.split}`, {ev.records} records",
        f"- evaluated at {ev.evaluated_at}",
        "",
    ]
    if len(ev.heads) > 1:
        out += md_table(
            ["head", "records", "accuracy", "avg per-class acc.", "top-2", "abstain threshold", "coverage"],
            [
                [
                    h.head,
                    str(h.records),
                    fmt(h.accuracy),
                    fmt(h.average_per_class_accuracy),
                    fmt(h.top_k.get(2)),
                    fmt(h.abstain.threshold, 2) if h.abstain.reached else "not reached",
                    fmt(h.abstain.coverage),
                ]
                for h in ev.heads
            ],
        ) + [""]
    for h in ev.heads:
        out += head_markdown(h)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


REPORT_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.cm { min-width: 2.5em; text-align: center; }
.warn { color: #a40000; font-weight: bold; }
tr.chosen td { background: #fff3c4; }
"""


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], row_class: Sequence[str] | None = None) -> str:
    """An HTML table of escaped cells; ``row_class`` gives each row a CSS class (empty: none)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def confusion_html(h: HeadEvaluation) -> str:
    """The head's confusion matrix as an HTML table whose cells are shaded by their row share."""
    return confusion_table_html(h.confusion, h.classes)


def confusion_table_html(confusion: np.ndarray, classes: Sequence[str]) -> str:
    """A confusion matrix (rows true, columns predicted) as an HTML table whose cells are shaded by their row share."""
    shares = row_shares(confusion)
    head = "<th>true \\ predicted</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    rows = []
    for i, name in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            colour = "white" if shares[i, j] > 0.55 else "black"
            cells.append(
                f'<td class="cm" '
                f'style="background:{hex_colour(shade(shares[i, j]))};color:{colour}">{int(confusion[i, j])}</td>'
            )
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def img_tag(alt: str, png: bytes) -> str:
    """An ``<img>`` with the PNG embedded as base64 (empty for no PNG)."""
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        if png
        else ""
    )


def head_html(h: HeadEvaluation, png: bytes, curve: bytes = b"") -> str:
    """The HTML section of one head."""
    a = h.abstain
    sentence = html.escape(abstain_sentence(h).replace("**", "").replace("`", ""))
    points = report_points(h.curve, a.threshold)
    chosen = ["chosen" if a.reached and abs(p.threshold - (a.threshold or 0)) < 1e-9 else "" for p in points]
    parts = [
        f"<h2>{html.escape(h.head)}</h2>",
        html_table(["metric", "value"], headline_rows(h)),
        f'<p class="{"" if a.reached else "warn"}">{sentence}</p>',
        "<h3>Per-class accuracy</h3>",
        html_table(
            ["class", "support", "correct", "accuracy (recall)", "predicted", "precision"],
            [
                [r.name, str(r.support), str(r.correct), fmt(r.accuracy), str(r.predicted), fmt(r.precision)]
                for r in h.per_class
            ],
        ),
        "<h3>Confusion matrix</h3>",
        img_tag(f"confusion matrix of {h.head}", png),
        confusion_html(h),
        "<h3>Precision and coverage by confidence threshold</h3>",
        img_tag(f"precision and coverage of {h.head}", curve),
        html_table(
            ["threshold", "kept", "coverage", "precision"],
            [[fmt(p.threshold, 2), str(p.kept), fmt(p.coverage), fmt(p.precision)] for p in points],
            chosen,
        ),
    ]
    return "\n".join(parts)


def render_html(ev: Evaluation, pngs: dict[str, bytes], curves: dict[str, bytes] | None = None) -> str:
    """The whole report as one self-contained HTML page (``pngs``: confusion pictures, ``curves``: charts, by head)."""
    intro = (
        f"<p>model <code>{html.escape(ev.model)}</code> (model.params sha256 <code>{ev.params_sha256[:16]}…</code>)<br>"
        f"shards <code>{html.escape(ev.shards)}</code> ({html.escape(ev.mode)}), split "
        f"<code>{html.escape(ev.split)}</code>, "
        f"{ev.records} records<br>evaluated at {html.escape(ev.evaluated_at)}</p>"
    )
    body = "\n".join(head_html(h, pngs.get(h.head, b""), (curves or {}).get(h.head, b"")) for h in ev.heads)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Model evaluation</title>'
        f"<style>{REPORT_CSS}</style></head><body>\n<h1>Model evaluation</h1>\n{intro}\n{body}\n</body></html>\n"
    )


def write_report(ev: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.html`` and one ``confusion_<head>.png`` per head into ``out_dir``.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = {
        h.head: confusion_png(h.confusion, h.classes, title=f"{h.head}: confusion matrix ({h.records} images)")
        for h in ev.heads
    }
    curves = {h.head: curve_png(h) for h in ev.heads}
    written = []
    for head in pngs:
        for path, data in ((out / confusion_png_name(head), pngs[head]), (out / curve_png_name(head), curves[head])):
            path.write_bytes(data)
            written.append(path)
    write_text_atomic(out / MARKDOWN_FILE, render_markdown(ev))
    write_text_atomic(out / HTML_FILE, render_html(ev, pngs, curves))
    written += [out / MARKDOWN_FILE, out / HTML_FILE]
    log.info("wrote the evaluation report to %s", out)
    return written
