"""The catalog's bad rows on purpose: their kinds, which products get them, their titles.

Every kind is a row a real vendor feed carries and the label and shard jobs must reject or
survive (``docs/CATALOG.md``); ``bad_rows.parquet`` lists each with its kind and a detail.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from softlines_attr.synthetic.vocab import SIZE_ONLY_TOKENS

# Bad-row kinds that replace one product's title or image (duplicate_asin adds a row instead).
ROW_BAD_KINDS: tuple[str, ...] = (
    "null_title",
    "empty_title",
    "size_only_title",
    "missing_image",
    "null_image_uri",
    "corrupt_jpeg",
    "png_alpha",
    "grayscale_jpeg",
)
BAD_KINDS: tuple[str, ...] = ROW_BAD_KINDS + ("duplicate_asin",)
BAD_DETAIL: dict[str, str] = {
    "null_title": "title is null",
    "empty_title": "title is empty or whitespace",
    "size_only_title": "title holds only sizes and numbers",
    "missing_image": "image_uri names a file that does not exist",
    "null_image_uri": "image_uri is null",
    "corrupt_jpeg": "JPEG truncated to 40% of its bytes",
    "png_alpha": "valid RGBA PNG with a transparent background",
    "grayscale_jpeg": "valid single-channel (L) JPEG",
}
ALWAYS_ALL_KINDS_FROM = 200  # from this n on, every bad kind appears at least once
BAD_ROWS_SCHEMA = pa.schema(
    [("asin", pa.string()), ("kind", pa.string()), ("row", pa.int64()), ("detail", pa.string())]
)


def bad_row_plan(n: int, share: float, rng: np.random.Generator) -> tuple[dict[int, str], bool]:
    """Which products are bad and how; and whether to add the duplicate-asin row."""
    total = int(round(share * n))
    if n >= ALWAYS_ALL_KINDS_FROM:
        total = max(total, len(ROW_BAD_KINDS))
    total = min(total, n)
    rows = rng.choice(n, size=total, replace=False) if total else np.zeros(0, dtype=np.int64)
    kinds = {int(r): ROW_BAD_KINDS[i % len(ROW_BAD_KINDS)] for i, r in enumerate(rows)}
    duplicate = n >= 2 and (n >= ALWAYS_ALL_KINDS_FROM or share * n >= 1)
    return kinds, duplicate


def bad_title(kind: str, rng: np.random.Generator) -> str | None:
    """The title of a bad-title row of kind ``kind`` (None, blank, or sizes and numbers only)."""
    if kind == "null_title":
        return None
    if kind == "empty_title":
        return ["", " ", "   ", "\t", " \u00a0 "][int(rng.integers(5))]
    tokens = rng.choice(np.asarray(SIZE_ONLY_TOKENS, dtype=object), size=int(rng.integers(2, 6)), replace=False)
    return " ".join(tokens)
