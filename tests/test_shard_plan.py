"""Planning the parts: equal counts, at least min_shards, whole waves of tasks."""

from __future__ import annotations

from softlines_attr.shard.plan import plan_parts


def test_parts_respect_records_per_shard_and_balance() -> None:
    parts = plan_parts({"train": 6252, "val": 1739}, records_per_shard=2000, min_shards=4, slots=2)
    by_split = {s: [p.planned for p in parts if p.split == s] for s in ("train", "val")}
    assert len(parts) % 2 == 0  # whole waves on 2 slots
    assert all(max(v) - min(v) <= 1 and max(v) <= 2000 for v in by_split.values())
    assert sum(by_split["train"]) == 6252 and sum(by_split["val"]) == 1739
    assert [p.partition for p in parts] == list(range(len(parts)))


def test_min_shards_spread_by_size_and_never_empty() -> None:
    parts = plan_parts({"train": 80, "val": 3}, records_per_shard=2000, min_shards=8, slots=1)
    assert [p.split for p in parts].count("val") == 1 and [p.split for p in parts].count("train") == 8
    assert plan_parts({"train": 2, "val": 0}, records_per_shard=10, min_shards=16, slots=4) == plan_parts(
        {"train": 2}, 10, 16, 4
    )
    assert len(plan_parts({"train": 2}, 10, 16, 4)) == 2  # never more parts than rows
    assert plan_parts({}, 10, 4, 2) == []
