"""From a store-size RGB image to the network's input array (for training and scoring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image

#: The ``upper`` view's height, as a share of the stored image's height: the top half (bodice and neckline).
UPPER_FRACTION = 0.5


def region_view(img: Image.Image, region: Literal["full", "upper"] = "full") -> Image.Image:
    """The part of a stored-size image a model looks at, at the stored image's scale.

    ``full`` is the image itself. ``upper`` is the neck-style view: the top-centre square whose side is
    the top :data:`UPPER_FRACTION` of the image's height (at most its width), scaled up to a square of
    the image's shorter side, so the neckline fills the network input instead of a sixth of it. The
    same view is used by training (random crops of it), evaluation and scoring (the centre crop).
    """
    if region == "full":
        return img
    side = max(1, min(img.width, round(img.height * UPPER_FRACTION)))
    left = (img.width - side) // 2
    target = min(img.size)
    return img.crop((left, 0, left + side, side)).resize((target, target), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, size: int, region: Literal["full", "upper"] = "full") -> Image.Image:
    """Crop a ``size`` x ``size`` square from the centre of the region's view (:func:`region_view`).

    An image smaller than ``size`` on a side is scaled up first so the crop is always full.
    """
    img = region_view(img, region)
    if min(img.size) < size:
        scale = size / min(img.size)
        img = img.resize(
            (max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.Resampling.BILINEAR
        )
    left = (img.width - size) // 2
    top = (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def crop_pixels(img: Image.Image, input_size: int, region: Literal["full", "upper"] = "full") -> np.ndarray:
    """The centre crop of the region's view (:func:`center_crop`) as RGB pixels: uint8, (input_size, input_size, 3).

    :func:`normalise` turns one or a stack of these into network input; :func:`to_network_input` is both in one.
    """
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return np.asarray(center_crop(rgb, input_size, region))


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 RGB pixels (..., H, W, 3) as float32 network input (..., 3, H, W): mean subtracted, divided by std.

    Element by element the same float32 arithmetic whether one image or a stack of them is passed, so a batch
    normalised at once equals its images normalised one by one and stacked, bit for bit.
    """
    channels_first = np.moveaxis(pixels, -1, -3)
    shape = (3, 1, 1)
    out = np.empty(channels_first.shape, dtype=np.float32)
    np.subtract(channels_first, np.asarray(mean, dtype=np.float32).reshape(shape), out=out)
    np.divide(out, np.asarray(std, dtype=np.float32).reshape(shape), out=out)
    return out


def to_network_input(
    img: Image.Image,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    region: Literal["full", "upper"] = "full",
) -> np.ndarray:
    """The float32 CHW array (RGB order, mean subtracted, divided by std) for one image.

    Args:
        img: An RGB image at store size (from :func:`softlines_attr.images.load_image`).
        input_size: ``images.input_size`` (the crop side).
        mean: Per-channel RGB mean.
        std: Per-channel RGB standard deviation.
        region: ``full`` for a centre crop of the image, ``upper`` for a centre crop of its upper view
            (:func:`region_view`).

    Returns:
        An array of shape (3, input_size, input_size): :func:`normalise` of :func:`crop_pixels`.
    """
    return normalise(crop_pixels(img, input_size, region), mean, std)
