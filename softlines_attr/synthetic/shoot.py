"""The shoot of one product image: the render task and the per-parent nuisance sampled for it.

Nuisance (the paper's Figure 4): background colour or texture, with or without a figure, the
figure's pose, skin or mannequin colour and crop (full body, no head, half leg), ghost-mannequin,
flat-lay or hanger shots, scale, position, lean, image size and aspect. Colour variants of one parent
share the shoot (size, background, pose) and differ in colour and print placement: the shoot is drawn
from a generator keyed ``(seed, parent)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from softlines_attr.synthetic.patterns import RGB, mix, shade
from softlines_attr.synthetic.vocab import COLOUR_RGB

SKIN = ((241, 205, 180), (226, 186, 156), (198, 150, 114), (160, 112, 78), (118, 80, 56), (88, 60, 45))
MANNEQUIN = ((236, 234, 228), (182, 182, 188), (48, 48, 52))
HAIR = ((30, 22, 18), (70, 45, 25), (120, 80, 40), (200, 170, 110), (15, 15, 15))


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


def choice(rng: np.random.Generator, items: list | tuple, p: list[float] | None = None):
    """One item of ``items`` drawn with ``rng`` (weights ``p``; uniform when None)."""
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
    aspect = choice(rng, [4 / 3, 4 / 3, 4 / 3, 1.25, 1.5, 1.0, 1.2])
    height = int(np.clip(round(width * aspect * rng.uniform(0.97, 1.03)), h0, h1))
    figure = bool(rng.random() < 0.6)
    if figure:
        crop = choice(rng, ["full", "no_head", "half_leg"], [0.55, 0.2, 0.25])
        arm_r = choice(rng, ["down", "out", "hip", "up"], [0.45, 0.25, 0.2, 0.1])
        arm_l = arm_r if rng.random() < 0.5 else choice(rng, ["down", "out", "hip"], [0.5, 0.3, 0.2])
        arms = (arm_r, arm_l)
    else:
        crop = choice(rng, ["ghost", "flat", "hanger"], [0.5, 0.3, 0.2])
        arms = ("flat", "flat") if crop == "flat" else ("down", "down")
    mannequin = rng.random() < 0.3
    skin = choice(rng, MANNEQUIN) if mannequin else choice(rng, SKIN)
    hair = None if mannequin or rng.random() < 0.1 else choice(rng, HAIR)
    background = choice(
        rng, ["studio", "colour", "gradient", "texture", "room", "stripes"], [0.4, 0.15, 0.15, 0.12, 0.1, 0.08]
    )
    if background == "studio":
        g = int(rng.integers(222, 256))
        c1 = (g, g - int(rng.integers(0, 6)), g - int(rng.integers(0, 10)))
        c2 = shade(c1, 0.9)
    else:
        c1 = mix(choice(rng, COLOUR_RGB), (255, 255, 255), rng.uniform(0.2, 0.75))
        c2 = mix(choice(rng, COLOUR_RGB), (255, 255, 255), rng.uniform(0.0, 0.6))
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
