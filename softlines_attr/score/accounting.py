"""The scoring job's accounting: every catalog row scored, carried, in errors or skipped, and what was written agrees.

The attribute rows are counted where they are made, before they are written: for a full run in the same
Spark job as the scoring tasks' tally (:func:`attribute_counts` as aggregates of the tally), for an
incremental run over the scored and carried rows together. The written tables are then checked from
their Parquet footers (:mod:`softlines_attr.score.written`): their row counts must be the counted ones,
so a file too many or too few fails the run as a duplicate or a lost row would. Any failed check is a
:class:`~softlines_attr.score.errors.ScoreAccountingError` raised before the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from softlines_attr.score.errors import ScoreAccountingError
from softlines_attr.score.written import WrittenTable

log = logging.getLogger(__name__)


def attribute_counts(run_id: str | None = None) -> list[Column]:
    """Aggregates of attribute rows: ``rows``, distinct ``asins``, distinct (asin, attribute) ``pairs``,
    ``abstained`` (value null) and, given this run's id, ``scored_rows`` (rows of this run, not carried)."""
    cols = [
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct("asin").alias("asins"),
        F.countDistinct("asin", "attribute").alias("pairs"),
        F.sum(F.when(F.col("value").isNull(), 1).otherwise(0)).alias("abstained"),
    ]
    if run_id is not None:
        cols.append(F.sum(F.when(F.col("run_id") == run_id, 1).otherwise(0)).alias("scored_rows"))
    return cols


def check_accounting(
    facts: Mapping[str, Any],
    task_rows: int,
    counts: Mapping[str, Any],
    written: Mapping[str, WrittenTable],
    attributes: Sequence[str],
    rows_errors: int,
) -> None:
    """Raise unless every row is accounted for and the written tables hold exactly the counted rows.

    Args:
        facts: :func:`~softlines_attr.score.outputs.input_facts` plus ``rows_scored`` and ``rows_carried``.
        task_rows: Rows the scoring tasks handled (their successful attempts' stats).
        counts: :func:`attribute_counts` over the attribute rows written (``rows``, ``asins``, ``pairs``).
        written: The written ``attributes``, ``errors`` and ``wide`` tables' footer facts.
        attributes: The run's attributes, in order.
        rows_errors: Rows in the errors table (catalog and task errors).

    Raises:
        ScoreAccountingError: naming every check that failed; nothing is committed.
    """
    scored, carried = facts["rows_scored"], facts["rows_carried"]
    asins = scored + carried
    rows, pairs, counted_asins = (int(counts.get(k) or 0) for k in ("rows", "pairs", "asins"))
    problems: list[str] = []
    if task_rows != facts["to_score"]:
        problems.append(f"rows handled by the scoring tasks ({task_rows}) = rows to score ({facts['to_score']})")
    if facts["rows_in"] != scored + carried + rows_errors + facts["skipped"]:
        problems.append(
            f"rows in ({facts['rows_in']}) = scored ({scored}) + carried ({carried}) + errors "
            f"({rows_errors}) + skipped ({facts['skipped']})"
        )
    if counted_asins != asins:
        problems.append(f"asins in attributes ({counted_asins}) = scored + carried ({asins})")
    if rows != pairs or rows != asins * len(attributes):
        problems.append(
            f"attribute rows ({rows}) = distinct (asin, attribute) ({pairs}) = asins x attributes "
            f"({asins * len(attributes)})"
        )
    attrs = written["attributes"]
    if attrs.rows != rows:
        problems.append(f"attribute rows in the written files ({attrs.rows}) = attribute rows counted ({rows})")
    per_attribute = {a: attrs.rows_by_partition.get((a,), 0) for a in attributes}
    if rows and (set(attrs.rows_by_partition) != {(a,) for a in attributes} or set(per_attribute.values()) != {asins}):
        found = {"/".join(k): v for k, v in sorted(attrs.rows_by_partition.items())}
        problems.append(
            f"written attribute rows per attribute = asins ({asins}) for each of {list(attributes)} ({found})"
        )
    if written["wide"].rows != asins:
        problems.append(f"rows in the written wide table ({written['wide'].rows}) = asins ({asins})")
    if written["errors"].rows != rows_errors:
        problems.append(f"rows in the written errors table ({written['errors'].rows}) = rows in errors ({rows_errors})")
    if problems:
        raise ScoreAccountingError("expected " + "; ".join(problems) + "; nothing was committed")
