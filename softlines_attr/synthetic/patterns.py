"""Fabric patterns: a small tile drawn with ImageDraw or numpy, tiled over the garment's box.

Every function returns an RGB image of exactly the requested size; the caller pastes it through the
garment mask. Sizes are given in *units* (the body unit of :mod:`garment`, about a head's height) so
that a pattern keeps its size relative to the dress whatever the image size. No Python loop runs
per pixel: tiles are drawn with ImageDraw shapes or computed with numpy and repeated with
``np.tile``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from softlines_attr.synthetic.vocab import COLOUR_RGB

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]


def luminance(rgb: RGB) -> float:
    """Perceived brightness 0..255."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def shade(rgb: RGB, factor: float) -> RGB:
    """``factor`` < 1 darkens, > 1 lightens towards white."""
    if factor <= 1.0:
        # three channels in, three out: an RGB triple
        return tuple(int(c * factor) for c in rgb)  # type: ignore[return-value]
    t = min(factor - 1.0, 1.0)
    # three channels in, three out: an RGB triple
    return tuple(int(c + (255 - c) * t) for c in rgb)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend ``a*(1-t) + b*t``."""
    # three channels in, three out: an RGB triple
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def contrast_colour(base: RGB, rng: np.random.Generator, min_diff: float = 70.0) -> RGB:
    """A palette colour (or white/black) clearly lighter or darker than ``base``."""
    cands = [c for c in COLOUR_RGB if abs(luminance(c) - luminance(base)) >= min_diff]
    if not cands:
        return (250, 250, 250) if luminance(base) < 128 else (20, 20, 20)
    return cands[int(rng.integers(len(cands)))]


def _tile_to(tile: np.ndarray, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Repeat an (h, w, 3) tile over ``width`` x ``height`` from a random phase."""
    th, tw = tile.shape[:2]
    oy, ox = int(rng.integers(th)), int(rng.integers(tw))
    reps_y = (height + oy) // th + 1
    reps_x = (width + ox) // tw + 1
    big = np.tile(tile, (reps_y, reps_x, 1))[oy : oy + height, ox : ox + width]
    return Image.fromarray(np.ascontiguousarray(big), "RGB")


def _wrapped(draw_fn: Callable[[float, float], None], x: float, y: float, size: int) -> None:
    """Draw a motif at (x, y) and at its wrapped copies so the tile repeats seamlessly."""
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            draw_fn(x + dx, y + dy)


def _tile_px(units: float, unit_px: float, minimum: int = 6) -> int:
    return max(minimum, int(round(units * unit_px)))


