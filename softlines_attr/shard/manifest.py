"""The shard set's two files as types: :class:`ShardManifest` (``shards/_manifest.json``) and :class:`ShardSummary`.

The shard job writes both through :func:`manifest_json` and :meth:`ShardSummary.to_dict`; readers
get them through :func:`softlines_attr.shard.contract.read_shard_set`. The contract as a whole is
described in :mod:`softlines_attr.shard.contract`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from softlines_attr.config import parse_dataclass
from softlines_attr.errors import ConfigError
from softlines_attr.shard.errors import ShardContractError

SHARD_MANIFEST = "_manifest.json"
SUMMARY_FILE = "_summary.json"
SHARD_CONTRACT_VERSION = 2
Mode = Literal["base", "refine", "multi"]


@dataclass(frozen=True)
class ShardEntry:
    """One ``.rec`` file (a row of the Parquet ``manifest/`` table; paths relative to ``shards/``).

    Attributes:
        shard: ``<split>/<split>-<part>-<seq>.rec``.
        idx: Its ``.idx`` file.
        split: ``train`` or ``val``.
        part: The part (Spark partition) that wrote it.
        seq: Its sequence number within the part (a part rolls over at ``max_shard_bytes``).
        records: Records in the file.
        bytes: Size of the ``.rec``.
        sha256: sha256 of the ``.rec``.
        idx_bytes: Size of the ``.idx``.
        idx_sha256: sha256 of the ``.idx``.
        first_record_id: The first record id in the file (-1 when empty).
        last_record_id: The last record id.
        label_width: Label values per record (1 for refine).
        label_pad: The padding value of label arrays.
        image_size: The stored images' size.
        resize_mode: ``shorter_side`` or ``pad_square``.
        mode: ``base``, ``refine`` or ``multi``.
        num_classes: Classes of the set (multi: of all attributes together).
    """

    shard: str
    idx: str
    split: str
    part: int
    seq: int
    records: int
    bytes: int
    sha256: str
    label_width: int
    image_size: int
    resize_mode: Literal["shorter_side", "pad_square"]
    mode: Mode
    num_classes: int
    idx_bytes: int = 0
    idx_sha256: str = ""
    first_record_id: int = -1
    last_record_id: int = -1
    label_pad: float = -1.0


@dataclass(frozen=True)
class ShardManifest:
    """``shards/_manifest.json``, contract version 2.

    Attributes:
        contract_version: :data:`SHARD_CONTRACT_VERSION`.
        run_id: The shard run.
        mode: ``base``, ``refine`` or ``multi``.
        label_width: Label values per record.
        image_size: The stored images' size (``images.store_size`` at shard time).
        resize_mode: ``images.resize_mode`` at shard time.
        num_classes: Vocabulary size, the attribute's class count, or (multi) all attributes' classes.
        shards: One entry per file.
        attributes: The attribute of each label column: refine one, multi one per column; base none.
        classes: Attribute -> its class names in index order (refine and multi).
        vocab_size: Base shards: the vocabulary size asked of the label job (0 = all words).
        labels: The label job's output folder the set was built from.
        label_pad: The padding value of label arrays.
    """

    contract_version: int
    run_id: str
    mode: Mode
    label_width: int
    image_size: int
    resize_mode: Literal["shorter_side", "pad_square"]
    num_classes: int
    shards: tuple[ShardEntry, ...]
    attributes: tuple[str, ...] = ()
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    vocab_size: int | None = None
    labels: str = ""
    label_pad: float = -1.0

    def check(self, where: str) -> None:
        """Raise ShardContractError when the manifest contradicts itself."""
        for entry in self.shards:
            facts = (entry.mode, entry.label_width, entry.num_classes, entry.image_size, entry.resize_mode)
            if facts != (self.mode, self.label_width, self.num_classes, self.image_size, self.resize_mode):
                raise ShardContractError(
                    f"{where}: shard {entry.shard} has mode, label_width, num_classes, image_size, resize_mode "
                    f"{facts}; expected the set's "
                    f"{(self.mode, self.label_width, self.num_classes, self.image_size, self.resize_mode)}"
                )
        if self.mode == "multi" and len(self.attributes) != self.label_width:
            raise ShardContractError(
                f"{where}: multi shards: expected one attribute per label column ({self.label_width}), "
                f"found {list(self.attributes)}"
            )
        if self.mode == "refine" and len(self.attributes) != 1:
            raise ShardContractError(f"{where}: refine shards: expected one attribute, found {list(self.attributes)}")
        for attribute in self.attributes:
            if attribute not in self.classes:
                raise ShardContractError(
                    f"{where}: expected the class names of attribute {attribute!r}, "
                    f"found classes for {sorted(self.classes)}"
                )
        if self.mode == "refine" and len(self.classes[self.attributes[0]]) != self.num_classes:
            raise ShardContractError(
                f"{where}: refine shards: {self.num_classes} classes "
                f"but {len(self.classes[self.attributes[0]])} class names"
            )

    def to_json(self) -> str:
        """The manifest as JSON text (sorted keys)."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class ShardSummary:
    """The contract part of the shard job's ``_summary.json`` (the keys readers rely on).

    Attributes:
        contract_version: :data:`SHARD_CONTRACT_VERSION`.
        job: ``shard``.
        run_id: The shard run.
        mode: ``base``, ``refine`` or ``multi``.
        labels: The label job's output folder.
        attribute: Refine: the attribute; multi: ``all``; base: None.
        vocab_size: Base: the vocabulary size; else None.
        attributes: Multi: the attribute of each label column; else ().
        num_classes: The class count (multi: per attribute).
        classes: Attribute -> class names (refine and multi).
        image_size: The stored images' size.
        resize_mode: The resize mode.
        rows_in: Input rows.
        records_written: Records in the shards.
        rows_rejected: Rows rejected (rows_in = records_written + rows_rejected).
    """

    contract_version: int
    job: Literal["shard"]
    run_id: str
    mode: Mode
    labels: str
    image_size: int
    resize_mode: Literal["shorter_side", "pad_square"]
    num_classes: int | dict[str, int]
    rows_in: int
    records_written: int
    rows_rejected: int
    attribute: str | None = None
    vocab_size: int | None = None
    attributes: tuple[str, ...] = ()
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (merged into the job's summary)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ShardSummary:
        """The contract keys of a summary (other keys ignored).

        Raises:
            ShardContractError: a contract key missing or of the wrong type.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return parse_dataclass(cls, {k: v for k, v in data.items() if k in names}, source=where)
        except ConfigError as exc:
            raise ShardContractError(f"shard summary: {exc}") from None


def manifest_json(manifest: ShardManifest) -> str:
    """The manifest's JSON text, after :meth:`ShardManifest.check` (what the shard job writes)."""
    manifest.check("shard manifest")
    return manifest.to_json()
