"""Which bundle head ``evaluate`` reads from which label column of a shard set, and the checks that they fit.

Refine shards carry one class index per record and are evaluated against the bundle head of the
shards' attribute. Multi shards (one column per attribute, -1 = no tag) are evaluated against every
head whose attribute has a column, skipping the untagged records of that column. Base (title-word)
shards hold no human tags and are refused, as are shards stored with another store size or resize
mode than the bundle's preprocessing, and heads whose classes differ from the shards'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softlines_attr.model.bundle import Bundle
from softlines_attr.model.errors import ClassMismatchError, EvaluateInputError
from softlines_attr.model.manifest import Head
from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)

NO_TAG = -1


@dataclass(frozen=True)
class HeadColumn:
    """A bundle head and the label column of the shards it is evaluated against."""

    head: Head
    column: int


def shard_attributes(shards: ShardSet) -> tuple[str, ...]:
    """The attribute of each label column: refine shards one (the contract's ``attribute``), multi shards theirs.

    Raises:
        EvaluateInputError: base (title-word) shards, or shards that do not name their attribute(s).
    """
    if shards.mode == "base":
        raise EvaluateInputError(
            f"shards {shards.root} are base shards (title-word labels); expected refine or multi shards holding "
            f"human attribute tags"
        )
    if shards.mode == "multi":
        if len(shards.attributes) != shards.label_width:
            raise EvaluateInputError(
                f"multi shards {shards.root}: expected one attribute per label column ({shards.label_width}), "
                f"found {list(shards.attributes)}"
            )
        return tuple(shards.attributes)
    if not shards.attribute:
        raise EvaluateInputError(
            f"refine shards {shards.root}: expected the shard manifest to name the attribute, found "
            f"{shards.attribute!r}"
        )
    return (shards.attribute,)


def _shard_class_count(shards: ShardSet, attribute: str) -> int | None:
    """The class count the shards declare for ``attribute`` (None when they do not say).

    Refine shards: the manifest's ``num_classes``. Multi shards: the number of class names the
    manifest records for the attribute (the manifest's ``num_classes`` is the total over all attributes).
    """
    if shards.mode == "refine":
        return shards.num_classes
    names = shards.class_names(attribute)
    return len(names) if names is not None else None


def check_head_classes(bundle: Bundle, shards: ShardSet, head: Head, column: int) -> None:
    """Check a head's classes against the shards' for its attribute: names when recorded, else the count.

    Raises:
        ClassMismatchError: naming the head's classes and the shards'.
    """
    names = shards.class_names(str(head.attribute))
    if names is not None and names != tuple(head.classes):
        raise ClassMismatchError(
            f"head {head.name!r} of bundle {bundle.path} has classes {list(head.classes)}; "
            f"the shards {shards.root} have classes {list(names)} for attribute {head.attribute!r}"
        )
    declared = _shard_class_count(shards, str(head.attribute))
    if declared is not None and declared != len(head.classes):
        raise ClassMismatchError(
            f"head {head.name!r} of bundle {bundle.path} has {len(head.classes)} classes {list(head.classes)}; "
            f"the shards {shards.root} have {declared} classes for attribute {head.attribute!r}"
        )


def match_heads(bundle: Bundle, shards: ShardSet) -> tuple[HeadColumn, ...]:
    """Pair each bundle head with the shards' label column of its attribute.

    A refine bundle with one head whose attribute differs from the shards' is refused (not guessed);
    heads of a multi-head bundle without a column in multi shards are left out with a warning.

    Raises:
        EvaluateInputError: base shards, no head for any of the shards' attributes.
        ClassMismatchError: a head's classes (names or count) differ from the shards' for its attribute.
    """
    attributes = shard_attributes(shards)
    pairs = []
    for head in bundle.manifest.heads:
        if head.multi_label or head.attribute not in attributes:
            if shards.mode == "multi":
                log.warning(
                    "head %r (attribute %r) has no label column in %s; not evaluated",
                    head.name,
                    head.attribute,
                    shards.root,
                )
            continue
        column = attributes.index(head.attribute)
        check_head_classes(bundle, shards, head, column)
        pairs.append(HeadColumn(head, column))
    if not pairs:
        found = [(h.name, h.attribute) for h in bundle.manifest.heads]
        raise EvaluateInputError(
            f"bundle {bundle.path}: expected a head for attribute(s) {list(attributes)} of the shards, found "
            f"heads {found}"
        )
    return tuple(pairs)


def split_paths(shards: ShardSet, split: str) -> tuple[Path, ...]:
    """The non-empty ``.rec`` files of ``split``.

    Raises:
        EvaluateInputError: an unknown split name, or a split without records.
    """
    if split not in ("train", "val"):
        raise EvaluateInputError(f"split: expected 'train' or 'val', found {split!r}")
    paths = shards.val if split == "val" else shards.train
    records = shards.val_records if split == "val" else shards.train_records
    if not paths or records == 0:
        raise EvaluateInputError(
            f"shards {shards.root}: split {split!r} has no records; expected at least one to evaluate on"
        )
    return paths


def check_shard_preprocessing(bundle: Bundle, shards: ShardSet) -> None:
    """Refuse shards stored at another size or resize mode than the bundle's preprocessing.

    Records resized once more to another store size (or padded vs cropped) are not what the scoring
    job gives the model, so the metrics and thresholds would describe another model input.

    Raises:
        EvaluateInputError: naming both preprocessings.
    """
    prep = bundle.manifest.preprocessing
    found = (shards.image_size, shards.resize_mode)
    if found != (prep.store_size, prep.resize_mode):
        raise EvaluateInputError(
            f"shards {shards.root} hold images stored at {found[0]} px {found[1]}; bundle {bundle.path} expects "
            f"its preprocessing, "
            f"store size {prep.store_size} px {prep.resize_mode}: reshard with that [images] conf"
        )


def head_labels(labels: np.ndarray, column: int, head: Head) -> tuple[np.ndarray, np.ndarray]:
    """The tagged records' class indices of ``column`` and a mask of those records (-1 = no tag).

    Raises:
        ClassMismatchError: a label that is not an integer in [0, classes) or -1.
    """
    values = labels[:, column]
    tagged = values != NO_TAG
    classes = values[tagged]
    bad = (classes < 0) | (classes >= len(head.classes)) | (classes != np.round(classes))
    if bad.any():
        raise ClassMismatchError(
            f"head {head.name!r}: a record's label is {float(classes[bad][0])!r}; expected a class index "
            f"0..{len(head.classes) - 1} "
            f"({len(head.classes)} classes of the bundle) or {NO_TAG} for no tag"
        )
    return classes.astype(np.int64), tagged
