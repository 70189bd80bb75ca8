"""Cutting each split into equal-count shards and routing every row to its shard's partition.

Rows are put in a seeded pseudo-random order (``xxhash64(seed, asin)``, ties by asin), numbered
``0..N-1`` over train then val (the record id), and dealt round-robin to the split's parts, so the
parts of a split differ by at most one record and the order inside a shard is shuffled. Each part is
one Spark partition (an exact identity partitioner, not a hash), which writes one shard, or several
when ``max_shard_bytes`` is reached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark import RDD
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartSpec:
    """One part: a Spark partition writing the shard(s) ``<split>-<part>-<seq>``.

    Attributes:
        partition: Spark partition index.
        split: ``train`` or ``val``.
        part: Part number within the split.
        planned: Rows routed to this part (records written may be fewer: rejects).
    """

    partition: int
    split: str
    part: int
    planned: int


def plan_parts(split_counts: dict[str, int], records_per_shard: int, min_shards: int) -> list[PartSpec]:
    """Parts per split: enough to keep each under ``records_per_shard``, and at least ``min_shards`` in all.

    ``min_shards`` is spread over the splits in proportion to their rows (at least one part for a
    non-empty split), so small outputs still use every core.
    """
    total = sum(split_counts.values())
    parts: list[PartSpec] = []
    for split in sorted(split_counts):
        n = split_counts[split]
        if n <= 0:
            continue
        k = max(1, math.ceil(n / max(1, records_per_shard)), round(min_shards * n / total) if total else 0)
        k = min(k, n)
        for p in range(k):
            parts.append(PartSpec(len(parts), split, p, n // k + (1 if p < n % k else 0)))
    return parts


def route_rows(candidates: DataFrame, parts: list[PartSpec], split_counts: dict[str, int], seed: int) -> RDD:
    """``(partition, (record_id, asin, image_uri, labels))`` pairs, partitioned one part per partition.

    Args:
        candidates: Rows with ``asin, image_uri, split, labels``; asins unique.
        parts: From :func:`plan_parts` with the same ``split_counts``.
        split_counts: Rows per split in ``candidates``.
        seed: The order's seed (conf ``seed``).
    """
    offsets: dict[str, int] = {}
    running = 0
    for split in sorted(split_counts):
        offsets[split] = running
        running += split_counts[split]
    n_parts = {s: sum(1 for p in parts if p.split == s) for s in split_counts}
    base = {s: min((p.partition for p in parts if p.split == s), default=0) for s in split_counts}
    ordered = (
        candidates.select("split", "asin", "image_uri", "labels", F.xxhash64(F.lit(seed), F.col("asin")).alias("_key"))
        .orderBy("split", "_key", "asin")
    )

    def route(pair: tuple) -> tuple[int, tuple]:
        row, record_id = pair
        split = row[0]
        rank = record_id - offsets[split]
        partition = base[split] + rank % n_parts[split]
        return partition, (record_id, row[1], row[2], list(row[3] or ()))

    return ordered.rdd.zipWithIndex().map(route).partitionBy(max(1, len(parts)), lambda k: k)
