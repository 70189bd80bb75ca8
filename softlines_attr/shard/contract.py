"""The shard set contract: what the shard job's output folder holds, typed and versioned, for writer and readers.

Two files make the contract (version :data:`SHARD_CONTRACT_VERSION`):

* ``shards/_manifest.json``: :class:`ShardManifest`: one :class:`ShardEntry` per ``.rec`` file (the
  columns of the Parquet ``manifest/`` table), and the facts every reader needs about the set: mode,
  label width, class count, stored image size and resize mode, the attribute of each label column
  and the class names of each attribute (refine and multi shards), the vocabulary (base shards).
* ``_summary.json``: the run summary; its contract part is :class:`ShardSummary` (the keys readers
  use); the rest (timings, counts by reason, config) is informative.

Their types are :mod:`softlines_attr.shard.manifest`. The shard job writes both through
:func:`~softlines_attr.shard.manifest.manifest_json` and ``ShardSummary.to_dict``; training,
refine, evaluate and quantize read them through :func:`read_shard_set`; test fixtures write them
with :class:`ShardSetWriter` (the same functions), never by hand.

Version 1 manifests (no ``contract_version``, class names only in the summary's ``inputs``) are
still read: the set-level facts come from the shard entries and the summary, as the shard job wrote
them (a documented fallback, logged once per read).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from softlines_attr.config import parse_dataclass
from softlines_attr.errors import ConfigError
from softlines_attr.shard.errors import ShardContractError
from softlines_attr.shard.manifest import (
    SHARD_CONTRACT_VERSION,
    SHARD_MANIFEST,
    SUMMARY_FILE,
    Mode,
    ShardEntry,
    ShardManifest,
    ShardSummary,
    manifest_json,
)

log = logging.getLogger(__name__)


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
        summary: The shard job's ``_summary.json`` as written (informative keys included), else {}.
        attributes: Multi shards: the attribute of each label column; refine: (); base: ().
        resize_mode: The stored images' resize mode.
        attribute: Refine shards: the attribute; else None.
        classes: Attribute -> class names in index order (refine and multi shards).
        vocab_size: Base shards: the vocabulary size (0 = all words); else None.
        labels: The label job's output folder the shards were built from.
        contract_version: The version of the manifest read (1 = the fallback).
    """

    root: Path
    mode: Mode
    label_width: int
    num_classes: int
    image_size: int
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    train_records: int
    val_records: int
    summary: dict = field(default_factory=dict)
    attributes: tuple[str, ...] = ()
    resize_mode: str = "shorter_side"
    attribute: str | None = None
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    vocab_size: int | None = None
    labels: str = ""
    contract_version: int = SHARD_CONTRACT_VERSION

    def class_names(self, attribute: str) -> tuple[str, ...] | None:
        """The class names the shard job recorded for ``attribute`` (None when it recorded none)."""
        return self.classes.get(attribute)


