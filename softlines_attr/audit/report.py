"""The audit as ``audit.json``, ``report.md`` and a self-contained ``report.html`` (the evaluate report's style:
:mod:`softlines_attr.model.report`).

The first table is the paper's Table 4 for production: per attribute the accuracy of the values the index received,
the accuracy had the abstained rows been given their best class, and the coverage; then per attribute the per-class
table and the confusion matrix (tagged class x best class) as a shaded table and a PNG heatmap.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from typing import Any

from softlines_attr.audit.metrics import AttributeAudit
from softlines_attr.model.report import REPORT_CSS, confusion_table_html, fmt, html_table, img_tag, md_table
from softlines_attr.model.report_png import confusion_png

AUDIT_FORMAT = 1
AUDIT_FILE = "audit.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"

_TABLE4 = ["attribute", "tags", "received", "accuracy received", "accuracy if all", "coverage", "avg per-class (all)"]
_CLASS_HEADER = [
    "tagged class",
    "tags",
    "received",
    "abstained",
    "accuracy received",
    "accuracy if all",
    "coverage",
    "values received",
    "precision received",
]


def attribute_to_json(a: AttributeAudit) -> dict[str, Any]:
    """One attribute's audit as JSON-ready values."""
    fields = {k: v for k, v in dataclasses.asdict(a).items() if k not in ("per_class", "confusion", "classes")}
    return {
        **fields,
        "classes": list(a.classes),
        "per_class": [dataclasses.asdict(r) for r in a.per_class],
        "confusion_matrix": {"rows": "tagged class", "columns": "best class", "counts": a.confusion.tolist()},
    }


def audit_to_json(audits: Sequence[AttributeAudit], facts: dict[str, Any]) -> dict[str, Any]:
    """The whole audit (``audit.json``): ``facts`` (inputs, run, tag accounting) and every attribute."""
    return {"format_version": AUDIT_FORMAT, **facts, "attributes": {a.attribute: attribute_to_json(a) for a in audits}}


def _table4_rows(audits: Sequence[AttributeAudit]) -> list[list[str]]:
    return [
        [
            a.attribute,
            str(a.tags),
            str(a.received),
            fmt(a.accuracy_received),
            fmt(a.accuracy_if_all),
            fmt(a.coverage),
            fmt(a.average_per_class_accuracy_if_all),
        ]
        for a in audits
    ]


def _class_rows(a: AttributeAudit) -> list[list[str]]:
    return [
        [
            r.name,
            str(r.tags),
            str(r.received),
            str(r.abstained),
            fmt(r.accuracy_received),
            fmt(r.accuracy_if_all),
            fmt(r.coverage),
            str(r.predicted_received),
            fmt(r.precision_received),
        ]
        for r in a.per_class
    ]


def _facts_lines(facts: dict[str, Any]) -> list[str]:
    rejects = ", ".join(f"{k} {v}" for k, v in facts["rejects_by_reason"].items() if v) or "none"
    return [
        f"scores: {facts['scores']['out']} (run {facts['scores']['run_id']})",
        f"tags: {facts['tags']}" + (f", tagged on or after {facts['since']}" if facts.get("since") else ""),
        f"tag rows {facts['tag_rows_in']} = matched {facts['tag_rows_matched']} + rejected "
        f"{facts['tag_rows_rejected']} ({rejects})",
    ]


def render_markdown(audits: Sequence[AttributeAudit], facts: dict[str, Any]) -> str:
    """The audit as Markdown."""
    out = ["# Production audit", "", *(f"- {line}" for line in _facts_lines(facts)), ""]
    out += md_table(_TABLE4, _table4_rows(audits)) + [""]
    for a in audits:
        out += [
            f"## {a.attribute}",
            "",
            "model versions: " + ", ".join(f"`{v}` ({n})" for v, n in a.model_versions.items()),
            "",
        ]
        out += md_table(_CLASS_HEADER, _class_rows(a)) + [""]
        out += md_table(
            ["tagged \\ best", *a.classes],
            [[name, *(str(int(v)) for v in a.confusion[i])] for i, name in enumerate(a.classes)],
        ) + [""]
    return "\n".join(out)


def render_html(audits: Sequence[AttributeAudit], facts: dict[str, Any]) -> str:
    """The audit as one self-contained HTML page (confusion heatmaps embedded as PNG)."""
    parts = [
        "<h1>Production audit</h1>",
        "<p>" + "<br>".join(html.escape(line) for line in _facts_lines(facts)) + "</p>",
        html_table(_TABLE4, _table4_rows(audits)),
    ]
    for a in audits:
        png = confusion_png(a.confusion, a.classes, title=f"{a.attribute}: tagged vs best class ({a.tags} tags)")
        parts += [
            f"<h2>{html.escape(a.attribute)}</h2>",
            "<p>model versions: " + html.escape(", ".join(f"{v} ({n})" for v, n in a.model_versions.items())) + "</p>",
            html_table(_CLASS_HEADER, _class_rows(a)),
            "<h3>Confusion matrix (tagged class x best class)</h3>",
            img_tag(f"confusion matrix of {a.attribute}", png),
            confusion_table_html(a.confusion, a.classes),
        ]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Production audit</title>'
        f"<style>{REPORT_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )
