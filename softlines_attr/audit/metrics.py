"""The audit's numbers per attribute and class, from the matched tag rows.

For a tagged class ``c`` of an attribute (the human tag is the truth):

* ``tags``: rows tagged ``c``; ``received``: of them, rows whose scored ``value`` is not null (the index received a
  value); ``abstained`` = tags - received;
* ``accuracy_received`` = rows whose value is ``c`` / ``received``: the accuracy of the values the index received;
* ``accuracy_if_all`` = rows whose best (top-1) class is ``c`` / ``tags``: the accuracy had the abstained rows been
  given their best class (the paper's multi-class accuracy, Table 4's production column);
* ``coverage`` = received / tags;
* ``predicted_received`` / ``precision_received``: rows whose received value is ``c``, and the share of them tagged
  ``c``.

An attribute's figures are the same over all its rows; ``confusion`` counts (tagged class, best class) pairs,
rows in the taxonomy's class order. The counting is Spark aggregations (:func:`audit_counts`); the rest is arithmetic
on a few hundred numbers (:func:`attribute_audit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from softlines_attr.config import Attribute, Taxonomy

log = logging.getLogger(__name__)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class ClassAudit:
    """One tagged class's figures (see the module docstring)."""

    name: str
    tags: int
    received: int
    abstained: int
    correct_received: int
    correct_best: int
    accuracy_received: float | None
    accuracy_if_all: float | None
    coverage: float | None
    predicted_received: int
    precision_received: float | None


@dataclass(frozen=True)
class AttributeAudit:
    """One attribute's figures: totals, per class, the confusion matrix (tagged class x best class)."""

    attribute: str
    classes: tuple[str, ...]
    tags: int
    received: int
    correct_received: int
    correct_best: int
    accuracy_received: float | None
    accuracy_if_all: float | None
    coverage: float | None
    average_per_class_accuracy_if_all: float | None
    per_class: tuple[ClassAudit, ...]
    confusion: np.ndarray
    model_versions: dict[str, int]


@dataclass(frozen=True)
class AuditCounts:
    """What the Spark aggregations return, keyed by (attribute, class) or (attribute, class, class)."""

    by_class: dict[tuple[str, str], tuple[int, int, int, int]]  # tags, received, correct_received, correct_best
    predicted: dict[tuple[str, str], int]  # received values per (attribute, value)
    confusion: dict[tuple[str, str, str], int]  # (attribute, tagged class, best class) -> rows
    model_versions: dict[tuple[str, str], int]  # (attribute, model_version) -> rows


def audit_counts(matched: DataFrame) -> AuditCounts:
    """Count the matched rows (``attribute``, ``label``, ``value``, ``best``, ``model_version``) with Spark."""
    hit = F.when(F.col("value") == F.col("label"), 1).otherwise(0)
    best_hit = F.when(F.col("best") == F.col("label"), 1).otherwise(0)
    by_class = matched.groupBy("attribute", "label").agg(
        F.count(F.lit(1)).alias("tags"),
        F.count("value").alias("received"),
        F.sum(hit).alias("correct_received"),
        F.sum(best_hit).alias("correct_best"),
    )
    predicted = matched.filter(F.col("value").isNotNull()).groupBy("attribute", "value").count()
    confusion = matched.groupBy("attribute", "label", "best").count()
    versions = matched.groupBy("attribute", "model_version").count()
    return AuditCounts(
        by_class={
            (r["attribute"], r["label"]): (r["tags"], r["received"], r["correct_received"], r["correct_best"])
            for r in by_class.collect()
        },
        predicted={(r["attribute"], r["value"]): r["count"] for r in predicted.collect()},
        confusion={(r["attribute"], r["label"], r["best"]): r["count"] for r in confusion.collect()},
        model_versions={(r["attribute"], r["model_version"]): r["count"] for r in versions.collect()},
    )


def attribute_audit(attribute: Attribute, counts: AuditCounts) -> AttributeAudit:
    """One attribute's figures from the counts (classes in taxonomy order; a class without tags has zeros)."""
    name = attribute.name
    rows = []
    for cls in attribute.classes:
        tags, received, correct_received, correct_best = counts.by_class.get((name, cls), (0, 0, 0, 0))
        predicted = counts.predicted.get((name, cls), 0)
        rows.append(
            ClassAudit(
                name=cls,
                tags=tags,
                received=received,
                abstained=tags - received,
                correct_received=correct_received,
                correct_best=correct_best,
                accuracy_received=_ratio(correct_received, received),
                accuracy_if_all=_ratio(correct_best, tags),
                coverage=_ratio(received, tags),
                predicted_received=predicted,
                precision_received=_ratio(correct_received, predicted),
            )
        )
    index = {c: i for i, c in enumerate(attribute.classes)}
    confusion = np.zeros((len(index), len(index)), dtype=np.int64)
    for (attr, true, best), n in counts.confusion.items():
        if attr == name and true in index and best in index:  # a best class outside the taxonomy: not in the matrix
            confusion[index[true], index[best]] += n
    tags = sum(r.tags for r in rows)
    received = sum(r.received for r in rows)
    correct_received = sum(r.correct_received for r in rows)
    correct_best = sum(r.correct_best for r in rows)
    supported = [r.accuracy_if_all for r in rows if r.accuracy_if_all is not None]
    return AttributeAudit(
        attribute=name,
        classes=tuple(attribute.classes),
        tags=tags,
        received=received,
        correct_received=correct_received,
        correct_best=correct_best,
        accuracy_received=_ratio(correct_received, received),
        accuracy_if_all=_ratio(correct_best, tags),
        coverage=_ratio(received, tags),
        average_per_class_accuracy_if_all=sum(supported) / len(supported) if supported else None,
        per_class=tuple(rows),
        confusion=confusion,
        model_versions={v: n for (attr, v), n in sorted(counts.model_versions.items()) if attr == name},
    )


def audit_attributes(matched: DataFrame, taxonomy: Taxonomy) -> list[AttributeAudit]:
    """Every taxonomy attribute with at least one matched tag, in taxonomy order."""
    counts = audit_counts(matched)
    present = {attribute for attribute, _ in counts.by_class}
    return [attribute_audit(a, counts) for a in taxonomy.attributes if a.name in present]
