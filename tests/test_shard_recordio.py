"""Our pure-Python RecordIO writer against MXNet's own writer and readers, byte for byte."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import mxnet as mx
import numpy as np

from softlines_attr.shard.recordio import MAGIC, IndexedRecordWriter, frame_record, pack_image_record, pad_labels


def _payloads() -> list[bytes]:
    rng = random.Random(11)
    magic = struct.pack("<I", MAGIC)
    out = [b"", b"a", magic, magic * 3, b"xy" + magic + b"z", b"abcd" + magic + b"efg" + magic, magic + b"\0" * 5]
    for _ in range(200):
        buf = bytearray(rng.randbytes(rng.randrange(0, 300)))
        for _ in range(rng.randrange(0, 4)):
            if len(buf) >= 4:
                pos = rng.randrange(0, len(buf) - 3)
                buf[pos:pos + 4] = magic
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
