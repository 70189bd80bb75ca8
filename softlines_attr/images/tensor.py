"""From a store-size RGB image to the network's input array (for training and scoring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image


def center_crop(img: Image.Image, size: int, region: Literal["full", "upper"] = "full") -> Image.Image:
    """Crop a ``size`` x ``size`` square from the centre (``full``) or the top centre (``upper``).

    ``upper`` is the neck-style view: the upper part of the dress, where the neckline is. An image
    smaller than ``size`` on a side is scaled up first so the crop is always full.
    """
    if min(img.size) < size:
        scale = size / min(img.size)
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.Resampling.BILINEAR)
    left = (img.width - size) // 2
    top = 0 if region == "upper" else (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


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
        region: ``full`` for a centre crop, ``upper`` for the top-centre crop.

    Returns:
        An array of shape (3, input_size, input_size).
    """
    crop = center_crop(img.convert("RGB"), input_size, region)
    arr = np.asarray(crop, dtype=np.float32)
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
