"""The scoring job's derived outputs: its summary's input facts, and the wide view for the indexer."""

from __future__ import annotations

from collections import Counter

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from softlines_attr.score.schema import conform


def input_facts(planned: DataFrame) -> dict:
    """One aggregation: rows in, catalog errors by reason, skipped rows by product type, candidates to score vs
    fully carried."""
    score = F.exists("need", lambda x: x).alias("score")
    rows = (
        planned.groupBy(
            "status", "reason", F.when(F.col("status") == "skipped", F.col("product_type")).alias("product_type"), score
        )
        .count()
        .collect()
    )
    input_errors: Counter = Counter()
    skipped: Counter = Counter()
    for r in rows:
        if r["status"] == "error":
            input_errors[r["reason"]] += r["count"]
        elif r["status"] == "skipped":
            skipped[r["product_type"] if r["product_type"] is not None else "(null)"] += r["count"]
    counts: Counter = Counter()
    for r in rows:
        if r["status"] == "candidate":
            counts[bool(r["score"])] += r["count"]
    return {
        "rows_in": sum(r["count"] for r in rows),
        "input_errors": input_errors,
        "skipped": sum(skipped.values()),
        "skipped_by_type": dict(sorted(skipped.items())),
        "to_score": counts.get(True, 0),
        "carried_rows": counts.get(False, 0),
    }


def wide_view(attributes_df: DataFrame, attributes: list[str], run_id: str) -> DataFrame:
    """One row per asin: each attribute's value in its own column, and the non-null values as keywords."""
    cols = [F.first(F.when(F.col("attribute") == a, F.col("value")), ignorenulls=True).alias(a) for a in attributes]
    wide = attributes_df.groupBy("asin").agg(*cols)
    wide = wide.withColumn(
        "keywords", F.filter(F.array(*[F.col(f"`{a}`") for a in attributes]), lambda x: x.isNotNull())
    )
    return conform(wide.withColumn("run_id", F.lit(run_id)), "wide", attributes).sortWithinPartitions("asin")
