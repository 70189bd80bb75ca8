"""MXNet RecordIO, written in pure Python (no MXNet needed on the executors).

The byte format is dmlc-core's ``RecordIOWriter``, which MXNet's readers (``MXRecordIO``,
``ImageRecordIter``) parse:

* each record is one or more parts; a part is ``magic (u32 LE) | lrec (u32 LE) | data``, where
  ``lrec = cflag << 29 | len(data)``;
* a payload holding the magic number at a 4-byte-aligned offset is cut there (the magic itself is
  dropped and re-inserted by the reader): cflag 0 = whole record, 1 = first, 2 = middle, 3 = last;
* the record is zero-padded to a multiple of 4 bytes.

An image record's payload is MXNet's ``IRHeader`` (``flag u32, label f32, id u64, id2 u64``), then
``flag`` float32 labels when ``flag > 0`` (a label array), then the JPEG bytes. The ``.idx`` file
is text, ``key\\toffset\\n`` per record, as ``MXIndexedRecordIO`` writes it.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

log = logging.getLogger(__name__)

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LREC = struct.Struct("<II")
MAX_RECORD_BYTES = (1 << 29) - 1
LABEL_PAD = -1.0


def pack_image_record(label: float | Sequence[float], record_id: int, image: bytes, id2: int = 0) -> bytes:
    """The payload of one image record, as ``mx.recordio.pack`` builds it.

    Args:
        label: A single class (stored in the header, ``flag = 0``) or a label array (stored after
            the header as float32, ``flag = len(label)``).
        record_id: The record id (``IRHeader.id``).
        image: Encoded image bytes.
        id2: ``IRHeader.id2`` (0 in this project).

    Returns:
        The payload bytes.
    """
    if isinstance(label, (int, float, np.integer, np.floating)):
        return _HEADER.pack(0, float(label), record_id, id2) + image
    labels = np.asarray(label, dtype="<f4")
    return _HEADER.pack(labels.size, 0.0, record_id, id2) + labels.tobytes() + image


def pad_labels(labels: Sequence[int], width: int) -> list[float]:
    """``labels`` as floats, padded with :data:`LABEL_PAD` to ``width`` slots."""
    if len(labels) > width:
        raise ValueError(f"expected at most {width} labels, found {len(labels)}")
    return [float(v) for v in labels] + [LABEL_PAD] * (width - len(labels))


def frame_record(payload: bytes) -> bytes:
    """The bytes dmlc's ``RecordIOWriter::WriteRecord`` writes for ``payload`` (parts and padding)."""
    size = len(payload)
    if size > MAX_RECORD_BYTES:
        raise ValueError(f"a RecordIO record holds at most {MAX_RECORD_BYTES} bytes, found {size}")
    out: list[bytes] = []
    start = 0  # first byte of the current part
    pos = payload.find(_MAGIC_BYTES)
    aligned_end = size & ~3
    while pos != -1 and pos < aligned_end:
        if pos % 4 == 0:
            cflag = 1 if start == 0 else 2
            out.append(_LREC.pack(MAGIC, (cflag << 29) | (pos - start)))
            out.append(payload[start:pos])
            start = pos + 4
            pos = payload.find(_MAGIC_BYTES, start)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1)
    cflag = 3 if start != 0 else 0
    out.append(_LREC.pack(MAGIC, (cflag << 29) | (size - start)))
    out.append(payload[start:] if start else payload)
    pad = (-size) % 4
    if pad:
        out.append(b"\0" * pad)
    return b"".join(out)


class IndexedRecordWriter:
    """Writes a ``.rec`` and its ``.idx`` to open binary files, hashing both as it goes.

    Attributes:
        records: Records written so far.
        rec_bytes: Bytes written to the ``.rec``.
        idx_bytes: Bytes written to the ``.idx``.
    """

    def __init__(self, rec: BinaryIO, idx: BinaryIO) -> None:
        self._rec = rec
        self._idx = idx
        self._rec_hash = hashlib.sha256()
        self._idx_hash = hashlib.sha256()
        self.records = 0
        self.rec_bytes = 0
        self.idx_bytes = 0

    def framed_size(self, payload: bytes) -> int:
        """An upper bound of the bytes ``payload`` adds to the ``.rec`` (exact unless it holds the magic)."""
        return 8 + len(payload) + (-len(payload)) % 4

    def write(self, key: int, payload: bytes) -> int:
        """Append one record under index key ``key``; returns its byte offset in the ``.rec``."""
        offset = self.rec_bytes
        framed = frame_record(payload)
        self._rec.write(framed)
        self._rec_hash.update(framed)
        line = f"{key}\t{offset}\n".encode("ascii")
        self._idx.write(line)
        self._idx_hash.update(line)
        self.rec_bytes += len(framed)
        self.idx_bytes += len(line)
        self.records += 1
        return offset

    @property
    def rec_sha256(self) -> str:
        """Hex SHA-256 of the ``.rec`` bytes written."""
        return self._rec_hash.hexdigest()

    @property
    def idx_sha256(self) -> str:
        """Hex SHA-256 of the ``.idx`` bytes written."""
        return self._idx_hash.hexdigest()
