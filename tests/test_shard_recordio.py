"""Our pure-Python RecordIO writer and reader against MXNet's own writer and readers, byte for byte."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from softlines_attr.shard.errors import RecordIOError
from softlines_attr.shard.recordio import (
    MAGIC,
    IndexedRecordWriter,
    frame_record,
    pack_image_record,
    pad_labels,
    read_image_records,
    read_payloads,
    record_offsets,
    unpack_image_record,
)


def _payloads() -> list[bytes]:
    rng = random.Random(11)
    magic = struct.pack("<I", MAGIC)
    out = [b"", b"a", magic, magic * 3, b"xy" + magic + b"z", b"abcd" + magic + b"efg" + magic, magic + b"\0" * 5]
    for _ in range(200):
        buf = bytearray(rng.randbytes(rng.randrange(0, 300)))
        for _ in range(rng.randrange(0, 4)):
            if len(buf) >= 4:
                pos = rng.randrange(0, len(buf) - 3)
                buf[pos : pos + 4] = magic
        out.append(bytes(buf))
    return out


def test_writer_is_byte_identical_to_mxnet(tmp_path: Path) -> None:
    payloads = _payloads()
    ref = mx.recordio.MXIndexedRecordIO(str(tmp_path / "ref.idx"), str(tmp_path / "ref.rec"), "w")
    for i, p in enumerate(payloads):
        ref.write_idx(i * 7, p)
    ref.close()
    with open(tmp_path / "ours.rec", "wb") as rec, open(tmp_path / "ours.idx", "wb") as idx:
        writer = IndexedRecordWriter(rec, idx)
        for i, p in enumerate(payloads):
            writer.write(i * 7, p)
    assert (tmp_path / "ours.rec").read_bytes() == (tmp_path / "ref.rec").read_bytes()
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "ref.idx").read_bytes()
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "ours.idx"), str(tmp_path / "ours.rec"), "r")
    assert [reader.read_idx(i * 7) for i in range(len(payloads))] == payloads


def test_framing_single_record_matches_mxnet(tmp_path: Path) -> None:
    for i, p in enumerate(_payloads()[:40]):
        path = tmp_path / f"{i}.rec"
        w = mx.recordio.MXRecordIO(str(path), "w")
        w.write(p)
        w.close()
        assert frame_record(p) == path.read_bytes()


def test_pack_matches_mxnet_pack() -> None:
    img = b"\xff\xd8 jpeg bytes"
    assert pack_image_record(3, 42, img) == mx.recordio.pack(mx.recordio.IRHeader(0, 3, 42, 0), img)
    labels = pad_labels([5, 9, 1], 6)
    assert labels == [5.0, 9.0, 1.0, -1.0, -1.0, -1.0]
    assert pack_image_record(labels, 7, img) == mx.recordio.pack(mx.recordio.IRHeader(0, labels, 7, 0), img)
    header, rest = mx.recordio.unpack(pack_image_record(labels, 7, img))
    assert header.flag == 6 and header.id == 7 and rest == img
    np.testing.assert_array_equal(header.label, np.asarray(labels, dtype=np.float32))


def _mxnet_payloads(path: Path) -> list[bytes]:
    reader = mx.recordio.MXRecordIO(str(path), "r")
    try:
        return list(iter(reader.read, None))
    finally:
        reader.close()


def test_reader_is_byte_identical_to_mxnet(tmp_path: Path) -> None:
    """Every payload (magic numbers inside, at aligned and unaligned offsets) read back as MXRecordIO reads it."""
    payloads = _payloads()
    ref = mx.recordio.MXIndexedRecordIO(str(tmp_path / "ref.idx"), str(tmp_path / "ref.rec"), "w")
    for i, p in enumerate(payloads):
        ref.write_idx(i, p)
    ref.close()
    assert list(read_payloads(tmp_path / "ref.rec")) == _mxnet_payloads(tmp_path / "ref.rec") == payloads
    offsets = [int(line.split("\t")[1]) for line in (tmp_path / "ref.idx").read_text().splitlines()]
    assert record_offsets(tmp_path / "ref.rec") == offsets  # from the .idx
    (tmp_path / "ref.idx").unlink()
    assert record_offsets(tmp_path / "ref.rec") == offsets  # from the part headers
    (tmp_path / "empty.rec").write_bytes(b"")
    assert list(read_payloads(tmp_path / "empty.rec")) == _mxnet_payloads(tmp_path / "empty.rec") == []


def test_image_records_unpack_as_mxnet_unpack(tmp_path: Path) -> None:
    magic = struct.pack("<I", MAGIC)
    images = [b"\xff\xd8 jpeg", magic * 2 + b"jpeg", b"", b"abc" + magic]
    labels: list[float | list[float]] = [3, pad_labels([5, 9], 4), 0.5, pad_labels([7], 2)]
    paths = []
    for part in range(2):
        paths.append(tmp_path / f"part-{part}.rec")
        w = mx.recordio.MXRecordIO(str(paths[-1]), "w")
        for i, (label, img) in enumerate(zip(labels, images)):
            w.write(pack_image_record(label, 10 * part + i, img))
        w.close()
    ours = list(read_image_records(paths))
    theirs = [mx.recordio.unpack(p) for path in paths for p in _mxnet_payloads(path)]
    assert len(ours) == len(theirs) == 8
    for (header, image), (ref, ref_image) in zip(ours, theirs):
        assert image == ref_image
        assert (header.flag, header.id, header.id2) == (ref.flag, ref.id, ref.id2)
        assert type(header.label) is type(ref.label)
        np.testing.assert_array_equal(header.label, ref.label)
        np.testing.assert_array_equal(header.labels, np.atleast_1d(np.asarray(ref.label, dtype=np.float32)))
    assert [h.id for h, _ in ours] == [0, 1, 2, 3, 10, 11, 12, 13]


def test_reader_refuses_what_is_not_recordio(tmp_path: Path) -> None:
    good = frame_record(b"abcdefgh")
    (tmp_path / "bad.rec").write_bytes(good + b"\0" * 8)
    expected = r"bad.rec: expected a RecordIO header \(magic 0xced7230a\) at byte 16, found magic 0x0"
    with pytest.raises(RecordIOError, match=expected):
        list(read_payloads(tmp_path / "bad.rec"))
    with pytest.raises(RecordIOError, match="at byte 16, found magic 0x0"):
        record_offsets(tmp_path / "bad.rec")
    (tmp_path / "short.rec").write_bytes(good[:-2])
    with pytest.raises(RecordIOError, match="expected 8 bytes of the part at byte 0, found 6"):
        list(read_payloads(tmp_path / "short.rec"))
    (tmp_path / "cut.rec").write_bytes(frame_record(b"abcd" + struct.pack("<I", MAGIC) + b"efgh")[:12])
    with pytest.raises(RecordIOError, match="expected the last part of a cut record"):
        list(read_payloads(tmp_path / "cut.rec"))
    with pytest.raises(RecordIOError, match="expected 2 float32 labels after the header, found 4 bytes"):
        unpack_image_record(pack_image_record([1.0, 2.0], 5, b"")[:-4])
