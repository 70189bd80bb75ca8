"""The shard job's per-image work: decode, resize, re-encode (or pass the original through)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from softlines_attr.config import ImageConfig
from softlines_attr.images.decode import (
    ImageError,
    _load,
    _open,
    _orientation,
    decode_opened,
    fit_size,
    resize_to_store,
    upright_size,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to be packed in a record.

    Attributes:
        data: JPEG bytes.
        width: Stored width.
        height: Stored height.
        passed_through: True when ``data`` is the original file, unchanged.
    """

    data: bytes
    width: int
    height: int
    passed_through: bool


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Encode an RGB image as baseline JPEG (4:2:0, no metadata) at ``quality``."""
    buf = io.BytesIO()
    try:
        img.save(buf, format="JPEG", quality=quality)
    except (OSError, ValueError) as exc:
        raise ImageError("unreadable", f"JPEG encoding failed: {exc}") from None
    return buf.getvalue()


def _fits_as_is(img: Image.Image, data: bytes, conf: ImageConfig) -> PreparedImage | None:
    """The original bytes, when ``img`` (opened, not decoded) is an upright RGB JPEG already at the stored size."""
    if img.format != "JPEG" or img.mode != "RGB" or _orientation(img) != 1:
        return None
    width, height = img.size
    want = (
        (conf.store_size, conf.store_size)
        if conf.resize_mode == "pad_square"
        else fit_size(width, height, conf.store_size, "shorter_side")
    )
    if (width, height) != want:
        return None
    _load(img)  # a truncated file must not pass through
    return PreparedImage(data=data, width=width, height=height, passed_through=True)


def prepare_for_shard(data: bytes, conf: ImageConfig, lap: Callable[[str], None] | None = None) -> PreparedImage:
    """Turn one fetched file into the JPEG a shard stores.

    Args:
        data: The image file's bytes.
        conf: The ``[images]`` config (store size, resize mode, quality, pixel limit).
        lap: Called with ``decode``, ``resize`` and ``encode`` as each step ends (a profile's stopwatch,
            :class:`softlines_attr.shard.profile.Laps`); a passed-through original ends with ``decode`` only.

    Returns:
        The stored image.

    Raises:
        ImageError: with the reject reason code.
    """
    lap = lap or _no_lap
    opened = _open(data, conf.max_pixels)
    same = _fits_as_is(opened, data, conf)
    if same is not None:
        lap("decode")
        return same
    source = upright_size(opened)
    img = decode_opened(opened, target=conf.store_size, mode=conf.resize_mode)
    lap("decode")
    img = resize_to_store(img, conf.store_size, conf.resize_mode, source)
    lap("resize")
    encoded = encode_jpeg(img, conf.jpeg_quality)
    lap("encode")
    return PreparedImage(data=encoded, width=img.width, height=img.height, passed_through=False)


def _no_lap(stage: str) -> None:
    """The default ``lap`` of :func:`prepare_for_shard`: no profile."""
