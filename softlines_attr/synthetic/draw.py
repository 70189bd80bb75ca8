"""Drawing one product image with Pillow: a dress (or skirt, shirt) on a simple mannequin or alone.

Geometry is built in *body units* (about one head height; the figure stands 7.7 units tall, head top
at y=0, y grows downwards, x=0 is the centre line), then mapped to pixels by one affine transform
(scale, small lean, a horizontal squeeze for a turned body, position). What encodes the attributes:

* silhouette: the side profile of the garment (fitted curves, a straight shift, a flared skirt from
  a seamed waist, an empire-waist maxi with tiers, a very full bell gown with a waist band);
* hemline: where the hem falls on the legs (mid-thigh, knee, mid-calf, floor) or a short front over
  a long back panel (high-low);
* neck_style: the top edge of the bodice (the cut, straps, bare shoulders) plus collar, turtleneck
  rolls, a halter band or an off-shoulder ruffle;
* sleeve_type: how far the sleeve runs down the arm (none, cap, short, below the elbow, wrist);
* pattern: the fill (see :mod:`patterns`);
* a marker attribute (unknown to the renderer): badges on the dress whose shape is the class index
  modulo 6 and whose count is the class index divided by 6, plus one, at a slot per attribute.

Nuisance (the paper's Figure 4): background colour or texture, with or without a figure, the
figure's pose, skin or mannequin colour and crop (full body, no head, half leg), ghost-mannequin,
flat-lay or hanger shots, scale, position, lean, image size and aspect. Colour variants of one parent
share the shoot (size, background, pose) and differ in colour and print placement.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from softlines_attr.synthetic import patterns
from softlines_attr.synthetic.patterns import RGB, luminance, mix, shade
from softlines_attr.synthetic.vocab import COLOUR_RGB

log = logging.getLogger(__name__)

Pts = list[tuple[float, float]]

# Body landmarks (units).
SHOULDER_Y = 1.42
WAIST_Y = 2.9
HIP_Y = 3.7
FLOOR_Y = 7.72
HEM_Y = {"mini": 4.45, "knee_length": 5.45, "midi": 6.4, "maxi": 7.58, "high_low": 4.95}
HIGH_LOW_BACK_Y = 6.85
SLEEVE_FRACTION = {"sleeveless": 0.0, "cap": 0.13, "short": 0.36, "three_quarter": 0.74, "long": 1.0}
ARM_POSES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "down": ((1.05, 2.85), (1.12, 4.0)),
    "out": ((1.3, 2.75), (1.58, 3.85)),
    "hip": ((1.58, 2.62), (0.98, 3.4)),
    "up": ((1.6, 2.25), (1.72, 1.15)),
    "flat": ((1.5, 2.45), (2.05, 3.3)),
}
SHOULDER_JOINT = (0.88, 1.5)
SLEEVE_ROOT = (0.82, 1.47)  # sleeves start a little inside the shoulder joint
SKIN = ((241, 205, 180), (226, 186, 156), (198, 150, 114), (160, 112, 78), (118, 80, 56), (88, 60, 45))
MANNEQUIN = ((236, 234, 228), (182, 182, 188), (48, 48, 52))
HAIR = ((30, 22, 18), (70, 45, 25), (120, 80, 40), (200, 170, 110), (15, 15, 15))
MARKER_SLOTS: tuple[tuple[float, float], ...] = ((-0.42, 2.55), (0.42, 2.55), (-0.45, 3.5), (0.45, 3.5),
                                                  (0.0, 3.05), (0.0, 4.0))
MARKER_SHAPES = 6


@dataclass(frozen=True)
class RenderTask:
    """Everything a worker needs to draw and write one product image.

    Attributes:
        index: Product index (seeds the product's generator with the catalog seed).
        parent: Parent index (seeds the shoot: size, background, pose).
        seed: The catalog seed.
        product_type: ``DRESS``, ``SKIRT`` or ``SHIRT``.
        attrs: Native attribute name -> class name (every native attribute, hidden ones too).
        markers: ``(slot, class_index)`` for each marker attribute.
        colour: Index into the colour palette.
        min_size: Smallest ``(width, height)``.
        max_size: Largest ``(width, height)``.
        path: Where to write the image (None: nothing is written).
        kind: ``jpeg``, ``png_alpha``, ``grayscale_jpeg``, ``corrupt_jpeg``, ``missing_image`` or
            ``null_image_uri``.
    """

    index: int
    parent: int
    seed: int
    product_type: str
    attrs: tuple[tuple[str, str], ...]
    markers: tuple[tuple[int, int], ...]
    colour: int
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    path: str | None = None
    kind: str = "jpeg"


@dataclass
class Shoot:
    """Per-parent nuisance: canvas size, background, figure, pose, framing."""

    width: int
    height: int
    figure: bool
    crop: str  # full, no_head, half_leg (figure) / ghost, flat, hanger (no figure)
    arms: tuple[str, str]
    skin: RGB
    hair: RGB | None
    long_hair: bool
    lean_deg: float
    squeeze: float
    fill_frac: float
    pos: tuple[float, float]
    stance: float
    mirror: bool
    background: str
    bg_colours: tuple[RGB, RGB]
    jpeg_quality: int
    tiers: bool
    extra: dict = field(default_factory=dict)


def _choice(rng: np.random.Generator, items: list | tuple, p: list[float] | None = None):
    return items[int(rng.choice(len(items), p=p))]


def sample_shoot(task: RenderTask) -> Shoot:
    """Draw the shoot of the task's parent (shared by its colour variants).

    Args:
        task: The render task.

    Returns:
        The shoot settings.
    """
    rng = np.random.default_rng([task.seed, 11, task.parent])
    (w0, h0), (w1, h1) = task.min_size, task.max_size
    width = int(round(math.exp(rng.uniform(math.log(w0), math.log(max(w1, w0 + 1))))))
    aspect = _choice(rng, [4 / 3, 4 / 3, 4 / 3, 1.25, 1.5, 1.0, 1.2])
    height = int(np.clip(round(width * aspect * rng.uniform(0.97, 1.03)), h0, h1))
    figure = bool(rng.random() < 0.6)
    if figure:
        crop = _choice(rng, ["full", "no_head", "half_leg"], [0.55, 0.2, 0.25])
        arm_r = _choice(rng, ["down", "out", "hip", "up"], [0.45, 0.25, 0.2, 0.1])
        arm_l = arm_r if rng.random() < 0.5 else _choice(rng, ["down", "out", "hip"], [0.5, 0.3, 0.2])
        arms = (arm_r, arm_l)
    else:
        crop = _choice(rng, ["ghost", "flat", "hanger"], [0.5, 0.3, 0.2])
        arms = ("flat", "flat") if crop == "flat" else ("down", "down")
    mannequin = rng.random() < 0.3
    skin = _choice(rng, MANNEQUIN) if mannequin else _choice(rng, SKIN)
    hair = None if mannequin or rng.random() < 0.1 else _choice(rng, HAIR)
    background = _choice(rng, ["studio", "colour", "gradient", "texture", "room", "stripes"],
                         [0.4, 0.15, 0.15, 0.12, 0.1, 0.08])
    if background == "studio":
        g = int(rng.integers(222, 256))
        c1 = (g, g - int(rng.integers(0, 6)), g - int(rng.integers(0, 10)))
        c2 = shade(c1, 0.9)
    else:
        c1 = mix(_choice(rng, COLOUR_RGB), (255, 255, 255), rng.uniform(0.2, 0.75))
        c2 = mix(_choice(rng, COLOUR_RGB), (255, 255, 255), rng.uniform(0.0, 0.6))
    return Shoot(
        width=width,
        height=height,
        figure=figure,
        crop=crop,
        arms=arms,
        skin=skin,
        hair=hair,
        long_hair=bool(rng.random() < 0.45),
        lean_deg=float(rng.uniform(-4, 4) if figure else rng.uniform(-1.5, 1.5)),
        squeeze=float(rng.uniform(0.82, 1.0) if figure else rng.uniform(0.92, 1.0)),
        fill_frac=float(rng.uniform(0.6, 0.94)),
        pos=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
        stance=float(rng.uniform(-0.05, 0.2)),
        mirror=bool(rng.random() < 0.5),
        background=background,
        bg_colours=(c1, c2),
        jpeg_quality=int(rng.integers(55, 97)),
        tiers=bool(rng.random() < 0.6),
    )


# --------------------------------------------------------------------------------------------
# Geometry in body units
# --------------------------------------------------------------------------------------------


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 12) -> Pts:
    t = np.linspace(a0, a1, n)
    return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist()))


def _mirror_x(points: Pts) -> Pts:
    return [(-x, y) for x, y in points]


def _armhole(sleeveless: bool) -> Pts:
    """Right side, from the armpit up to the shoulder tip."""
    if sleeveless:
        return [(0.8, 2.1), (0.68, 1.97), (0.6, 1.72), (0.64, 1.4)]
    return [(0.84, 2.05), (0.93, 1.76), (0.97, 1.44)]


def _neck_opening(neck: str, shoulder_x: float) -> Pts:
    """The neckline from the right neck point to the left one, for shouldered necklines."""
    if neck == "scoop_neck":
        return _arc(0.0, 1.33, 0.44, 0.62, 0.0, math.pi, 14)
    if neck == "v_neck":
        return [(0.3, 1.32), (0.0, 2.15), (-0.3, 1.32)]
    if neck == "square_neck":
        return [(0.4, 1.33), (0.4, 1.88), (-0.4, 1.88), (-0.4, 1.33)]
    if neck == "boat_neck":
        bw = min(0.74, shoulder_x - 0.1)
        return _arc(0.0, 1.37, bw, 0.13, 0.0, math.pi, 12)
    if neck == "high_neck":
        return [(0.24, 1.33), (0.21, 1.0), (-0.21, 1.0), (-0.24, 1.33)]
    if neck == "turtle_neck":
        return [(0.33, 1.37), (0.3, 0.8), (-0.3, 0.8), (-0.33, 1.37)]
    if neck == "collared":
        return [(0.21, 1.3), (0.0, 1.62), (-0.21, 1.3)]
    return _arc(0.0, 1.33, 0.36, 0.35, 0.0, math.pi, 10)  # crew-like fallback


def top_path(neck: str, sleeveless: bool, top_y: float | None = None) -> Pts:
    """The garment's top edge from the right armpit to the left armpit.

    Args:
        neck: The neck style class.
        sleeveless: Whether the shoulders are strap-width (no sleeves).
        top_y: For a skirt, the waistband height (the neck is ignored).

    Returns:
        Points, right armpit first.
    """
    if top_y is not None:
        return [(0.6, top_y), (-0.6, top_y)]
    arm = _armhole(sleeveless)
    tip_x = arm[-1][0]
    if neck == "sweetheart":
        right = _arc(0.4, 1.96, 0.39, 0.27, 0.0, -math.pi, 10)
        return [(0.8, 2.1), (0.79, 1.97)] + right + [(0.0, 2.05)] + _mirror_x(right)[::-1] + [(-0.79, 1.97), (-0.8, 2.1)]
    if neck == "halter":
        return [(0.8, 2.1), (0.56, 1.86), (0.25, 1.12), (-0.25, 1.12), (-0.56, 1.86), (-0.8, 2.1)]
    if neck == "off_the_shoulder":
        return [(0.84, 2.08), (1.2, 2.02), (1.22, 1.72), (0.5, 1.76), (0.0, 1.79), (-0.5, 1.76), (-1.22, 1.72),
                (-1.2, 2.02), (-0.84, 2.08)]
    if neck == "one_shoulder":
        left = _mirror_x(arm)
        return [(0.82, 2.02), (0.7, 1.92), (-0.42, 1.3)] + left[::-1]
    opening = _neck_opening(neck, tip_x)
    return arm + opening + _mirror_x(arm)[::-1]


def side_profile(silhouette: str, hem_y: float, top_y: float | None = None) -> list[tuple[float, float]]:
    """``(y, half_width)`` of the garment's side from the armpit (or waistband) down to ``hem_y``.

    Args:
        silhouette: The silhouette class.
        hem_y: Where the hem falls at the sides.
        top_y: For a skirt, the waistband height.

    Returns:
        Profile points, top first.
    """
    if silhouette == "fitted":
        prof = [(2.1, 0.8), (2.35, 0.78), (WAIST_Y, 0.6), (HIP_Y, 0.88)]
        tail = lambda y: max(0.62, 0.88 - 0.07 * (y - HIP_Y))  # noqa: E731
    elif silhouette == "straight":
        prof = [(2.1, 0.85), (WAIST_Y, 0.87), (HIP_Y, 0.92)]
        tail = lambda y: 0.92 + 0.06 * (y - HIP_Y)  # noqa: E731
    elif silhouette == "maxi":
        prof = [(2.1, 0.8), (2.38, 0.72)]
        tail = lambda y: 0.72 + 0.19 * (y - 2.38)  # noqa: E731
    elif silhouette == "gown":
        prof = [(2.1, 0.8), (2.35, 0.76), (WAIST_Y, 0.55)]
        tail = lambda y: 0.55 + 2.15 * (1 - math.exp(-(y - WAIST_Y) / 0.8))  # noqa: E731
    else:  # fit_and_flare
        prof = [(2.1, 0.8), (2.35, 0.77), (WAIST_Y, 0.56)]
        tail = lambda y: 0.56 + 1.45 * (1 - math.exp(-(y - WAIST_Y) / 1.0))  # noqa: E731
    start = prof[-1][0]
    if top_y is not None:
        prof = [(top_y, 0.6)]
        start = max(top_y, WAIST_Y) if silhouette in ("gown", "fit_and_flare") else top_y
        if silhouette in ("fitted", "straight"):
            prof = [(top_y, 0.6), (HIP_Y, 0.88 if silhouette == "fitted" else 0.92)]
            start = HIP_Y
    prof = [p for p in prof if p[0] < hem_y]
    ys = np.linspace(start, hem_y, 10)[1:]
    return prof + [(float(y), float(tail(y))) for y in ys]


def _hem(hw: float, hem_y: float, flared: bool, high_low: bool, n: int = 15) -> Pts:
    """Hem points from left to right."""
    xs = np.linspace(-hw, hw, n)
    t = xs / hw
    if high_low:
        ys = hem_y + 0.6 * t**2
    else:
        ys = hem_y + (0.1 if flared else 0.05) * (1 - t**2)
        if flared:
            ys = ys + 0.05 * np.abs(np.sin(xs * 4.5))
    return list(zip(xs.tolist(), ys.tolist()))


@dataclass
class Garment:
    """Polygons of one garment, in units."""

    body: Pts
    back: Pts | None
    sleeves: list[tuple[Pts, Pts, Pts]]  # per sleeve: centre line, left edge, right edge
    sleeve_widths: list[list[float]]
    profile: list[tuple[float, float]]
    hem_y: float
    details: dict


def _arm_points(pose: str, side: int) -> Pts:
    elbow, wrist = ARM_POSES[pose]
    return [(side * SHOULDER_JOINT[0], SHOULDER_JOINT[1]), (side * elbow[0], elbow[1]), (side * wrist[0], wrist[1])]


def _along(points: Pts, start: float, stop: float) -> Pts:
    """The sub-polyline between fractions ``start`` and ``stop`` of the polyline's length."""
    p = np.asarray(points, dtype=np.float64)
    seg = np.hypot(*(p[1:] - p[:-1]).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()

    def at(f: float) -> tuple[float, float]:
        i = int(np.clip(np.searchsorted(cum, f) - 1, 0, len(seg) - 1))
        t = (f - cum[i]) / max(cum[i + 1] - cum[i], 1e-9)
        q = p[i] + (p[i + 1] - p[i]) * t
        return float(q[0]), float(q[1])

    inner = [tuple(map(float, p[i])) for i in range(len(p)) if start < cum[i] < stop]
    return [at(start)] + inner + [at(stop)]  # type: ignore[return-value]


def _offset_edges(line: Pts, widths: list[float]) -> tuple[Pts, Pts]:
    p = np.asarray(line, dtype=np.float64)
    d = np.gradient(p, axis=0) if len(p) > 2 else np.repeat((p[1:] - p[:-1]), len(p), axis=0)
    d /= np.maximum(np.hypot(d[:, 0], d[:, 1])[:, None], 1e-9)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) * np.asarray(widths)[:, None]
    return [tuple(q) for q in (p + nrm).tolist()], [tuple(q) for q in (p - nrm).tolist()]  # type: ignore[misc]


def build_garment(product_type: str, attrs: dict[str, str], arms: tuple[str, str], mirror: bool) -> Garment:
    """The garment polygons for a product.

    Args:
        product_type: ``DRESS``, ``SKIRT`` or ``SHIRT``.
        attrs: Native attribute name -> class name.
        arms: Right and left arm pose names.
        mirror: Flip asymmetric details (one-shoulder side).

    Returns:
        The garment geometry.
    """
    sil, hem, neck, sleeve = attrs["silhouette"], attrs["hemline"], attrs["neck_style"], attrs["sleeve_type"]
    details: dict = {"neck": neck, "silhouette": sil, "hemline": hem}
    if product_type == "SKIRT":
        hem_y = HEM_Y["maxi" if sil in ("maxi", "gown") else hem]
        hem = "maxi" if sil in ("maxi", "gown") else hem
        top = top_path(neck, True, top_y=WAIST_Y - 0.05)
        prof = side_profile("fitted" if sil == "fitted" else ("straight" if sil == "straight" else "fit_and_flare"),
                            hem_y, top_y=WAIST_Y - 0.05)
        sleeve = "sleeveless"
    elif product_type == "SHIRT":
        hem_y = 3.95
        hem = "mini"
        top = top_path(neck, sleeve == "sleeveless")
        prof = [(2.1, 0.82), (WAIST_Y, 0.78), (3.95, 0.86)]
    else:
        hem_y = HEM_Y[hem] if hem != "high_low" else (HEM_Y["high_low"] + (0.5 if sil == "gown" else 0.0))
        top = top_path(neck, sleeve == "sleeveless" or neck in ("sweetheart", "halter", "one_shoulder"))
        prof = side_profile(sil, hem_y + (0.6 if hem == "high_low" else 0.0))
    flared = sil in ("fit_and_flare", "gown", "maxi") and product_type != "SHIRT"
    hw_hem = prof[-1][1]
    high_low = hem == "high_low"
    hem_pts = _hem(hw_hem, hem_y, flared, high_low)
    left = [(-hw, y) for y, hw in prof]
    right = [(hw, y) for y, hw in reversed(prof)]
    body = top + left + hem_pts + right
    if neck == "one_shoulder" and mirror:
        body = _mirror_x(body)
    back = None
    if high_low and product_type == "DRESS":
        back_y = FLOOR_Y - 0.15 if sil == "gown" else HIGH_LOW_BACK_Y
        py, pw = [p[0] for p in prof], [p[1] for p in prof]
        y_end = py[-1]
        ys = np.linspace(WAIST_Y + 0.4, back_y, 10)
        ext = [(float(y), float(0.96 * np.interp(y, py, pw)) if y <= y_end
                else float(0.96 * pw[-1] + 0.22 * (y - y_end))) for y in ys]
        back = [(-w, y) for y, w in ext] + _hem(ext[-1][1], back_y, True, False) + [(w, y) for y, w in reversed(ext)]
    sleeves: list[tuple[Pts, Pts, Pts]] = []
    widths: list[list[float]] = []
    frac = SLEEVE_FRACTION[sleeve]
    if frac > 0 and neck not in ("sweetheart", "halter") and product_type != "SKIRT":
        for side, pose in ((1, arms[0]), (-1, arms[1])):
            if neck == "one_shoulder" and (side == 1) != mirror:
                continue  # the bare side of a one-shoulder dress gets no sleeve
            start = 0.17 if neck == "off_the_shoulder" else 0.0
            arm = _arm_points(pose, side)
            arm[0] = (side * SLEEVE_ROOT[0], SLEEVE_ROOT[1])
            line = _along(arm, start, max(frac, start + 0.08))
            n = len(line)
            if sleeve == "cap":
                w = [0.25] * n
            elif sleeve == "short":
                w = list(np.linspace(0.23, 0.21, n))
            elif sleeve == "three_quarter":
                w = list(np.linspace(0.22, 0.19, n))
            else:
                w = list(np.linspace(0.22, 0.16, n))
            e1, e2 = _offset_edges(line, w)
            sleeves.append((line, e1, e2))
            widths.append([float(x) for x in w])
    details.update(sleeve=sleeve, top=top, hw_hem=hw_hem, flared=flared, product_type=product_type)
    return Garment(body=body, back=back, sleeves=sleeves, sleeve_widths=widths, profile=prof, hem_y=hem_y,
                   details=details)


# --------------------------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------------------------


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


def _background(shoot: Shoot, rng: np.random.Generator) -> Image.Image:
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


def _thick_line(draw: ImageDraw.ImageDraw, pts: list[tuple[float, float]], widths: list[float], fill,
                round_start: bool = True, round_end: bool = True) -> None:
    """A polyline of varying half-width, as quads plus round joints (and round ends if asked)."""
    for (x0, y0), (x1, y1), w0, w1 in zip(pts[:-1], pts[1:], widths[:-1], widths[1:]):
        dx, dy = x1 - x0, y1 - y0
        ln = math.hypot(dx, dy) or 1e-9
        nx, ny = -dy / ln, dx / ln
        draw.polygon([(x0 + nx * w0, y0 + ny * w0), (x1 + nx * w1, y1 + ny * w1),
                      (x1 - nx * w1, y1 - ny * w1), (x0 - nx * w0, y0 - ny * w0)], fill=fill)
    for i, ((x, y), w) in enumerate(zip(pts, widths)):
        if (i > 0 or round_start) and (i < len(pts) - 1 or round_end):
            draw.ellipse([x - w, y - w, x + w, y + w], fill=fill)


def _ellipse_pts(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> Pts:
    return _arc(cx, cy, rx, ry, 0, 2 * math.pi, n)


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
        _thick_line(self.draw, px, w, fill)
        if self.fg_draw is not None:
            _thick_line(self.fg_draw, px, w, 255)

    def line(self, pts: Pts, fill: RGB, width: float) -> None:
        self.draw.line(self.tf(pts), fill=fill, width=max(1, int(round(self.tf.length(width)))), joint="curve")


def _draw_figure_back(cv: Canvas, shoot: Shoot) -> None:
    if shoot.hair is not None and shoot.long_hair:
        cv.polygon([(-0.42, 0.35), (0.42, 0.35), (0.5, 1.9), (-0.5, 1.9)], shoot.hair)


def _draw_figure(cv: Canvas, shoot: Shoot, garment: Garment, product_type: str, rng: np.random.Generator) -> None:
    skin = shoot.skin
    st = shoot.stance
    # legs and shoes
    for side in (1, -1):
        leg = [(side * 0.84, 3.75), (side * 0.04, 4.0), (side * (0.13 + st / 2), 5.55), (side * (0.17 + st), 7.45),
               (side * (0.3 + st), 7.45), (side * (0.47 + st / 2), 5.55)]
        cv.polygon(leg, skin)
        shoe = shoot.extra.setdefault("shoe", _choice(rng, [(20, 20, 20), (120, 30, 40), (200, 180, 150), (40, 40, 90)]))
        cv.polygon([(side * (0.14 + st), 7.4), (side * (0.33 + st), 7.4), (side * (0.42 + st), 7.72),
                    (side * (0.1 + st), 7.72)], shoe)
    if product_type == "SHIRT":  # trousers
        denim = shoot.extra.setdefault("denim", _choice(rng, [(40, 60, 100), (30, 30, 34), (190, 180, 160)]))
        for side in (1, -1):
            cv.polygon([(side * 0.88, 3.6), (side * 0.0, 3.6), (side * 0.02, 4.05), (side * (0.12 + st / 2), 5.55),
                        (side * (0.15 + st), 7.4), (side * (0.34 + st), 7.4), (side * (0.5 + st / 2), 5.55)], denim)
    # arms
    for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
        cv.limb(_arm_points(pose, side), [0.17, 0.14, 0.11], skin)
    # torso, neck, head
    torso = [(0.15, 0.85), (0.15, 1.3), (0.84, 1.44), (0.93, 1.62), (0.82, 2.1), (0.78, 2.3), (0.56, WAIST_Y),
             (0.86, HIP_Y), (0.84, 3.9)]
    cv.polygon(torso + _mirror_x(torso)[::-1], skin)
    cv.polygon(_ellipse_pts(0.0, 0.5, 0.36, 0.5), skin)
    if shoot.hair is not None:
        cv.polygon(_arc(0.0, 0.48, 0.4, 0.5, math.pi, 2 * math.pi, 14) + [(0.4, 0.62), (-0.4, 0.62)], shoot.hair)
    if product_type == "SKIRT":  # a plain top
        tee = shoot.extra.setdefault("tee", _choice(rng, [(245, 245, 245), (25, 25, 28), (150, 150, 155)]))
        top = [(0.2, 1.3), (0.92, 1.44), (0.84, 2.1), (0.78, 2.3), (0.6, WAIST_Y)]
        cv.polygon(top + _mirror_x(top)[::-1], tee)
        for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
            cv.limb(_along(_arm_points(pose, side), 0.0, 0.3), [0.22, 0.21], tee)


def _draw_forearms(cv: Canvas, shoot: Shoot, sleeve_frac: float) -> None:
    """Redraw the bare lower arms and the hands over the garment (a hand on the hip sits on the skirt)."""
    start = max(sleeve_frac, 0.45)
    for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
        arm = _arm_points(pose, side)
        if start < 0.99:
            part = _along(arm, start, 1.0)
            cv.limb(part, list(np.linspace(0.14 if start < 0.54 else 0.13, 0.11, len(part))), shoot.skin)
        (ex, ey), (wx, wy) = arm[1], arm[2]
        dx, dy = wx - ex, wy - ey
        ln = math.hypot(dx, dy)
        hx, hy = wx + dx / ln * 0.15, wy + dy / ln * 0.15
        cv.polygon(_ellipse_pts(hx, hy, 0.12, 0.16, 12), shoot.skin)


def _draw_hanger(cv: Canvas, rng: np.random.Generator) -> None:
    colour = _choice(rng, [(120, 80, 45), (20, 20, 20), (200, 200, 205)])
    cv.line(_arc(0.0, 0.72, 0.14, 0.16, -math.pi * 1.1, 0.2, 10), colour, 0.04)
    cv.line([(0.0, 0.88), (0.0, 1.08)], colour, 0.05)
    cv.polygon([(0.0, 1.02), (1.0, 1.4), (0.98, 1.5), (0.0, 1.14), (-0.98, 1.5), (-1.0, 1.4)], colour)


def _paste_pattern(cv: Canvas, polys: list[Pts], limbs: list[tuple[Pts, list[float]]], name: str, base: RGB,
                   rng: np.random.Generator, darken: float = 1.0) -> None:
    """Fill the union of polygons and thick lines with the pattern through a mask."""
    mask = Image.new("L", cv.image.size, 0)
    md = ImageDraw.Draw(mask)
    for poly in polys:
        md.polygon(cv.tf(poly), fill=255)
    for line, widths in limbs:
        _thick_line(md, cv.tf(line), [cv.tf.length(w) for w in widths], 255, round_start=False, round_end=False)
    box = mask.getbbox()
    if box is None:
        return
    fill = patterns.fill(name, box[2] - box[0], box[3] - box[1], cv.tf.s, base, rng)
    if darken != 1.0:
        fill = fill.point(lambda v: int(v * darken))
    cv.image.paste(fill, box, mask.crop(box))
    if cv.fg is not None:
        cv.fg.paste(255, box, mask.crop(box))


def _draw_details(cv: Canvas, g: Garment, base: RGB, rng: np.random.Generator) -> None:
    det = g.details
    line_col = shade(base, 0.55) if luminance(base) > 60 else shade(base, 1.6)
    lw = 0.035
    sil, neck, pt = det["silhouette"], det["neck"], det["product_type"]
    if pt != "SHIRT":
        if sil in ("fit_and_flare", "gown") or (pt == "SKIRT"):
            y = WAIST_Y if pt != "SKIRT" else WAIST_Y - 0.05
            w = float(np.interp(y, [p[0] for p in g.profile], [p[1] for p in g.profile]))
            if sil == "gown" and pt == "DRESS":
                cv.polygon([(-w, y - 0.07), (w, y - 0.07), (w * 1.02, y + 0.09), (-w * 1.02, y + 0.09)],
                           shade(base, 0.7))
            else:
                cv.line([(-w, y), (w, y)], line_col, lw)
        if sil == "maxi" and pt == "DRESS":
            cv.line([(-0.72, 2.38), (0.72, 2.38)], line_col, lw)
            if det.get("tiers", False):
                for ty in (4.4, 6.0):
                    w = float(np.interp(ty, [p[0] for p in g.profile], [p[1] for p in g.profile]))
                    cv.line([(-w, ty), (w, ty)], line_col, lw * 0.8)
        if det["flared"]:
            y0 = WAIST_Y + 0.15 if sil != "maxi" else 2.55
            w0 = float(np.interp(y0, [p[0] for p in g.profile], [p[1] for p in g.profile]))
            for f in (-0.6, -0.25, 0.2, 0.55):
                cv.line([(f * w0, y0), (f * det["hw_hem"] * 0.95, g.hem_y - 0.05)], line_col, lw * 0.6)
    if pt == "SKIRT":
        return
    if neck == "turtle_neck":
        for ty in (0.95, 1.1, 1.24):
            cv.line([(-0.31, ty), (0.31, ty)], line_col, lw)
    elif neck == "high_neck":
        cv.line([(-0.21, 1.02), (0.21, 1.02)], line_col, lw)
    elif neck == "halter":
        cv.polygon([(-0.27, 1.06), (0.27, 1.06), (0.27, 1.18), (-0.27, 1.18)], shade(base, 0.7))
    elif neck == "off_the_shoulder":
        xs = np.linspace(-1.2, 1.2, 25)
        wave = [(float(x), 1.98 + 0.05 * math.sin(x * 14)) for x in xs]
        band = [(-1.22, 1.72), (1.22, 1.72)] + wave[::-1]
        cv.polygon(band, shade(base, 1.2) if luminance(base) < 170 else shade(base, 0.82))
        cv.line(wave, line_col, lw)
    elif neck == "collared":
        collar = det.setdefault("collar", (250, 250, 248) if luminance(base) < 200 else (30, 30, 30))
        flap = [(0.04, 1.6), (0.24, 1.26), (0.5, 1.38), (0.36, 1.72)]
        cv.polygon(flap, collar, line_col, lw * 0.7)
        cv.polygon(_mirror_x(flap), collar, line_col, lw * 0.7)
        cv.line([(0.0, 1.62), (0.0, 2.7 if pt == "DRESS" else 3.9)], line_col, lw * 0.7)
        for by in (1.85, 2.15, 2.45):
            cv.polygon(_ellipse_pts(0.06, by, 0.035, 0.035, 8), line_col)


def _draw_markers(cv: Canvas, markers: tuple[tuple[int, int], ...], hem_y: float) -> None:
    """Badges: shape = class % 6, count = class // 6 + 1, one slot per marker attribute."""
    for slot, cls in markers:
        sx, sy = MARKER_SLOTS[slot % len(MARKER_SLOTS)]
        sy += 0.55 * (slot // len(MARKER_SLOTS))
        sy = min(sy, hem_y - 0.25)
        shape, count = cls % MARKER_SHAPES, cls // MARKER_SHAPES + 1
        r = 0.12
        for j in range(count):
            cx = sx + (j - (count - 1) / 2) * 0.3
            if shape == 0:
                pts = _ellipse_pts(cx, sy, r, r, 16)
            elif shape == 1:
                pts = [(cx - r, sy - r), (cx + r, sy - r), (cx + r, sy + r), (cx - r, sy + r)]
            elif shape == 2:
                pts = [(cx, sy - r * 1.15), (cx + r * 1.1, sy + r * 0.85), (cx - r * 1.1, sy + r * 0.85)]
            elif shape == 3:
                pts = [(cx, sy - r * 1.3), (cx + r, sy), (cx, sy + r * 1.3), (cx - r, sy)]
            elif shape == 4:
                pts = []
                for k in range(10):
                    a = -math.pi / 2 + k * math.pi / 5
                    rr = r * 1.25 if k % 2 == 0 else r * 0.5
                    pts.append((cx + rr * math.cos(a), sy + rr * math.sin(a)))
            else:
                t = r * 0.38
                pts = [(cx - t, sy - r), (cx + t, sy - r), (cx + t, sy - t), (cx + r, sy - t), (cx + r, sy + t),
                       (cx + t, sy + t), (cx + t, sy + r), (cx - t, sy + r), (cx - t, sy + t), (cx - r, sy + t),
                       (cx - r, sy - t), (cx - t, sy - t)]
            cv.polygon(pts, (252, 252, 252), (10, 10, 10), 0.03)


def _frame(shoot: Shoot, g: Garment, rng: np.random.Generator) -> Transform:
    """Scale and place the content in the canvas (with crops for the figure shots)."""
    w, h = shoot.width, shoot.height
    xs = [x for x, _ in g.body] + [x for s in g.sleeves for x, _ in s[1] + s[2]]
    ys = [y for _, y in g.body] + ([y for _, y in g.back] if g.back else [])
    if shoot.figure:
        top, bottom = 0.0, FLOOR_Y
        half_w = max(max(abs(x) for x in xs), 1.9 if "up" in shoot.arms or "out" in shoot.arms else 1.5)
        if shoot.crop == "no_head":
            top = rng.uniform(0.75, 1.0)
        elif shoot.crop == "half_leg":
            bottom = min(FLOOR_Y, max(ys) + rng.uniform(0.35, 1.2))
    else:
        top = min(y for _, y in g.body) - (0.75 if shoot.crop == "hanger" else 0.15)
        bottom = max(ys) + 0.1
        half_w = max(abs(x) for x in xs) + 0.1
    content_h = bottom - top
    crop_top = shoot.figure and shoot.crop == "no_head"
    crop_bottom = shoot.figure and shoot.crop == "half_leg"
    frac = 1.0 if (crop_top or crop_bottom) else shoot.fill_frac
    scale = frac * h / content_h
    scale = min(scale, 0.96 * w / (2 * half_w * shoot.squeeze))
    slack_y = h - scale * content_h
    if crop_top:
        y_top_px = 0.0
    elif crop_bottom:
        y_top_px = slack_y
    else:
        y_top_px = slack_y * (0.5 + 0.4 * shoot.pos[1])
    slack_x = w - scale * 2 * half_w * shoot.squeeze
    cx = w / 2 + 0.45 * slack_x * shoot.pos[0]
    pivot_y = (top + bottom) / 2
    origin = (cx, y_top_px + scale * (pivot_y - top))
    return Transform(scale, shoot.squeeze, shoot.lean_deg, pivot_y, origin)


def render(task: RenderTask, shoot: Shoot | None = None) -> tuple[Image.Image, Image.Image | None]:
    """Draw one product image.

    Args:
        task: What to draw.
        shoot: The parent's shoot, if the caller already sampled it (:func:`sample_shoot`).

    Returns:
        ``(image, alpha)``: the RGB image, and for ``png_alpha`` tasks a foreground mask (else None).
    """
    shoot = shoot if shoot is not None else sample_shoot(task)
    rng = np.random.default_rng([task.seed, 13, task.index])
    attrs = dict(task.attrs)
    base = COLOUR_RGB[task.colour]
    garment = build_garment(task.product_type, attrs, shoot.arms, shoot.mirror)
    garment.details["tiers"] = shoot.tiers
    tf = _frame(shoot, garment, rng)
    img = _background(shoot, rng)
    cv = Canvas(img, tf, alpha=task.kind == "png_alpha")
    if shoot.figure:
        floor = shade(shoot.bg_colours[0], 0.8)
        if shoot.crop != "half_leg":
            (x0, y0), (x1, y1) = tf([(-0.9, FLOOR_Y - 0.08), (0.9, FLOOR_Y + 0.1)])
            cv.draw.ellipse([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=floor)
        _draw_figure_back(cv, shoot)
        _draw_figure(cv, shoot, garment, task.product_type, rng)
    elif shoot.crop == "hanger":
        _draw_hanger(cv, rng)
    pattern = attrs["pattern"]
    if garment.back is not None:
        _paste_pattern(cv, [garment.back], [], pattern, base, rng, darken=0.72)
        cv.line(garment.back[len(garment.back) // 3: 2 * len(garment.back) // 3], shade(base, 0.45), 0.03)
    limbs = [(line, w) for (line, _, _), w in zip(garment.sleeves, garment.sleeve_widths)]
    _paste_pattern(cv, [garment.body], limbs, pattern, base, rng)
    edge = shade(base, 0.5) if luminance(base) > 60 else shade(base, 1.8)
    cv.line(garment.body + garment.body[:1], edge, 0.03)
    for line, e1, e2 in garment.sleeves:
        cv.line(e1, edge, 0.03)
        cv.line(e2, edge, 0.03)
        cv.line([e1[-1], e2[-1]], edge, 0.04)
    _draw_details(cv, garment, base, rng)
    if task.markers and task.product_type == "DRESS":
        _draw_markers(cv, task.markers, garment.hem_y)
    if shoot.figure:
        frac = SLEEVE_FRACTION[garment.details["sleeve"]] if garment.sleeves else 0.0
        _draw_forearms(cv, shoot, frac)
    return cv.image, cv.fg


def encode(task: RenderTask, image: Image.Image, alpha: Image.Image | None, quality: int | None = None) -> bytes:
    """Encode the image as the task's kind asks (JPEG, grayscale JPEG, RGBA PNG, truncated JPEG).

    Args:
        task: The render task (``kind`` and seeds).
        image: The RGB image.
        alpha: The foreground mask for ``png_alpha``.
        quality: The JPEG quality (default: the shoot's).

    Returns:
        The file bytes.
    """
    import io

    shoot_quality = quality if quality is not None else sample_shoot(task).jpeg_quality
    buf = io.BytesIO()
    if task.kind == "png_alpha":
        rgba = image.copy()
        rgba.putalpha(alpha if alpha is not None else Image.new("L", image.size, 255))
        rgba.save(buf, format="PNG", optimize=False, compress_level=6)
    elif task.kind == "grayscale_jpeg":
        image.convert("L").save(buf, format="JPEG", quality=shoot_quality)
    else:
        image.save(buf, format="JPEG", quality=shoot_quality)
    data = buf.getvalue()
    if task.kind == "corrupt_jpeg":
        data = data[: max(64, int(len(data) * 0.4))]
    return data
