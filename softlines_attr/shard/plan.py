"""Cutting each split into equal-count shards and routing every row to its shard's partition.

Rows are put in a seeded pseudo-random order (a hash bucket of the asin, then a second hash, then
the asin), numbered ``0..N-1`` over train then val (the record id), and dealt round-robin to the split's parts, so the
parts of a split differ by at most one record and the order inside a shard is shuffled. Each part is
one Spark partition (an exact identity partitioner, not a hash), which writes one shard, or several
when ``max_shard_bytes`` is reached.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark import RDD
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

BUCKETS = 256  # order buckets per split (fixed, so the order does not depend on the cluster)


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


def plan_parts(split_counts: dict[str, int], records_per_shard: int, min_shards: int, slots: int = 1) -> list[PartSpec]:
    """Parts per split: enough to keep each under ``records_per_shard``, and at least ``min_shards`` in all.

    ``min_shards`` is spread over the splits in proportion to their rows (at least one part for a
    non-empty split), so small outputs still use every core. The total is then rounded up to a
    multiple of ``slots`` (the tasks that run at once) by splitting the splits with the largest
    parts, so the last wave of tasks is not half empty.
    """
    total = sum(split_counts.values())
    counts = {s: n for s, n in sorted(split_counts.items()) if n > 0}
    k = {
        s: min(n, max(1, math.ceil(n / max(1, records_per_shard)), round(min_shards * n / total) if total else 0))
        for s, n in counts.items()
    }
    while slots > 1 and sum(k.values()) % slots:
        growable = [s for s in k if k[s] < counts[s]]
        if not growable:
            break
        widest = max(growable, key=lambda s: (counts[s] / k[s], s))
        k[widest] += 1
    parts: list[PartSpec] = []
    for split, n in counts.items():
        for p in range(k[split]):
            parts.append(PartSpec(len(parts), split, p, n // k[split] + (1 if p < n % k[split] else 0)))
    return parts


def bucket_column(seed: int) -> Column:
    """A row's order bucket, ``xxhash64(seed, asin) mod BUCKETS``: counted per split before routing."""
    return F.pmod(F.xxhash64(F.lit(seed), F.col("asin")), F.lit(BUCKETS)).cast("int")


def route_rows(
    candidates: DataFrame, parts: list[PartSpec], bucket_counts: dict[tuple[str, int], int], seed: int
) -> RDD:
    """``(partition, (record_id, asin, image_uri, labels))`` pairs, partitioned one part per partition.

    The order of a split is (bucket, ``xxhash64(seed + 1, asin)``, asin); a row's rank in it is its
    bucket's offset (from ``bucket_counts``) plus its rank inside the bucket (a window over
    ``split, bucket``, so no single task sorts a whole split), which gives exact, deterministic
    record ids without a global sort.

    Args:
        candidates: Rows with ``asin, image_uri, split, labels`` and ``_bucket`` (:func:`bucket_column`); asins unique.
        parts: From :func:`plan_parts` for the same rows.
        bucket_counts: Rows per (split, bucket) in ``candidates``.
        seed: The order's seed (conf ``seed``).
    """
    split_offset: dict[str, int] = {}
    bucket_offset: dict[tuple[str, int], int] = {}
    running = 0
    for split in sorted({s for s, _ in bucket_counts}):
        split_offset[split] = running
        inside = 0
        for s, b in sorted(k for k in bucket_counts if k[0] == split):
            bucket_offset[(s, b)] = inside
            inside += bucket_counts[(s, b)]
        running += inside
    n_parts = {s: sum(1 for p in parts if p.split == s) for s in split_offset}
    base = {s: min((p.partition for p in parts if p.split == s), default=0) for s in split_offset}
    order = Window.partitionBy("split", "_bucket").orderBy(F.xxhash64(F.lit(seed + 1), F.col("asin")), "asin")
    ranked = candidates.select(
        "split", "_bucket", F.row_number().over(order).alias("_rank"), "asin", "image_uri", "labels"
    )

    def route(row: tuple) -> tuple[int, tuple]:
        split, bucket, rank = row[0], row[1], row[2]
        in_split = bucket_offset[(split, bucket)] + rank - 1
        partition = base[split] + in_split % n_parts[split]
        return partition, (split_offset[split] + in_split, row[3], row[4], list(row[5] or ()))

    return ranked.rdd.map(route).partitionBy(max(1, len(parts)), lambda k: k)
