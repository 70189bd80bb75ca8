"""Pixels: the units-to-pixels transform, the canvas (with its foreground mask), backgrounds, thick lines."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from softlines_attr.synthetic.garment import Pts
from softlines_attr.synthetic.patterns import RGB, mix, shade
from softlines_attr.synthetic.shoot import Shoot


class Transform:
    """Units -> pixels: scale, horizontal squeeze, lean about a pivot, translation."""

    def __init__(self, scale: float, squeeze: float, lean_deg: float, pivot_y: float, origin: tuple[float, float]):
        self.s = scale
        self.sq = squeeze
        a = math.radians(lean_deg)
        self.ca, self.sa = math.cos(a), math.sin(a)
        self.py = pivot_y
        self.ox, self.oy = origin

    def __call__(self, pts: Pts) -> list[tuple[float, float]]:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        x = p[:, 0] * self.sq
        y = p[:, 1] - self.py
        px = self.ox + self.s * (x * self.ca - y * self.sa)
        py = self.oy + self.s * (x * self.sa + y * self.ca)
        return list(zip(px.tolist(), py.tolist()))

    def length(self, units: float) -> float:
        return units * self.s


def background(shoot: Shoot, rng: np.random.Generator) -> Image.Image:
    """The shoot's background as a fresh RGB image of the shoot's size."""
    w, h = shoot.width, shoot.height
    c1, c2 = shoot.bg_colours
    kind = shoot.background
    if kind in ("studio", "colour"):
        return Image.new("RGB", (w, h), c1)
    if kind == "gradient":
        t = np.linspace(0, 1, h)[:, None, None]
        col = (np.asarray(c1, float) * (1 - t) + np.asarray(c2, float) * t).astype(np.uint8)
        return Image.fromarray(col, "RGB").resize((w, h), Image.NEAREST)
    if kind == "texture":
        small = rng.normal(0, 1, (max(2, h // 24), max(2, w // 24), 1))
        base = np.asarray(c1, float)[None, None, :] + 18 * small
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
        return img.resize((w, h), Image.BICUBIC)
    if kind == "stripes":
        period = max(4, int(w * rng.uniform(0.04, 0.12)))
        line = np.zeros((1, period, 3), np.uint8)
        line[:] = c1
        line[:, : period // 2] = mix(c1, c2, 0.35)
        reps = w // period + 1
        return Image.fromarray(np.tile(line, (1, reps, 1))[:, :w], "RGB").resize((w, h), Image.NEAREST)
    # room: a wall and a floor
    img = Image.new("RGB", (w, h), c1)
    ImageDraw.Draw(img).rectangle([0, int(h * rng.uniform(0.7, 0.88)), w, h], fill=shade(c2, 0.85))
    return img


def thick_line(
    draw: ImageDraw.ImageDraw,
    pts: list[tuple[float, float]],
    widths: list[float],
    fill,
    round_start: bool = True,
    round_end: bool = True,
) -> None:
    """A polyline of varying half-width, as quads plus round joints (and round ends if asked)."""
    for (x0, y0), (x1, y1), w0, w1 in zip(pts[:-1], pts[1:], widths[:-1], widths[1:]):
        dx, dy = x1 - x0, y1 - y0
        ln = math.hypot(dx, dy) or 1e-9
        nx, ny = -dy / ln, dx / ln
        draw.polygon(
            [
                (x0 + nx * w0, y0 + ny * w0),
                (x1 + nx * w1, y1 + ny * w1),
                (x1 - nx * w1, y1 - ny * w1),
                (x0 - nx * w0, y0 - ny * w0),
            ],
            fill=fill,
        )
    for i, ((x, y), w) in enumerate(zip(pts, widths)):
        if (i > 0 or round_start) and (i < len(pts) - 1 or round_end):
            draw.ellipse([x - w, y - w, x + w, y + w], fill=fill)


class Canvas:
    """The image being drawn plus an optional foreground mask (for the PNG-with-alpha product)."""

    def __init__(self, image: Image.Image, tf: Transform, alpha: bool):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.tf = tf
        self.fg = Image.new("L", image.size, 0) if alpha else None
        self.fg_draw = ImageDraw.Draw(self.fg) if self.fg is not None else None

    def polygon(self, pts: Pts, fill: RGB, outline: RGB | None = None, width: float = 0.0) -> None:
        px = self.tf(pts)
        self.draw.polygon(px, fill=fill)
        if outline is not None and width > 0:
            self.draw.line(px + px[:1], fill=outline, width=max(1, int(round(self.tf.length(width)))), joint="curve")
        if self.fg_draw is not None:
            self.fg_draw.polygon(px, fill=255)

    def limb(self, pts: Pts, widths: list[float], fill: RGB) -> None:
        px = self.tf(pts)
        w = [self.tf.length(x) for x in widths]
        thick_line(self.draw, px, w, fill)
        if self.fg_draw is not None:
            thick_line(self.fg_draw, px, w, 255)

    def line(self, pts: Pts, fill: RGB, width: float) -> None:
        self.draw.line(self.tf(pts), fill=fill, width=max(1, int(round(self.tf.length(width)))), joint="curve")
