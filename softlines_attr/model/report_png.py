"""The evaluation report's pictures: the confusion matrix as a heatmap and the precision/coverage curve (PNG).

Drawn with Pillow. The confusion matrix's rows are normalised: each cell's shade is the share of the
true class predicted as the column's class, and the count is written in the cell.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from softlines_attr.model.evaluation import HeadEvaluation

_CELL = 34
_FONT_SIZE = 12


def row_shares(confusion: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix divided by its sum (rows without support stay 0)."""
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


def shade(share: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1)."""
    share = min(max(share, 0.0), 1.0)
    return (round(255 - 222 * share), round(255 - 155 * share), round(255 - 75 * share))


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """``#rrggbb`` of an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# --------------------------------------------------------------------------------------------
# The confusion matrix as a picture
# --------------------------------------------------------------------------------------------


def confusion_png(confusion: np.ndarray, classes: Sequence[str], title: str = "") -> bytes:
    """A PNG heatmap of a confusion matrix: rows true class, columns predicted, shade = row share.

    Args:
        confusion: (C, C) counts.
        classes: The C class names (row and column labels).
        title: A caption drawn above the matrix.

    Returns:
        The PNG bytes.
    """
    font = ImageFont.load_default(size=_FONT_SIZE)
    n = len(classes)
    label_w = max(int(font.getlength(c)) for c in classes) + 10
    top = label_w + 22
    footer = "rows: true class, columns: predicted; shade: share of the row"
    width = int(max(label_w + n * _CELL + 10, font.getlength(footer) + 10, font.getlength(title) + 10))
    height = top + n * _CELL + 28
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), title, fill="black", font=font)
    shares = row_shares(confusion)
    for j, name in enumerate(classes):  # column labels, rotated to read bottom-up
        text = Image.new("RGB", (label_w, _CELL), "white")
        ImageDraw.Draw(text).text(
            (label_w - 6 - font.getlength(name), (_CELL - _FONT_SIZE) // 2 - 1), name, fill="black", font=font
        )
        img.paste(text.rotate(90, expand=True), (label_w + j * _CELL, 20))
    for i, name in enumerate(classes):
        y = top + i * _CELL
        draw.text(
            (label_w - 6 - font.getlength(name), y + (_CELL - _FONT_SIZE) // 2 - 1), name, fill="black", font=font
        )
        for j in range(n):
            x = label_w + j * _CELL
            draw.rectangle((x, y, x + _CELL - 1, y + _CELL - 1), fill=shade(shares[i, j]), outline=(200, 200, 200))
            count = str(int(confusion[i, j]))
            colour = "white" if shares[i, j] > 0.55 else "black"
            draw.text(
                (x + (_CELL - font.getlength(count)) / 2, y + (_CELL - _FONT_SIZE) // 2 - 1),
                count,
                fill=colour,
                font=font,
            )
    draw.text((4, top + n * _CELL + 8), footer, fill=(90, 90, 90), font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def curve_png(h: HeadEvaluation) -> bytes:
    """A PNG line chart of precision (blue) and coverage (orange) against the confidence threshold.

    The target precision is a dashed grey line; the chosen abstain threshold, when there is one, a
    vertical red line.
    """
    font = ImageFont.load_default(size=_FONT_SIZE)
    width, height, left, right, top, bottom = 460, 280, 44, 16, 26, 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    pw, ph = width - left - right, height - top - bottom

    def xy(t: float, v: float) -> tuple[float, float]:
        return left + t * pw, top + (1.0 - v) * ph

    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.line([xy(0, v), xy(1, v)], fill=(230, 230, 230))
        draw.text((4, xy(0, v)[1] - 7), f"{v:.2f}", fill="black", font=font)
        draw.line([xy(v, 0), xy(v, 0.02)], fill="black")
        draw.text((xy(v, 0)[0] - 10, top + ph + 4), f"{v:.2f}", fill="black", font=font)
    draw.rectangle((left, top, left + pw, top + ph), outline="black")
    target = h.abstain.target_precision
    for x0 in range(0, pw, 8):
        draw.line([(left + x0, xy(0, target)[1]), (left + min(x0 + 4, pw), xy(0, target)[1])], fill=(120, 120, 120))
    if h.abstain.reached and h.abstain.threshold is not None:
        draw.line([xy(h.abstain.threshold, 0), xy(h.abstain.threshold, 1)], fill=(200, 30, 30), width=2)
    coverage = [xy(p.threshold, p.coverage) for p in h.curve]
    precision = [xy(p.threshold, p.precision) for p in h.curve if p.precision is not None]
    if len(coverage) > 1:
        draw.line(coverage, fill=(230, 120, 20), width=2)
    if len(precision) > 1:
        draw.line(precision, fill=(30, 80, 200), width=2)
    draw.text(
        (left, 6),
        f"{h.head}: precision (blue), coverage (orange); target {target:.2f} (dashed)",
        fill="black",
        font=font,
    )
    draw.text((left + pw // 2 - 60, height - 18), "confidence threshold", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def curve_png_name(head: str) -> str:
    """The file name of a head's precision/coverage chart beside the report."""
    return f"precision_coverage_{head}.png"


def confusion_png_name(head: str) -> str:
    """The file name of a head's confusion-matrix picture beside the report."""
    return f"confusion_{head}.png"
