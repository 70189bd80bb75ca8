"""Garment geometry in body units: the polygons of a dress, skirt or shirt, from its attributes.

Geometry is built in *body units* (about one head height; the figure stands 7.7 units tall, head top
at y=0, y grows downwards, x=0 is the centre line); :mod:`canvas` maps it to pixels. What encodes
the attributes:

* silhouette: the side profile of the garment (fitted curves, a straight shift, a flared skirt from
  a seamed waist, an empire-waist maxi with tiers, a very full bell gown with a waist band);
* hemline: where the hem falls on the legs (mid-thigh, knee, mid-calf, floor) or a short front over
  a long back panel (high-low);
* neck_style: the top edge of the bodice (the cut, straps, bare shoulders); the collar, turtleneck
  rolls, halter band and off-shoulder ruffle are drawn over it (:mod:`draw`);
* sleeve_type: how far the sleeve runs down the arm (none, cap, short, below the elbow, wrist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 12) -> Pts:
    """``n`` points of the ellipse arc centred at ``(cx, cy)`` from angle ``a0`` to ``a1`` (radians)."""
    t = np.linspace(a0, a1, n)
    return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist()))


def mirror_x(points: Pts) -> Pts:
    """The points mirrored about the centre line."""
    return [(-x, y) for x, y in points]


def ellipse_pts(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> Pts:
    """A closed ellipse of ``n`` points."""
    return arc(cx, cy, rx, ry, 0, 2 * math.pi, n)


def _armhole(sleeveless: bool) -> Pts:
    """Right side, from the armpit up to the shoulder tip."""
    if sleeveless:
        return [(0.8, 2.1), (0.68, 1.97), (0.6, 1.72), (0.64, 1.4)]
    return [(0.84, 2.05), (0.93, 1.76), (0.97, 1.44)]


def _neck_opening(neck: str, shoulder_x: float) -> Pts:
    """The neckline from the right neck point to the left one, for shouldered necklines."""
    if neck == "scoop_neck":
        return arc(0.0, 1.33, 0.44, 0.62, 0.0, math.pi, 14)
    if neck == "v_neck":
        return [(0.3, 1.32), (0.0, 2.15), (-0.3, 1.32)]
    if neck == "square_neck":
        return [(0.4, 1.33), (0.4, 1.88), (-0.4, 1.88), (-0.4, 1.33)]
    if neck == "boat_neck":
        bw = min(0.74, shoulder_x - 0.1)
        return arc(0.0, 1.37, bw, 0.13, 0.0, math.pi, 12)
    if neck == "high_neck":
        return [(0.24, 1.33), (0.21, 1.0), (-0.21, 1.0), (-0.24, 1.33)]
    if neck == "turtle_neck":
        return [(0.33, 1.37), (0.3, 0.8), (-0.3, 0.8), (-0.33, 1.37)]
    if neck == "collared":
        return [(0.21, 1.3), (0.0, 1.62), (-0.21, 1.3)]
    return arc(0.0, 1.33, 0.36, 0.35, 0.0, math.pi, 10)  # crew-like fallback


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
        right = arc(0.4, 1.96, 0.39, 0.27, 0.0, -math.pi, 10)
        return [(0.8, 2.1), (0.79, 1.97)] + right + [(0.0, 2.05)] + mirror_x(right)[::-1] + [(-0.79, 1.97), (-0.8, 2.1)]
    if neck == "halter":
        return [(0.8, 2.1), (0.56, 1.86), (0.25, 1.12), (-0.25, 1.12), (-0.56, 1.86), (-0.8, 2.1)]
    if neck == "off_the_shoulder":
        return [
            (0.84, 2.08),
            (1.2, 2.02),
            (1.22, 1.72),
            (0.5, 1.76),
            (0.0, 1.79),
            (-0.5, 1.76),
            (-1.22, 1.72),
            (-1.2, 2.02),
            (-0.84, 2.08),
        ]
    if neck == "one_shoulder":
        left = mirror_x(arm)
        return [(0.82, 2.02), (0.7, 1.92), (-0.42, 1.3)] + left[::-1]
    opening = _neck_opening(neck, tip_x)
    return arm + opening + mirror_x(arm)[::-1]


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
        tail = lambda y: max(0.62, 0.88 - 0.07 * (y - HIP_Y))
    elif silhouette == "straight":
        prof = [(2.1, 0.85), (WAIST_Y, 0.87), (HIP_Y, 0.92)]
        tail = lambda y: 0.92 + 0.06 * (y - HIP_Y)
    elif silhouette == "maxi":
        prof = [(2.1, 0.8), (2.38, 0.72)]
        tail = lambda y: 0.72 + 0.19 * (y - 2.38)
    elif silhouette == "gown":
        prof = [(2.1, 0.8), (2.35, 0.76), (WAIST_Y, 0.55)]
        tail = lambda y: 0.55 + 2.15 * (1 - math.exp(-(y - WAIST_Y) / 0.8))
    else:  # fit_and_flare
        prof = [(2.1, 0.8), (2.35, 0.77), (WAIST_Y, 0.56)]
        tail = lambda y: 0.56 + 1.45 * (1 - math.exp(-(y - WAIST_Y) / 1.0))
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


def arm_points(pose: str, side: int) -> Pts:
    """Shoulder, elbow and wrist of arm pose ``pose`` on ``side`` (1 right, -1 left)."""
    elbow, wrist = ARM_POSES[pose]
    return [(side * SHOULDER_JOINT[0], SHOULDER_JOINT[1]), (side * elbow[0], elbow[1]), (side * wrist[0], wrist[1])]


def along(points: Pts, start: float, stop: float) -> Pts:
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
    # at() returns 2-tuples; mypy sees tuple[float, ...]
    return [at(start)] + inner + [at(stop)]  # type: ignore[return-value]


def _offset_edges(line: Pts, widths: list[float]) -> tuple[Pts, Pts]:
    p = np.asarray(line, dtype=np.float64)
    d = np.gradient(p, axis=0) if len(p) > 2 else np.repeat((p[1:] - p[:-1]), len(p), axis=0)
    d /= np.maximum(np.hypot(d[:, 0], d[:, 1])[:, None], 1e-9)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1) * np.asarray(widths)[:, None]
    # numpy rows as 2-tuples; mypy sees tuple[float, ...]
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
        prof = side_profile(
            "fitted" if sil == "fitted" else ("straight" if sil == "straight" else "fit_and_flare"),
            hem_y,
            top_y=WAIST_Y - 0.05,
        )
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
        body = mirror_x(body)
    back = None
    if high_low and product_type == "DRESS":
        back_y = FLOOR_Y - 0.15 if sil == "gown" else HIGH_LOW_BACK_Y
        py, pw = [p[0] for p in prof], [p[1] for p in prof]
        y_end = py[-1]
        ys = np.linspace(WAIST_Y + 0.4, back_y, 10)
        ext = [
            (float(y), float(0.96 * np.interp(y, py, pw)) if y <= y_end else float(0.96 * pw[-1] + 0.22 * (y - y_end)))
            for y in ys
        ]
        back = [(-w, y) for y, w in ext] + _hem(ext[-1][1], back_y, True, False) + [(w, y) for y, w in reversed(ext)]
    sleeves: list[tuple[Pts, Pts, Pts]] = []
    widths: list[list[float]] = []
    frac = SLEEVE_FRACTION[sleeve]
    if frac > 0 and neck not in ("sweetheart", "halter") and product_type != "SKIRT":
        for side, pose in ((1, arms[0]), (-1, arms[1])):
            if neck == "one_shoulder" and (side == 1) != mirror:
                continue  # the bare side of a one-shoulder dress gets no sleeve
            start = 0.17 if neck == "off_the_shoulder" else 0.0
            arm = arm_points(pose, side)
            arm[0] = (side * SLEEVE_ROOT[0], SLEEVE_ROOT[1])
            line = along(arm, start, max(frac, start + 0.08))
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
    return Garment(
        body=body, back=back, sleeves=sleeves, sleeve_widths=widths, profile=prof, hem_y=hem_y, details=details
    )
