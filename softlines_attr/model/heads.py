"""The heads a model of a shard set has: names, classes and kinds, from the shards and the taxonomy.

Base shards give the title-word head ``base`` (classes: the label job's vocabulary words); refine
shards one head named after the attribute; multi shards one softmax head per attribute, in the
shards' label-column order. Class lists come from the taxonomy and are checked against the shards.
"""

from __future__ import annotations

import logging
from pathlib import Path

from softlines_attr.config import PipelineConfig
from softlines_attr.model.errors import TrainInputError
from softlines_attr.model.inception_bn import DEFAULT_HEAD
from softlines_attr.model.manifest import Head
from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)


def class_names(shards: ShardSet, conf: PipelineConfig) -> tuple[str, ...]:
    """The class names of the shards' labels, in index order.

    Refine shards: the attribute's classes from the taxonomy (the shard summary names the attribute).
    Base shards: the words of the vocabulary from the label job's ``vocabulary/`` table (the shard
    summary names it); ``word_<i>`` placeholders, with a warning, when it cannot be read.
    """
    attribute = shards.summary.get("attribute")
    if shards.mode == "refine" and attribute:
        classes = conf.taxonomy.attribute(attribute).classes
        if len(classes) != shards.num_classes:
            raise TrainInputError(
                f"attribute {attribute!r} has {len(classes)} classes in the taxonomy but the shards have "
                f"{shards.num_classes}"
            )
        return classes
    words = _vocabulary_words(shards)
    if words is not None and len(words) == shards.num_classes:
        return words
    log.warning(
        "class names of %s not found (vocabulary table unreadable or of another size); using word_<i>", shards.root
    )
    return tuple(f"word_{i}" for i in range(shards.num_classes))


def shard_heads(shards: ShardSet, conf: PipelineConfig, *, multi_label: bool) -> tuple[Head, ...]:
    """The heads a model of these shards has: one per label column.

    Base shards: the title-word head ``base``. Refine shards: one head named after the attribute.
    Multi shards: one softmax head per attribute, in label-column order, classes from the taxonomy.

    Raises:
        TrainInputError: an attribute the taxonomy lacks, or of another class count than the shards.
    """
    if shards.mode != "multi":
        attribute = shards.summary.get("attribute") if shards.mode == "refine" else None
        return (
            Head(
                attribute or DEFAULT_HEAD,
                tuple(class_names(shards, conf)),
                attribute=attribute,
                multi_label=multi_label,
            ),
        )
    declared = shards.summary.get("num_classes")
    heads = []
    for attribute in shards.attributes:
        classes = conf.taxonomy.attribute(attribute).classes
        if isinstance(declared, dict) and attribute in declared and int(declared[attribute]) != len(classes):
            raise TrainInputError(
                f"attribute {attribute!r} has {len(classes)} classes in the taxonomy but the multi shards have "
                f"{declared[attribute]}"
            )
        heads.append(Head(attribute, tuple(classes), attribute=attribute, multi_label=False))
    return tuple(heads)


def _vocabulary_words(shards: ShardSet) -> tuple[str, ...] | None:
    labels, vocab_size = shards.summary.get("labels"), shards.summary.get("vocab_size")
    if not labels or vocab_size is None or "://" in str(labels):
        return None
    table = Path(labels) / "vocabulary"
    if not table.exists():
        return None
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(table, columns=["vocab_size", "word", "label_index"]).to_pylist()
    except Exception as exc:  # noqa: BLE001 - any unreadable table falls back to placeholders
        log.warning("cannot read vocabulary table %s: %s", table, exc)
        return None
    words = sorted((r["label_index"], r["word"]) for r in rows if r["vocab_size"] == vocab_size)
    return tuple(w for _, w in words)
