"""The shard set contract: what the shard job's output folder holds, as every reader sees it.

:func:`read_shard_set` reads ``shards/_manifest.json`` (and ``_summary.json`` beside ``shards/``)
into a :class:`ShardSet`: training, refine, evaluate and quantize all read shards through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from softlines_attr.shard.errors import ShardContractError

SHARD_MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class ShardSet:
    """The shards of one shard-job output, by split.

    Attributes:
        root: The shards folder (holding ``_manifest.json``).
        mode: ``base`` (title-word labels), ``refine`` (one class index) or ``multi`` (one class
            index per attribute, -1 = no tag).
        label_width: Label slots per record (base), 1 (refine) or the number of attributes (multi).
        num_classes: Vocabulary size, the attribute's class count, or (multi) the classes of all
            attributes together.
        image_size: The stored images' size (``images.store_size`` at shard time).
        train: ``.rec`` paths of the train split.
        val: ``.rec`` paths of the val split.
        train_records: Records in the train split.
        val_records: Records in the val split.
        summary: The shard job's ``_summary.json`` when present (labels, vocab_size, attribute), else {}.
        attributes: Multi shards: the attribute of each label column (from ``_manifest.json``); else ().
    """

    root: Path
    mode: Literal["base", "refine", "multi"]
    label_width: int
    num_classes: int
    image_size: int
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    train_records: int
    val_records: int
    summary: dict = field(default_factory=dict)
    attributes: tuple[str, ...] = ()


def read_shard_set(path: str | Path) -> ShardSet:
    """Read a shard job's output folder (or its ``shards/`` folder) into a :class:`ShardSet`.

    Raises:
        ShardContractError: no ``_manifest.json``, no train shard, a missing shard file, or shards
            that disagree on mode, label width, class count or image size.
    """
    path = Path(path)
    root = path / "shards" if (path / "shards" / SHARD_MANIFEST).is_file() else path
    manifest_file = root / SHARD_MANIFEST
    if not manifest_file.is_file():
        raise ShardContractError(f"no shard manifest at {path}/shards/{SHARD_MANIFEST} or {manifest_file}; expected the shard job's output folder")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        shards = manifest["shards"]
        attributes = tuple(str(a) for a in manifest.get("attributes") or ())
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ShardContractError(f"{manifest_file}: expected JSON with a 'shards' list, found an unreadable file ({exc})") from exc
    if not shards:
        raise ShardContractError(f"{manifest_file}: expected at least one shard, found none")
    facts = {k: {s[k] for s in shards} for k in ("mode", "label_width", "num_classes", "image_size")}
    for key, values in facts.items():
        if len(values) != 1:
            raise ShardContractError(f"{manifest_file}: expected one {key} for all shards, found {sorted(map(str, values))}")
    by_split: dict[str, list[Path]] = {"train": [], "val": []}
    records = {"train": 0, "val": 0}
    for shard in sorted(shards, key=lambda s: s["shard"]):
        rec = root / shard["shard"]
        if not rec.is_file():
            raise ShardContractError(f"{manifest_file} lists shard {shard['shard']} but {rec} does not exist")
        if shard["split"] in by_split and shard["records"] > 0:
            by_split[shard["split"]].append(rec)
            records[shard["split"]] += int(shard["records"])
    if not by_split["train"]:
        raise ShardContractError(f"{manifest_file}: expected at least one non-empty train shard, found none")
    summary_file = root.parent / "_summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    mode = next(iter(facts["mode"]))
    if mode == "multi":
        attributes = attributes or tuple(summary.get("attributes") or ())
        if len(attributes) != int(next(iter(facts["label_width"]))):
            raise ShardContractError(f"{manifest_file}: multi shards: expected one attribute per label column ({next(iter(facts['label_width']))}), found {list(attributes)}")
    return ShardSet(
        root=root,
        mode=facts["mode"].pop(),
        label_width=int(facts["label_width"].pop()),
        num_classes=int(facts["num_classes"].pop()),
        image_size=int(facts["image_size"].pop()),
        train=tuple(by_split["train"]),
        val=tuple(by_split["val"]),
        train_records=records["train"],
        val_records=records["val"],
        summary=summary,
        attributes=attributes if mode == "multi" else (),
    )