def _parse_manifest(data: Any, manifest_file: Path, summary: Mapping[str, Any]) -> ShardManifest:
    """A :class:`ShardManifest` from the JSON of a version 2 manifest, or of a version 1 one (fallback)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("shards"), list):
        raise ShardContractError(f"{manifest_file}: expected JSON with a 'shards' list, found {type(data).__name__}")
    version = data.get("contract_version", 1)
    if version == SHARD_CONTRACT_VERSION:
        try:
            manifest = parse_dataclass(ShardManifest, data, source=str(manifest_file))
        except ConfigError as exc:
            raise ShardContractError(str(exc)) from None
        return dataclasses.replace(manifest, classes={k: tuple(v) for k, v in manifest.classes.items()})
    if version != 1:
        raise ShardContractError(
            f"{manifest_file}: expected shard contract_version {SHARD_CONTRACT_VERSION} (or 1), found {version!r}"
        )
    log.info("%s: a version 1 shard manifest; set facts read from its shards and the summary", manifest_file)
    names = {f.name for f in dataclasses.fields(ShardEntry)}
    try:
        entries = tuple(
            parse_dataclass(ShardEntry, {k: v for k, v in s.items() if k in names}, source=str(manifest_file))
            for s in data["shards"]
        )
    except (ConfigError, AttributeError) as exc:
        raise ShardContractError(f"{manifest_file}: {exc}") from None
    if not entries:
        raise ShardContractError(f"{manifest_file}: expected at least one shard, found none")
    facts = {
        k: {getattr(e, k) for e in entries} for k in ("mode", "label_width", "num_classes", "image_size", "resize_mode")
    }
    for key, values in facts.items():
        if len(values) != 1:
            raise ShardContractError(
                f"{manifest_file}: expected one {key} for all shards, found {sorted(map(str, values))}"
            )
    mode = entries[0].mode
    inputs = summary.get("inputs") if isinstance(summary.get("inputs"), Mapping) else {}
    if mode == "multi":
        attributes = tuple(str(a) for a in (data.get("attributes") or summary.get("attributes") or ()))
        raw_classes = inputs.get("classes") if isinstance(inputs.get("classes"), Mapping) else {}
    elif mode == "refine":
        attribute = summary.get("attribute") or inputs.get("attribute")
        attributes = (str(attribute),) if attribute else ()
        raw_classes = (
            {str(attribute): inputs["classes"]} if attribute and isinstance(inputs.get("classes"), list) else {}
        )
    else:
        attributes, raw_classes = (), {}
    vocab = summary.get("vocab_size")
    return ShardManifest(
        contract_version=1,
        run_id=str(data.get("run_id", "")),
        mode=mode,
        label_width=entries[0].label_width,
        image_size=entries[0].image_size,
        resize_mode=entries[0].resize_mode,
        num_classes=entries[0].num_classes,
        shards=entries,
        attributes=attributes,
        classes={str(k): tuple(str(c) for c in v) for k, v in raw_classes.items()},
        vocab_size=int(vocab) if isinstance(vocab, int) else None,
        labels=str(summary.get("labels") or ""),
    )


def read_shard_set(path: str | Path) -> ShardSet:
    """Read a shard job's output folder (or its ``shards/`` folder) into a :class:`ShardSet`.

    Raises:
        ShardContractError: no ``_manifest.json``, an unreadable or self-contradicting one, no train
            shard, or a missing shard file.
    """
    from softlines_attr.io.commit import resolve_current

    path = Path(resolve_current(str(path)))  # a shard job's --out: its current version (runs/<run_id>/)
    root = path / "shards" if (path / "shards" / SHARD_MANIFEST).is_file() else path
    manifest_file = root / SHARD_MANIFEST
    if not manifest_file.is_file():
        raise ShardContractError(
            f"no shard manifest at {path}/shards/{SHARD_MANIFEST} or {manifest_file}; "
            "expected the shard job's output folder"
        )
    summary_file = root.parent / SUMMARY_FILE
    summary: dict = {}
    try:
        data = json.loads(manifest_file.read_text(encoding="utf-8"))
        if summary_file.is_file():
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardContractError(
            f"{manifest_file} or {summary_file}: expected JSON, found an unreadable file ({exc})"
        ) from None
    if not isinstance(summary, dict):
        raise ShardContractError(f"{summary_file}: expected a JSON object, found {type(summary).__name__}")
    manifest = _parse_manifest(data, manifest_file, summary)
    if not manifest.shards:
        raise ShardContractError(f"{manifest_file}: expected at least one shard, found none")
    if manifest.contract_version == SHARD_CONTRACT_VERSION:
        manifest.check(str(manifest_file))
    by_split: dict[str, list[Path]] = {"train": [], "val": []}
    records = {"train": 0, "val": 0}
    for entry in sorted(manifest.shards, key=lambda e: e.shard):
        rec = root / entry.shard
        if not rec.is_file():
            raise ShardContractError(f"{manifest_file} lists shard {entry.shard} but {rec} does not exist")
        if entry.split in by_split and entry.records > 0:
            by_split[entry.split].append(rec)
            records[entry.split] += int(entry.records)
    if not by_split["train"]:
        raise ShardContractError(f"{manifest_file}: expected at least one non-empty train shard, found none")
    if manifest.mode == "multi" and len(manifest.attributes) != manifest.label_width:
        raise ShardContractError(
            f"{manifest_file}: multi shards: expected one attribute per label column ({manifest.label_width}), "
            f"found {list(manifest.attributes)}"
        )
    return ShardSet(
        root=root,
        mode=manifest.mode,
        label_width=manifest.label_width,
        num_classes=manifest.num_classes,
        image_size=manifest.image_size,
        train=tuple(by_split["train"]),
        val=tuple(by_split["val"]),
        train_records=records["train"],
        val_records=records["val"],
        summary=summary,
        attributes=manifest.attributes if manifest.mode == "multi" else (),
        resize_mode=manifest.resize_mode,
        attribute=manifest.attributes[0] if manifest.mode == "refine" and manifest.attributes else None,
        classes=dict(manifest.classes),
        vocab_size=manifest.vocab_size,
        labels=manifest.labels,
        contract_version=manifest.contract_version,
    )


# --------------------------------------------------------------------------------------------
# Writing a shard set outside the job (test fixtures, tools): the job's own contract functions
# --------------------------------------------------------------------------------------------


class ShardSetWriter:
    """Writes a shard set in the shard job's layout: ``.rec``/``.idx`` files, then manifest and summary.

    The records go through :class:`softlines_attr.shard.recordio.IndexedRecordWriter` (the shard
    tasks' writer) and the manifest and summary through :func:`manifest_json` and
    :class:`ShardSummary` (the shard job's), so a fixture cannot drift from the contract.

    Example::

        w = ShardSetWriter(out, mode="refine", label_width=1, image_size=40, num_classes=5,
                           attributes=("hemline",), classes={"hemline": HEMLINES})
        with w.shard("train", 0) as rec:
            rec.write(0, pack_image_record(2.0, 0, jpeg))
        w.close()
    """

    def __init__(
        self,
        out: str | Path,
        *,
        mode: Mode,
        label_width: int,
        image_size: int,
        num_classes: int,
        resize_mode: Literal["shorter_side", "pad_square"] = "shorter_side",
        attributes: Sequence[str] = (),
        classes: Mapping[str, Sequence[str]] | None = None,
        vocab_size: int | None = None,
        labels: str = "",
        run_id: str = "fixture",
    ) -> None:
        self.out = Path(out)
        self.root = self.out / "shards"
        self.spec = dict(
            mode=mode, label_width=label_width, image_size=image_size, num_classes=num_classes, resize_mode=resize_mode
        )
        self.attributes = tuple(attributes)
        self.classes = {k: tuple(v) for k, v in (classes or {}).items()}
        self.vocab_size = vocab_size
        self.labels = labels
        self.run_id = run_id
        self.entries: list[ShardEntry] = []

    @contextmanager
    def shard(self, split: str, part: int, seq: int = 0) -> Iterator[Any]:
        """Open ``<split>/<split>-<part>-<seq>.rec`` (and ``.idx``); yields the record writer; records the entry."""
        from softlines_attr.shard.recordio import IndexedRecordWriter

        name = f"{split}/{split}-{part:05d}-{seq:03d}"
        (self.root / split).mkdir(parents=True, exist_ok=True)
        ids: list[int] = []
        with open(self.root / f"{name}.rec", "wb") as rec, open(self.root / f"{name}.idx", "wb") as idx:
            writer = IndexedRecordWriter(rec, idx)
            original = writer.write

            def write(key: int, payload: bytes) -> int:
                ids.append(key)
                return original(key, payload)

            # wraps the writer's own method to count bytes; same signature
            writer.write = write  # type: ignore[method-assign]
            yield writer
        self.entries.append(
            ShardEntry(
                shard=f"{name}.rec",
                idx=f"{name}.idx",
                split=split,
                part=part,
                seq=seq,
                records=writer.records,
                bytes=writer.rec_bytes,
                sha256=writer.rec_sha256,
                idx_bytes=writer.idx_bytes,
                idx_sha256=writer.idx_sha256,
                first_record_id=ids[0] if ids else -1,
                last_record_id=ids[-1] if ids else -1,
                **self.spec,  # type: ignore[arg-type]  # the spec dict holds exactly the manifest's keyword fields
            )
        )

    def manifest(self) -> ShardManifest:
        """The manifest of the files written so far."""
        return ShardManifest(
            contract_version=SHARD_CONTRACT_VERSION,
            run_id=self.run_id,
            shards=tuple(self.entries),
            attributes=self.attributes,
            classes=self.classes,
            vocab_size=self.vocab_size,
            labels=self.labels,
            **self.spec,  # type: ignore[arg-type]  # the spec dict holds exactly the manifest's keyword fields
        )

    def close(self, rows_rejected: int = 0) -> Path:
        """Write ``shards/_manifest.json`` and ``_summary.json``; returns the output folder."""
        manifest = self.manifest()
        (self.root / SHARD_MANIFEST).write_text(manifest_json(manifest), encoding="utf-8")
        written = sum(e.records for e in self.entries)
        mode = self.spec["mode"]
        per_attribute = (
            {a: len(self.classes[a]) for a in self.attributes} if mode == "multi" else self.spec["num_classes"]
        )
        summary = ShardSummary(
            contract_version=SHARD_CONTRACT_VERSION,
            job="shard",
            run_id=self.run_id,
            mode=mode,
            labels=self.labels,  # type: ignore[arg-type]  # the writer's labels are set before finish() is allowed
            image_size=self.spec["image_size"],
            resize_mode=self.spec["resize_mode"],
            # multi shards: a class count per attribute, as the manifest allows
            num_classes=per_attribute,  # type: ignore[arg-type]
            rows_in=written + rows_rejected,
            records_written=written,
            rows_rejected=rows_rejected,
            # type:
            # ignore[arg-type]
            attribute={"refine": self.attributes[0] if self.attributes else None, "multi": "all"}.get(mode),
            vocab_size=self.vocab_size,
            attributes=self.attributes if mode == "multi" else (),
            classes=self.classes,
        )
        (self.out / SUMMARY_FILE).write_text(
            json.dumps(summary.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        return self.out
