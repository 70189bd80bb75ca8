"""MXNet RecordIO, written and read in pure Python (no MXNet needed on the executors).

The byte format is dmlc-core's ``RecordIOWriter``, which MXNet's readers (``MXRecordIO``,
``ImageRecordIter``) parse; :func:`read_payloads` and :func:`unpack_image_record` read it back
exactly as ``MXRecordIO.read`` and ``mx.recordio.unpack`` do (tests check both against MXNet):

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from softlines_attr.shard.errors import RecordIOError

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


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------


class RecordHeader(NamedTuple):
    """An image record's ``IRHeader``, as ``mx.recordio.unpack`` returns it.

    Attributes:
        flag: 0 for a single label (in ``label``), else the number of float32 labels after the header.
        label: The single label (a float), or the label array (float32, ``flag`` values).
        id: The record id.
        id2: The second id (0 in this project).
    """

    flag: int
    label: float | np.ndarray
    id: int
    id2: int

    @property
    def labels(self) -> np.ndarray:
        """The label(s) as a 1-D float32 array (one value when ``flag`` is 0)."""
        return np.atleast_1d(np.asarray(self.label, dtype=np.float32))


def unpack_image_record(payload: bytes) -> tuple[RecordHeader, bytes]:
    """The header and the image bytes of one record's payload (the inverse of :func:`pack_image_record`).

    Raises:
        RecordIOError: a payload shorter than its header and label array.
    """
    if len(payload) < _HEADER.size:
        raise RecordIOError(
            f"expected an image record of at least {_HEADER.size} header bytes, found {len(payload)} bytes"
        )
    flag, label, record_id, id2 = _HEADER.unpack_from(payload)
    rest = payload[_HEADER.size :]
    if flag == 0:
        return RecordHeader(flag, label, record_id, id2), rest
    if len(rest) < 4 * flag:
        raise RecordIOError(
            f"record {record_id}: expected {flag} float32 labels after the header, found {len(rest)} bytes"
        )
    labels = np.frombuffer(rest, dtype=np.float32, count=flag)
    return RecordHeader(flag, labels, record_id, id2), rest[4 * flag :]


def _parts(fh: BinaryIO, name: str) -> Iterator[tuple[int, int, int]]:
    """Each part of an open ``.rec`` file: (byte offset, cflag, data length); leaves ``fh`` after the part's header."""
    pos = 0
    while True:
        head = fh.read(_LREC.size)
        if not head:
            return
        if len(head) < _LREC.size:
            raise RecordIOError(
                f"{name}: expected an {_LREC.size}-byte part header at byte {pos}, found {len(head)} bytes"
            )
        magic, lrec = _LREC.unpack(head)
        if magic != MAGIC:
            raise RecordIOError(
                f"{name}: expected a RecordIO header (magic {MAGIC:#x}) at byte {pos}, found magic {magic:#x}"
            )
        length = lrec & MAX_RECORD_BYTES
        yield pos, lrec >> 29, length
        pos += _LREC.size + ((length + 3) & ~3)


def read_payloads(path: str | Path) -> Iterator[bytes]:
    """The payload of every record of one ``.rec`` file, in file order, as ``MXRecordIO.read`` returns them.

    The parts of a record cut at a magic number (cflag 1, 2, 3) are joined with the magic put back.

    Raises:
        RecordIOError: a part without the magic number, or a part or record cut short by the file's end.
    """
    name = str(path)
    with open(path, "rb") as fh:
        pieces: list[bytes] = []
        for pos, cflag, length in _parts(fh, name):
            padded = (length + 3) & ~3
            data = fh.read(padded)
            if len(data) < padded:
                raise RecordIOError(f"{name}: expected {padded} bytes of the part at byte {pos}, found {len(data)}")
            pieces.append(data if padded == length else data[:length])
            if cflag in (0, 3):  # a whole record, or the last part of a cut one
                yield pieces[0] if len(pieces) == 1 else _MAGIC_BYTES.join(pieces)
                pieces = []
        if pieces:
            raise RecordIOError(f"{name}: expected the last part of a cut record (cflag 3), found the end of the file")


def read_image_records(paths: Sequence[str | Path]) -> Iterator[tuple[RecordHeader, bytes]]:
    """Every image record of ``paths``, one file after the other, as (header, image bytes) like ``mx.recordio.unpack``.

    Raises:
        RecordIOError: a file or a record that is not valid RecordIO (see :func:`read_payloads`).
    """
    for path in paths:
        for payload in read_payloads(path):
            yield unpack_image_record(payload)


def record_offsets(rec: str | Path) -> list[int]:
    """The byte offset of every record of a ``.rec`` file, ascending.

    From its ``.idx`` (``key\\toffset`` lines) when there is one, else by walking the part headers
    without reading the payloads (a record starts at a part of cflag 0 or 1).

    Raises:
        RecordIOError: no ``.idx`` and a part without the magic number.
    """
    rec = Path(rec)
    idx = rec.with_suffix(".idx")
    if idx.is_file():
        with open(idx, encoding="ascii") as fh:
            return sorted(int(line.split("\t")[1]) for line in fh if line.strip())
    offsets: list[int] = []
    with open(rec, "rb") as fh:
        for pos, cflag, length in _parts(fh, str(rec)):
            if cflag in (0, 1):
                offsets.append(pos)
            fh.seek(pos + _LREC.size + ((length + 3) & ~3))
    return offsets
