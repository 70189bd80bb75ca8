"""Drawing one product image with Pillow: a dress (or skirt, shirt) on a simple mannequin or alone.

:mod:`shoot` samples the nuisance of the image (shared by a parent's colour variants), :mod:`garment`
builds the garment's polygons in body units from its attributes, :mod:`canvas` maps them to pixels
by one affine transform (scale, small lean, a horizontal squeeze for a turned body, position). This
module draws: the figure, hanger or nothing, the garment filled with its pattern (:mod:`patterns`),
its details (waist seams, tiers, flare lines, collar, turtleneck rolls, halter band, off-shoulder
ruffle), and a marker attribute (unknown to the renderer) as badges on the dress whose shape is the
class index modulo 6 and whose count is the class index divided by 6, plus one, at a slot per
attribute; then encodes the image as the task asks.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from softlines_attr.synthetic import patterns
from softlines_attr.synthetic.canvas import Canvas, Transform, background, thick_line
from softlines_attr.synthetic.garment import (
    FLOOR_Y,
    HIP_Y,
    SLEEVE_FRACTION,
    WAIST_Y,
    Garment,
    Pts,
    along,
    arc,
    arm_points,
    build_garment,
    ellipse_pts,
    mirror_x,
)
from softlines_attr.synthetic.patterns import RGB, luminance, shade
from softlines_attr.synthetic.shoot import RenderTask, Shoot, choice, sample_shoot
from softlines_attr.synthetic.vocab import COLOUR_RGB

MARKER_SLOTS: tuple[tuple[float, float], ...] = (
    (-0.42, 2.55),
    (0.42, 2.55),
    (-0.45, 3.5),
    (0.45, 3.5),
    (0.0, 3.05),
    (0.0, 4.0),
)
MARKER_SHAPES = 6


def _draw_figure_back(cv: Canvas, shoot: Shoot) -> None:
    if shoot.hair is not None and shoot.long_hair:
        cv.polygon([(-0.42, 0.35), (0.42, 0.35), (0.5, 1.9), (-0.5, 1.9)], shoot.hair)


def _draw_figure(cv: Canvas, shoot: Shoot, garment: Garment, product_type: str, rng: np.random.Generator) -> None:
    skin = shoot.skin
    st = shoot.stance
    # legs and shoes
    for side in (1, -1):
        leg = [
            (side * 0.84, 3.75),
            (side * 0.04, 4.0),
            (side * (0.13 + st / 2), 5.55),
            (side * (0.17 + st), 7.45),
            (side * (0.3 + st), 7.45),
            (side * (0.47 + st / 2), 5.55),
        ]
        cv.polygon(leg, skin)
        shoe = shoot.extra.setdefault("shoe", choice(rng, [(20, 20, 20), (120, 30, 40), (200, 180, 150), (40, 40, 90)]))
        cv.polygon(
            [
                (side * (0.14 + st), 7.4),
                (side * (0.33 + st), 7.4),
                (side * (0.42 + st), 7.72),
                (side * (0.1 + st), 7.72),
            ],
            shoe,
        )
    if product_type == "SHIRT":  # trousers
        denim = shoot.extra.setdefault("denim", choice(rng, [(40, 60, 100), (30, 30, 34), (190, 180, 160)]))
        for side in (1, -1):
            cv.polygon(
                [
                    (side * 0.88, 3.6),
                    (side * 0.0, 3.6),
                    (side * 0.02, 4.05),
                    (side * (0.12 + st / 2), 5.55),
                    (side * (0.15 + st), 7.4),
                    (side * (0.34 + st), 7.4),
                    (side * (0.5 + st / 2), 5.55),
                ],
                denim,
            )
    # arms
    for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
        cv.limb(arm_points(pose, side), [0.17, 0.14, 0.11], skin)
    # torso, neck, head
    torso = [
        (0.15, 0.85),
        (0.15, 1.3),
        (0.84, 1.44),
        (0.93, 1.62),
        (0.82, 2.1),
        (0.78, 2.3),
        (0.56, WAIST_Y),
        (0.86, HIP_Y),
        (0.84, 3.9),
    ]
    cv.polygon(torso + mirror_x(torso)[::-1], skin)
    cv.polygon(ellipse_pts(0.0, 0.5, 0.36, 0.5), skin)
    if shoot.hair is not None:
        cv.polygon(arc(0.0, 0.48, 0.4, 0.5, math.pi, 2 * math.pi, 14) + [(0.4, 0.62), (-0.4, 0.62)], shoot.hair)
    if product_type == "SKIRT":  # a plain top
        tee = shoot.extra.setdefault("tee", choice(rng, [(245, 245, 245), (25, 25, 28), (150, 150, 155)]))
        top = [(0.2, 1.3), (0.92, 1.44), (0.84, 2.1), (0.78, 2.3), (0.6, WAIST_Y)]
        cv.polygon(top + mirror_x(top)[::-1], tee)
        for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
            cv.limb(along(arm_points(pose, side), 0.0, 0.3), [0.22, 0.21], tee)


def _draw_forearms(cv: Canvas, shoot: Shoot, sleeve_frac: float) -> None:
    """Redraw the bare lower arms and the hands over the garment (a hand on the hip sits on the skirt)."""
    start = max(sleeve_frac, 0.45)
    for side, pose in ((1, shoot.arms[0]), (-1, shoot.arms[1])):
        arm = arm_points(pose, side)
        if start < 0.99:
            part = along(arm, start, 1.0)
            cv.limb(part, list(np.linspace(0.14 if start < 0.54 else 0.13, 0.11, len(part))), shoot.skin)
        (ex, ey), (wx, wy) = arm[1], arm[2]
        dx, dy = wx - ex, wy - ey
        ln = math.hypot(dx, dy)
        hx, hy = wx + dx / ln * 0.15, wy + dy / ln * 0.15
        cv.polygon(ellipse_pts(hx, hy, 0.12, 0.16, 12), shoot.skin)


def _draw_hanger(cv: Canvas, rng: np.random.Generator) -> None:
    colour = choice(rng, [(120, 80, 45), (20, 20, 20), (200, 200, 205)])
    cv.line(arc(0.0, 0.72, 0.14, 0.16, -math.pi * 1.1, 0.2, 10), colour, 0.04)
    cv.line([(0.0, 0.88), (0.0, 1.08)], colour, 0.05)
    cv.polygon([(0.0, 1.02), (1.0, 1.4), (0.98, 1.5), (0.0, 1.14), (-0.98, 1.5), (-1.0, 1.4)], colour)


def _paste_pattern(
    cv: Canvas,
    polys: list[Pts],
    limbs: list[tuple[Pts, list[float]]],
    name: str,
    base: RGB,
    rng: np.random.Generator,
    darken: float = 1.0,
) -> None:
    """Fill the union of polygons and thick lines with the pattern through a mask."""
    mask = Image.new("L", cv.image.size, 0)
    md = ImageDraw.Draw(mask)
    for poly in polys:
        md.polygon(cv.tf(poly), fill=255)
    for line, widths in limbs:
        thick_line(md, cv.tf(line), [cv.tf.length(w) for w in widths], 255, round_start=False, round_end=False)
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
                cv.polygon(
                    [(-w, y - 0.07), (w, y - 0.07), (w * 1.02, y + 0.09), (-w * 1.02, y + 0.09)], shade(base, 0.7)
                )
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
        cv.polygon(mirror_x(flap), collar, line_col, lw * 0.7)
        cv.line([(0.0, 1.62), (0.0, 2.7 if pt == "DRESS" else 3.9)], line_col, lw * 0.7)
        for by in (1.85, 2.15, 2.45):
            cv.polygon(ellipse_pts(0.06, by, 0.035, 0.035, 8), line_col)


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
                pts = ellipse_pts(cx, sy, r, r, 16)
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
                pts = [
                    (cx - t, sy - r),
                    (cx + t, sy - r),
                    (cx + t, sy - t),
                    (cx + r, sy - t),
                    (cx + r, sy + t),
                    (cx + t, sy + t),
                    (cx + t, sy + r),
                    (cx - t, sy + r),
                    (cx - t, sy + t),
                    (cx - r, sy + t),
                    (cx - r, sy - t),
                    (cx - t, sy - t),
                ]
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
    img = background(shoot, rng)
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
        cv.line(garment.back[len(garment.back) // 3 : 2 * len(garment.back) // 3], shade(base, 0.45), 0.03)
    limbs = [(line, w) for (line, _, _), w in zip(garment.sleeves, garment.sleeve_widths)]
    _paste_pattern(cv, [garment.body], limbs, pattern, base, rng)
    edge = shade(base, 0.5) if luminance(base) > 60 else shade(base, 1.8)
    cv.line(garment.body + garment.body[:1], edge, 0.03)
    for _line, e1, e2 in garment.sleeves:
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
