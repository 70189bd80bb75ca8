"""Test data for the shard tests: generated product images (good and every bad class), labels tables.

Imported by the tests/test_shard*.py modules; holds no tests itself.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

VOCAB = 40  # label indices 0..39 in the test vocabulary of size 500

TEST_CONF = """
[images]
store_size = 64
input_size = 56
max_pixels = 200000

[shard]
records_per_shard = 6
min_shards = 0
fetch_threads = 4
fetch_retries = 2
fetch_timeout_s = 5.0
"""


def product_image(width: int, height: int, seed: int) -> Image.Image:
    """A product-photo-like RGB image: light background, a dress-shaped figure, pattern and noise."""
    rng = random.Random(seed)
    bg = tuple(rng.randint(225, 250) for _ in range(3))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    colour = tuple(rng.randint(20, 200) for _ in range(3))
    cx, top, bottom = width // 2, height // 8, height - height // 10
    waist = top + (bottom - top) // 3
    draw.polygon(
        [
            (cx - width // 6, top),
            (cx + width // 6, top),
            (cx + width // 8, waist),
            (cx + width // 3, bottom),
            (cx - width // 3, bottom),
            (cx - width // 8, waist),
        ],
        fill=colour,
    )
    accent = tuple(255 - c for c in colour)
    for _ in range(12):
        x, y = rng.randint(cx - width // 5, cx + width // 5), rng.randint(waist, bottom - 10)
        r = max(2, width // 40)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=accent)
    arr = np.asarray(img, dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-6, 7, size=arr.shape, dtype=np.int16)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image, quality: int = 92, exif_orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def rgba_png(img: Image.Image) -> bytes:
    """A PNG whose left half is fully transparent (black underneath) and right half opaque."""
    rgba = Image.new("RGBA", img.size, (0, 0, 0, 0))
    half = img.width // 2
    rgba.paste(img.crop((half, 0, img.width, img.height)).convert("RGBA"), (half, 0))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    return buf.getvalue()


@dataclass
class ImageSet:
    """Image files written for a test: name -> path, and the expected reject reason of the bad ones."""

    root: Path
    paths: dict[str, str] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    plain_jpegs: list[str] = field(default_factory=list)


def write_images(root: Path, n_good: int = 20, seed: int = 7, bad: bool = True, exotic: bool = True) -> ImageSet:
    """``n_good`` plain JPEGs, the exotic-but-good modes, and one file of each bad class."""
    root.mkdir(parents=True, exist_ok=True)
    out = ImageSet(root)

    def put(name: str, data: bytes) -> str:
        path = root / name
        path.write_bytes(data)
        out.paths[name] = str(path)
        return str(path)

    rng = random.Random(seed)
    for i in range(n_good):
        w = rng.choice([90, 120, 150])
        h = rng.choice([120, 160, 200])
        put(f"good{i:03d}.jpg", jpeg_bytes(product_image(w, h, seed * 1000 + i)))
        out.plain_jpegs.append(f"good{i:03d}.jpg")
    if exotic:
        base = product_image(120, 160, seed + 1)
        put("rotated.jpg", jpeg_bytes(base.transpose(Image.Transpose.ROTATE_90), exif_orientation=6))
        buf = io.BytesIO()
        base.convert("CMYK").save(buf, "JPEG", quality=90)
        put("cmyk.jpg", buf.getvalue())
        buf = io.BytesIO()
        base.convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "PNG")
        put("palette.png", buf.getvalue())
        buf = io.BytesIO()
        base.convert("L").save(buf, "JPEG")
        put("gray.jpg", buf.getvalue())
        gray16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        buf = io.BytesIO()
        Image.fromarray(gray16).save(buf, "PNG")
        put("gray16.png", buf.getvalue())
        put("rgba.png", rgba_png(base))
    if bad:
        good = jpeg_bytes(product_image(120, 160, seed + 2))
        out.bad[put("truncated.jpg", good[: len(good) // 2])] = "truncated"
        out.bad[put("unreadable.jpg", b"this is not an image, it is a text file\n" * 20)] = "unreadable"
        out.bad[put("empty.jpg", b"")] = "empty"
        out.bad[put("huge.jpg", jpeg_bytes(Image.new("RGB", (600, 400), (250, 250, 250))))] = "too_large"
        buf = io.BytesIO()
        Image.fromarray(np.ones((60, 40), dtype=np.float32)).save(buf, "TIFF")
        out.bad[put("float.tif", buf.getvalue())] = "unsupported_mode"
        out.bad[str(root / "does_not_exist.jpg")] = "missing"
        out.bad["ftp://example.invalid/x.jpg"] = "unsupported_scheme"
    return out


def labels_rows(uris: list[str], seed: int = 3, val_every: int = 4) -> list[dict]:
    """One labels-table row per uri: asin A0000.., parent per pair, split by parent, 1-6 labels."""
    rng = random.Random(seed)
    rows = []
    for i, uri in enumerate(uris):
        parent = f"P{i // 2:04d}"
        n = rng.randint(1, 6)
        labels = sorted(rng.sample(range(VOCAB), n))
        rows.append(
            {
                "asin": f"A{i:05d}",
                "parent_asin": parent,
                "image_uri": uri,
                "product_type": "DRESS",
                "split": "val" if (i // 2) % val_every == 0 else "train",
                "labels_500": labels,
                "labels_2000": labels,
                "labels_all": labels,
            }
        )
    return rows


LABELS_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("parent_asin", pa.string()),
        ("image_uri", pa.string()),
        ("product_type", pa.string()),
        ("split", pa.string()),
        ("labels_500", pa.list_(pa.int32())),
        ("labels_2000", pa.list_(pa.int32())),
        ("labels_all", pa.list_(pa.int32())),
    ]
)


def write_labels_dir(labels_dir: Path, rows: list[dict]) -> Path:
    """A label-job output folder: labels/, vocabulary/ (sizes 500, 2000, 0), _summary.json."""
    (labels_dir / "labels").mkdir(parents=True, exist_ok=True)
    (labels_dir / "vocabulary").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELS_SCHEMA), labels_dir / "labels" / "part-00000.parquet")
    vocab = [
        {"vocab_size": size, "word": f"w{i}", "doc_freq": 100 - i, "rank": i + 1, "label_index": i}
        for size in (500, 2000, 0)
        for i in range(VOCAB)
    ]
    schema = pa.schema(
        [
            ("vocab_size", pa.int32()),
            ("word", pa.string()),
            ("doc_freq", pa.int64()),
            ("rank", pa.int32()),
            ("label_index", pa.int32()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(vocab, schema=schema), labels_dir / "vocabulary" / "part-00000.parquet")
    (labels_dir / "_summary.json").write_text(json.dumps({"job": "labels", "rows": len(rows)}))
    return labels_dir


def read_rec(rec_path: str) -> list[tuple]:
    """Every record of a shard through MXNet's own reader: (key, header, BGR image array)."""
    import mxnet as mx

    idx_path = rec_path[:-4] + ".idx"
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "r")
    out = []
    for key in reader.keys:
        header, img = mx.recordio.unpack_img(reader.read_idx(key))
        out.append((key, header, img))
    reader.close()
    return out
