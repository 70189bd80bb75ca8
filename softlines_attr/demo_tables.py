"""The demo's text: the paper's Table 3 from the stage summaries, and the per-stage report it prints.

:func:`table3` turns the evaluations (and, with ``--single-models``, the per-attribute models'
training metrics) into one row per attribute; :func:`format_report` is what ``softlines-attr demo``
prints; :func:`refined_vs_scratch` is its last line. ``demo_report.py`` draws the HTML report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softlines_attr.demo import DemoResult

MULTI = "multi"  # the multi shards and multi-head models


def base_quality(metrics: dict[str, Any]) -> str:
    """The base model's val mAP beside the mAP of predicting every word's frequency (the priors)."""
    if "val_map" not in metrics:
        return "n/a"
    prior = metrics.get("val_prior_map")
    text = f"mAP {metrics['val_map']:.3f}"
    if prior:
        text += f" (priors alone {prior:.3f}: {metrics['val_map'] / prior:.1f}x)"
    if "val_distinct_top1" in metrics:
        text += f", {int(metrics['val_distinct_top1'])} distinct top-1 words"
    return text


def table3(stages: dict[str, dict[str, Any]], classes: dict[str, int]) -> dict[str, dict[str, float | None]]:
    """The paper's Table 3 per attribute, from the demo's evaluations (and the single models' training metrics).

    Args:
        stages: The demo's stage summaries: ``evaluate multi-base``, ``evaluate multi-scratch``,
            ``evaluate multi-base-int8`` and, with ``--single-models``, ``train <attribute>-base`` /
            ``train <attribute>-scratch``.
        classes: Class count per attribute, in table order.

    Returns:
        attribute -> ``chance`` (1 / classes), ``base_acc`` / ``base_class_acc`` (multi-class and
        average per-class accuracy of the multi-head model refined from the base), ``scratch_acc`` /
        ``scratch_class_acc`` (the same network from scratch), ``int8_acc`` / ``int8_class_acc`` (the
        INT8 copy of the refined one), ``val_records``; and ``single_base_acc``, ``single_base_class_acc``,
        ``single_scratch_acc``, ``single_scratch_class_acc`` where the single models ran. None where missing.
    """
    evals = {
        kind: stages.get(f"evaluate {MULTI}-{kind}", {}).get("heads", {}) for kind in ("base", "scratch", "base-int8")
    }
    rows: dict[str, dict[str, float | None]] = {}
    for attr, n_classes in classes.items():
        row: dict[str, float | None] = {"chance": 1.0 / n_classes}
        for kind, key in (("base", "base"), ("scratch", "scratch"), ("base-int8", "int8")):
            head = evals[kind].get(attr, {})
            row[f"{key}_acc"] = head.get("accuracy")
            row[f"{key}_class_acc"] = head.get("average_per_class_accuracy")
        row["val_records"] = evals["base"].get(attr, {}).get("records")
        for kind in ("base", "scratch"):
            metrics = stages.get(f"train {attr}-{kind}", {}).get("metrics")
            if metrics is not None:
                row[f"single_{kind}_acc"] = metrics.get("val_accuracy")
                row[f"single_{kind}_class_acc"] = metrics.get("val_mean_class_accuracy")
        rows[attr] = row
    return rows


def format_table3(rows: dict[str, dict[str, float | None]]) -> list[str]:
    """Table 3 as text lines: multi-class accuracy / average per-class accuracy on the val split."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:5.1f}%"

    single = any("single_base_acc" in r for r in rows.values())
    header = (
        f"  {'attribute':<13} {'chance':>7}  {'refined from base':>17}  {'from scratch':>15}  {'int8 (refined)':>15}"
    )
    if single:
        header += f"  {'single, from base':>17}  {'single, scratch':>15}"
    lines = [
        "  Table 3 (val split, held-out generated images): multi-class accuracy / average per-class accuracy;",
        "  the multi-head model (one backbone, a head per attribute)"
        + (" and the per-attribute models" if single else ""),
        header,
    ]
    for attr, r in rows.items():
        line = (
            f"  {attr:<13} {pct(r.get('chance')):>7}  {pct(r['base_acc'])} / {pct(r['base_class_acc'])}  "
            f"{pct(r['scratch_acc'])} / {pct(r['scratch_class_acc'])}"
            f"  {pct(r.get('int8_acc'))} / {pct(r.get('int8_class_acc'))}"
        )
        if single:
            line += (
                f"  {pct(r.get('single_base_acc'))} / {pct(r.get('single_base_class_acc'))}  "
                f"{pct(r.get('single_scratch_acc'))} / {pct(r.get('single_scratch_class_acc'))}"
            )
        lines.append(line)
    return lines


def format_report(result: DemoResult) -> str:
    """A short, human summary of a demo run: one line per stage with its counts and where it wrote."""
    lines = [f"demo outputs under {result.out_dir}"]
    for name, summary in result.stages.items():
        secs = result.seconds[name]
        head = f"  {name:<26} {secs:6.1f}s  "
        if name == "make-catalog":
            lines.append(f"{head}{summary.get('rows', summary.get('n'))} products -> {result.out_dir / 'catalog'}")
        elif name.startswith("train "):
            m = summary["metrics"]
            if "val_map" in m:
                score = f"val {base_quality(m)}, precision@1 {m['val_precision_at_1']:.3f}"
            else:
                score = (
                    f"val accuracy {m.get('val_accuracy', 0):.3f}, per-class {m.get('val_mean_class_accuracy', 0):.3f}"
                )
            lines.append(f"{head}{score} -> {summary['bundle']}")
        elif name.startswith("evaluate "):
            acc = sum(h["accuracy"] for h in summary["heads"].values()) / max(1, len(summary["heads"]))
            lines.append(
                f"{head}mean accuracy {acc:.3f} over {len(summary['heads'])} heads, {summary['records']} val "
                f"images -> {summary['out']}"
            )
        elif name == "quantize":
            lines.append(f"{head}INT8, {summary['calibration']['examples']} calibration images -> {summary['bundle']}")
        elif name == "score":
            lines.append(
                f"{head}rows in {summary['rows_in']} = scored {summary['rows_scored']} + errors "
                f"{summary['rows_errors']} + skipped "
                f"{summary['rows_skipped']}; {summary['attribute_rows']} attribute rows "
                f"({summary['attribute_rows_abstained']} abstained) -> {summary['out']}"
            )
        elif name == "report":
            lines.append(f"{head}{summary['images']} scored images and the tables -> {summary['out']}")
        elif name == "select tags":
            lines.append(
                f"{head}human tags of {summary['products_tagged']} of {summary['products_in']} dresses "
                f"({summary['rows_kept']} tag rows) -> {summary['out']}"
            )
        elif name == "labels":
            lines.append(
                f"{head}rows in {summary['rows_in']} = labelled {summary['rows_labelled']} + rejected "
                f"{summary['rows_rejected']}; vocabulary words {summary['vocabulary_words']} -> {summary['out']}"
            )
        else:
            lines.append(
                f"{head}rows in {summary['rows_in']} = records {summary['records_written']} + rejected "
                f"{summary['rows_rejected']} in {summary['shards']} shards -> {summary['out']}"
            )
    if result.table3:
        lines.extend(format_table3(result.table3))
        verdict = refined_vs_scratch(result.table3)
        if verdict:
            lines.append(verdict)
    return "\n".join(lines)


def mean_accuracies(rows: dict[str, dict[str, float | None]]) -> tuple[float | None, float | None]:
    """Mean over the attributes of the refined-from-base and the from-scratch accuracy (None if any is missing)."""
    base = [r.get("base_acc") for r in rows.values()]
    scratch = [r.get("scratch_acc") for r in rows.values()]
    if not rows or any(v is None for v in base + scratch):
        return None, None
    # None values were ruled out just above
    return sum(base) / len(base), sum(scratch) / len(scratch)  # type: ignore[arg-type]


def refined_vs_scratch(rows: dict[str, dict[str, float | None]]) -> str | None:
    """The demo's last line: did refining from the base beat the same network from scratch, by how many points."""
    base, scratch = mean_accuracies(rows)
    if base is None or scratch is None:
        return None
    diff = 100 * (base - scratch)
    if diff > 0:
        verdict = f"refined from the base BEAT from scratch by {diff:.1f} points"
    elif diff < 0:
        verdict = f"refined from the base did NOT beat from scratch: {-diff:.1f} points behind"
    else:
        verdict = "refined from the base did NOT beat from scratch: a tie"
    return (
        f"  {verdict} of mean accuracy over {len(rows)} attributes (val split): {100 * base:.1f}% vs "
        f"{100 * scratch:.1f}%"
    )