def solid(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Plain colour."""
    return Image.new("RGB", (width, height), base)


def floral(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Small five-petal flowers with a contrasting centre and leaves."""
    size = _tile_px(rng.uniform(1.0, 1.5), unit_px, 12)
    petal = contrast_colour(base, rng)
    centre = contrast_colour(petal, rng, 50)
    leaf = (60, 120, 60) if abs(luminance((60, 120, 60)) - luminance(base)) > 30 else (200, 230, 200)
    tile = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(tile)
    n_flowers = int(rng.integers(3, 6))
    for _ in range(n_flowers):
        cx, cy = rng.uniform(0, size, 2)
        r = size * rng.uniform(0.07, 0.11)
        rot = rng.uniform(0, 2 * math.pi)
        col = petal if rng.random() < 0.7 else centre

        def one(x: float, y: float, r: float = r, rot: float = rot, col: RGB = col) -> None:
            lx, ly = x + 2.2 * r * math.cos(rot + 2.5), y + 2.2 * r * math.sin(rot + 2.5)
            d.ellipse([lx - r * 0.9, ly - r * 0.5, lx + r * 0.9, ly + r * 0.5], fill=leaf)
            for k in range(5):
                a = rot + k * 2 * math.pi / 5
                px, py = x + r * math.cos(a), y + r * math.sin(a)
                d.ellipse([px - r * 0.75, py - r * 0.75, px + r * 0.75, py + r * 0.75], fill=col)
            d.ellipse([x - r * 0.5, y - r * 0.5, x + r * 0.5, y + r * 0.5], fill=centre if col == petal else petal)

        _wrapped(one, cx, cy, size)
    return _tile_to(np.asarray(tile), width, height, rng)


def stripe(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Straight regular stripes, horizontal or vertical, sometimes with a thin third colour."""
    period = _tile_px(rng.uniform(0.28, 0.6), unit_px, 6)
    other = contrast_colour(base, rng)
    frac = rng.uniform(0.3, 0.55)
    line = np.zeros((period, 3), dtype=np.uint8)
    line[:] = base
    line[: max(1, int(period * frac))] = other
    if rng.random() < 0.3 and period >= 10:
        line[int(period * 0.75) : int(period * 0.75) + max(1, period // 10)] = contrast_colour(other, rng, 40)
    if rng.random() < 0.6:  # horizontal
        tile = np.repeat(line[:, None, :], 4, axis=1)
    else:
        tile = np.repeat(line[None, :, :], 4, axis=0)
    return _tile_to(tile, width, height, rng)


def plaid(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Tartan: crossing warp and weft bands blended, with thin over-check lines."""
    period = _tile_px(rng.uniform(0.7, 1.2), unit_px, 12)
    c1 = contrast_colour(base, rng)
    c2 = contrast_colour(c1, rng, 40)
    bands = np.zeros((period, 3), dtype=np.float64)
    bands[:] = base
    bands[: int(period * 0.4)] = c1
    bands[int(period * 0.55) : int(period * 0.65)] = c2
    thin = max(1, period // 16)
    bands[int(period * 0.8) : int(period * 0.8) + thin] = (245, 245, 240) if luminance(base) < 150 else (30, 30, 30)
    tile = (bands[:, None, :] + bands[None, :, :]) / 2.0
    return _tile_to(tile.astype(np.uint8), width, height, rng)


def polka_dot(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Round dots on an offset grid."""
    size = _tile_px(rng.uniform(0.4, 0.7), unit_px, 8)
    dot = contrast_colour(base, rng, 90)
    r = size * rng.uniform(0.12, 0.2)
    tile = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(tile)
    for cx, cy in ((size * 0.25, size * 0.25), (size * 0.75, size * 0.75)):
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=dot)
    return _tile_to(np.asarray(tile), width, height, rng)


def animal(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Leopard rosettes (broken rings around a darker centre) or zebra stripes (wavy, tapering)."""
    size = _tile_px(rng.uniform(1.0, 1.4), unit_px, 16)
    ground = mix(base, (205, 160, 95), 0.55) if rng.random() < 0.7 else shade(base, 1.25)
    dark = (25, 18, 14) if luminance(ground) > 70 else (235, 225, 200)
    if rng.random() < 0.6:
        tile = Image.new("RGB", (size, size), ground)
        d = ImageDraw.Draw(tile)
        inner = shade(ground, 0.75)
        for _ in range(int(rng.integers(10, 15))):
            cx, cy = rng.uniform(0, size, 2)
            rr = size * rng.uniform(0.07, 0.1)
            blobs = [(rng.uniform(0, 2 * math.pi), rng.uniform(0.6, 1.0)) for _ in range(int(rng.integers(3, 6)))]

            def rosette(x: float, y: float, rr: float = rr, blobs: list = blobs) -> None:
                d.ellipse([x - rr, y - rr * 0.85, x + rr, y + rr * 0.85], fill=inner)
                for a, s in blobs:
                    bx, by = x + rr * math.cos(a), y + rr * 0.85 * math.sin(a)
                    w = rr * 0.45 * s
                    d.ellipse([bx - w, by - w * 0.7, bx + w, by + w * 0.7], fill=dark)

            _wrapped(rosette, cx, cy, size)
        return _tile_to(np.asarray(tile), width, height, rng)
    yy, xx = np.mgrid[0:size, 0:size] / size
    k = int(rng.integers(4, 7))
    wave = np.sin(2 * np.pi * (k * xx + 0.35 * np.sin(2 * np.pi * 2 * yy) + 0.12 * np.sin(2 * np.pi * 3 * (xx + yy))))
    thr = 0.15 + 0.35 * np.sin(2 * np.pi * yy) ** 2
    tile = np.where((wave > thr)[..., None], np.array(dark, np.uint8), np.array(ground, np.uint8))
    return _tile_to(tile.astype(np.uint8), width, height, rng)


def geometric(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Hard-edged repeats: triangles, harlequin diamonds, chevrons or hexagon outlines."""
    size = _tile_px(rng.uniform(0.5, 0.8), unit_px, 10)
    c1 = contrast_colour(base, rng)
    c2 = contrast_colour(c1, rng, 40)
    tile = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(tile)
    s = size
    style = int(rng.integers(4))
    if style == 0:  # triangles
        d.polygon([(0, s), (s / 2, 0), (s, s)], fill=c1)
        d.polygon([(s / 4, s), (s / 2, s / 2), (3 * s / 4, s)], fill=c2)
    elif style == 1:  # diamonds
        d.polygon([(s / 2, 0), (s, s / 2), (s / 2, s), (0, s / 2)], fill=c1)
        d.polygon([(s / 2, s / 4), (3 * s / 4, s / 2), (s / 2, 3 * s / 4), (s / 4, s / 2)], fill=c2)
    elif style == 2:  # chevrons
        w = s / 4
        for off in (0, s / 2):
            d.polygon([(0, off), (s / 2, off + w), (s, off), (s, off + w), (s / 2, off + 2 * w), (0, off + w)], fill=c1)
    else:  # hexagon-ish outlines with a filled centre square
        lw = max(1, s // 12)
        pts = [
            (s * 0.25, 0.05 * s),
            (s * 0.75, 0.05 * s),
            (s * 0.98, s / 2),
            (s * 0.75, 0.95 * s),
            (s * 0.25, 0.95 * s),
            (s * 0.02, s / 2),
        ]
        d.line(pts + [pts[0]], fill=c1, width=lw)
        d.rectangle([s * 0.4, s * 0.4, s * 0.6, s * 0.6], fill=c2)
    return _tile_to(np.asarray(tile), width, height, rng)


def ombre(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """A smooth gradient over the whole garment from the base colour to a lighter, darker or other hue."""
    roll = rng.random()
    if roll < 0.4:
        other = shade(base, 1.75) if luminance(base) < 150 else shade(base, 0.3)
    else:
        other = contrast_colour(base, rng, 60)
    t = np.linspace(0.0, 1.0, height)[:, None] ** rng.uniform(0.8, 1.3)
    if rng.random() < 0.5:
        t = t[::-1]
    col = np.asarray(base, np.float64) * (1 - t) + np.asarray(other, np.float64) * t
    img = Image.fromarray(np.ascontiguousarray(col[:, None, :].astype(np.uint8)), "RGB")
    return img.resize((width, height), Image.NEAREST)


def tie_dye(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Spiral or bullseye bands of 3-4 colours with soft wobbly edges, computed at 1/4 size."""
    sw, sh = max(4, width // 4), max(4, height // 4)
    cols = [np.asarray(base, np.float64)]
    cur = base
    for _ in range(int(rng.integers(2, 4))):
        cur = contrast_colour(cur, rng, 50)
        cols.append(np.asarray(cur, np.float64))
    pal = np.stack(cols)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float64)
    cx, cy = sw * rng.uniform(0.35, 0.65), sh * rng.uniform(0.25, 0.6)
    scale = max(unit_px / 4.0, 1.0)
    r = np.hypot(xx - cx, yy - cy) / scale
    ang = np.arctan2(yy - cy, xx - cx)
    arms = int(rng.integers(0, 4))  # 0 = bullseye
    wob = 0.15 * np.sin(ang * 7 + r * 1.3) + 0.1 * np.sin(xx / scale * 2.1 + yy / scale * 1.7)
    v = (r / rng.uniform(0.35, 0.6) + arms * ang / (2 * np.pi) + wob) % len(pal)
    i0 = np.floor(v).astype(np.int64) % len(pal)
    i1 = (i0 + 1) % len(pal)
    f = np.clip((v - np.floor(v) - 0.75) / 0.25, 0, 1)[..., None]
    img = pal[i0] * (1 - f) + pal[i1] * f
    small = Image.fromarray(img.astype(np.uint8), "RGB")
    return small.resize((width, height), Image.BILINEAR)


def _teardrop(cx: float, cy: float, r: float, rot: float, bend: float) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    x = np.cos(t)
    y = np.sin(t) * np.abs(np.sin(t / 2)) ** 1.4 * 0.8
    y = y + bend * (x + 1) ** 2 * 0.25
    ca, sa = math.cos(rot), math.sin(rot)
    px = cx + r * (x * ca - y * sa)
    py = cy + r * (x * sa + y * ca)
    return list(zip(px.tolist(), py.tolist()))


def paisley(width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """Paisley: bent teardrops with an inner teardrop and dots."""
    size = _tile_px(rng.uniform(1.0, 1.4), unit_px, 16)
    c1 = contrast_colour(base, rng)
    c2 = contrast_colour(c1, rng, 50)
    tile = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(tile)
    for k in range(3):
        cx, cy = (
            size * (0.25 + 0.5 * (k % 2)) + rng.uniform(-0.05, 0.05) * size,
            size * (0.2 + 0.33 * k) + rng.uniform(-0.05, 0.05) * size,
        )
        r = size * rng.uniform(0.15, 0.2)
        rot = rng.uniform(0, 2 * math.pi)
        bend = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.9)

        def motif(x: float, y: float, r: float = r, rot: float = rot, bend: float = bend) -> None:
            d.polygon(_teardrop(x, y, r, rot, bend), fill=c1)
            d.polygon(_teardrop(x, y, r * 0.55, rot, bend), fill=c2)
            dr = max(1.0, r * 0.1)
            d.ellipse([x - dr, y - dr, x + dr, y + dr], fill=base)

        _wrapped(motif, cx, cy, size)
    return _tile_to(np.asarray(tile), width, height, rng)


PATTERNS: dict[str, Callable[[int, int, float, RGB, np.random.Generator], Image.Image]] = {
    "solid": solid,
    "floral": floral,
    "stripe": stripe,
    "plaid": plaid,
    "polka_dot": polka_dot,
    "animal": animal,
    "geometric": geometric,
    "ombre": ombre,
    "tie_dye": tie_dye,
    "paisley": paisley,
}


def fill(name: str, width: int, height: int, unit_px: float, base: RGB, rng: np.random.Generator) -> Image.Image:
    """An RGB image of ``width`` x ``height`` filled with pattern ``name``.

    Args:
        name: One of :data:`PATTERNS`.
        width: Width in pixels (>= 1).
        height: Height in pixels (>= 1).
        unit_px: Pixels per body unit (sets the motif size).
        base: The garment's colour.
        rng: The product's random generator.

    Returns:
        The filled image.

    Raises:
        KeyError: for an unknown pattern name.
    """
    return PATTERNS[name](max(1, width), max(1, height), unit_px, base, rng)
