"""Decode image bytes into an upright RGB image, robustly and cheaply.

What is handled: EXIF orientation (applied after the resize, on the small image); CMYK, YCbCr,
palette, bilevel, grayscale and 16-bit grayscale converted to RGB; transparency (RGBA, LA, PA and
palette or grayscale images with a transparent colour) composited on white; JPEG DCT scaling
(Pillow's ``draft``) so a 2000-pixel JPEG bound for 256 pixels is decoded at a half, quarter or eighth
of its size; a pixel-count limit checked from the header before any decoding (decompression bombs).
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from softlines_attr.errors import SoftlinesAttrError

log = logging.getLogger(__name__)

ResizeMode = Literal["shorter_side", "pad_square"]

#: EXIF orientation tag value -> the transpose that makes the image upright.
_ORIENT_OPS: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112
_WHITE = (255, 255, 255)
#: Modes Pillow converts to RGB directly (no alpha to composite).
_PLAIN_MODES = frozenset({"1", "L", "P", "CMYK", "YCbCr", "RGBX", "RGB"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageError(SoftlinesAttrError):
    """One image cannot be used; ``reason`` is the reject reason code.

    Attributes:
        reason: ``unreadable``, ``truncated``, ``too_large``, ``unsupported_mode`` or ``empty``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def fit_size(width: int, height: int, size: int, mode: ResizeMode) -> tuple[int, int]:
    """The resized (width, height) of a ``width`` x ``height`` image.

    ``shorter_side`` scales the shorter side to ``size`` with the same integer arithmetic as
    ``mxnet.tools.im2rec --resize`` (so both produce the same shapes); ``pad_square`` scales the
    longer side to ``size`` (the image is then padded to a square).
    """
    if mode == "shorter_side":
        if height > width:
            return size, max(1, height * size // width)
        return max(1, width * size // height), size
    if width >= height:
        return size, max(1, height * size // width)
    return max(1, width * size // height), size


def _bomb_pixels(exc: Exception) -> str:
    """The pixel count of Pillow's decompression-bomb message (one limit only in ours: the caller's), or a
    description."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return (
        f"{match.group(1)} pixels (read from the header)"
        if match
        else "more pixels than Pillow opens (read from the header)"
    )


def _kind_of(data: bytes) -> str:
    """A content-free description of bytes that are no image: text or binary, never the bytes themselves."""
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "text, not an image"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open the header only, refusing empty input, unknown formats and too many pixels."""
    if not data:
        raise ImageError("empty", "expected image bytes, found an empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", f"expected at most {max_pixels} pixels, found {_bomb_pixels(exc)}") from None
    except UnidentifiedImageError:
        # the file's bytes are never quoted: a URI may name any file (/etc/passwd), and its content is not ours to echo
        raise ImageError(
            "unreadable",
            f"expected a JPEG/PNG/GIF/WebP/TIFF image, found {len(data)} bytes of an unknown format ({_kind_of(data)})",
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("unreadable", f"image header could not be read: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("unreadable", f"expected a positive image size, found {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            "too_large", f"expected at most {max_pixels} pixels, found {width}x{height} = {width * height}"
        )
    return img


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block is not worth a reject: treat as upright
        return 1
    return value if isinstance(value, int) and value in _ORIENT_OPS else 1


def _load(img: Image.Image) -> None:
    """Decode the pixels, mapping Pillow's errors to reason codes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        text = str(exc)
        if "truncated" in text or "broken" in text or isinstance(exc, EOFError) or "end of file" in text.lower():
            raise ImageError("truncated", f"expected a complete image, found a truncated file: {text}") from None
        raise ImageError("unreadable", f"image data could not be decoded: {text}") from None


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded image of any supported mode to RGB (alpha composited on white).

    Raises:
        ImageError: ``unsupported_mode`` for modes with no sensible RGB view (float, LAB, HSV...).
    """
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        return _composite_on_white(img)
    if mode in _PLAIN_MODES:
        return img.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(img)
        scaled = (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    raise ImageError(
        "unsupported_mode",
        f"expected an RGB, RGBA, CMYK, palette, grayscale or 16-bit grayscale image, found mode {mode!r}",
    )


def decode_image(
    data: bytes, *, max_pixels: int, target: int | None = None, mode: ResizeMode = "shorter_side"
) -> Image.Image:
    """Decode ``data`` to an upright RGB image, DCT-scaled towards ``target`` where possible.

    The result is at least as large as the resize to ``target`` needs (JPEG DCT scaling only ever
    reduces by 2, 4 or 8 while both sides stay at or above the target), but not resized: use
    :func:`resize_to_store` or :func:`load_image` for that.

    Args:
        data: The file's bytes.
        max_pixels: The largest width*height accepted (checked from the header).
        target: The size the caller will resize to (see :func:`fit_size`); None decodes at full size.
        mode: How ``target`` applies (shorter side, or longer side for a padded square).

    Returns:
        An RGB image, EXIF orientation applied.

    Raises:
        ImageError: with the reason code of what is wrong.
    """
    return decode_opened(_open(data, max_pixels), target=target, mode=mode)


def decode_opened(img: Image.Image, *, target: int | None = None, mode: ResizeMode = "shorter_side") -> Image.Image:
    """:func:`decode_image` for an image already opened (header read and checked), not yet decoded."""
    orientation = _orientation(img)
    if target is not None and img.format == "JPEG":
        width, height = img.size
        if orientation >= 5:  # the stored image is the transpose of the upright one
            width, height = height, width
        tw, th = fit_size(width, height, target, mode)
        if orientation >= 5:
            tw, th = th, tw
        img.draft(img.mode, (tw, th))
    _load(img)
    rgb = to_rgb(img)
    if orientation != 1:
        rgb = rgb.transpose(_ORIENT_OPS[orientation])
    return rgb


def upright_size(img: Image.Image) -> tuple[int, int]:
    """The (width, height) of an opened image once its EXIF orientation is applied (before any draft)."""
    width, height = img.size
    return (height, width) if _orientation(img) >= 5 else (width, height)


def resize_to_store(
    img: Image.Image, size: int, mode: ResizeMode, source_size: tuple[int, int] | None = None
) -> Image.Image:
    """Resize an RGB image to ``size`` (shorter side, or a white-padded square).

    Args:
        img: The decoded, upright image (possibly DCT-scaled).
        size: The store size.
        mode: ``shorter_side`` or ``pad_square``.
        source_size: The upright size of the original file: the output size is computed from it, so
            a DCT-scaled decode gives exactly the shape a full decode would (im2rec's shape).
    """
    tw, th = fit_size(*(source_size or img.size), size, mode)
    if (tw, th) != img.size:
        img = img.resize((tw, th), Image.Resampling.BILINEAR, reducing_gap=2.0)
    if mode == "pad_square" and (tw, th) != (size, size):
        square = Image.new("RGB", (size, size), _WHITE)
        square.paste(img, ((size - tw) // 2, (size - th) // 2))
        img = square
    return img


def load_image(data: bytes, *, size: int, mode: ResizeMode, max_pixels: int) -> Image.Image:
    """Decode and resize in one step: what training and scoring call on raw image bytes.

    Args:
        data: The file's bytes (a shard record's JPEG or an original image).
        size: ``images.store_size`` from conf.
        mode: ``images.resize_mode`` from conf.
        max_pixels: ``images.max_pixels`` from conf.

    Returns:
        The RGB image at store size.
    """
    opened = _open(data, max_pixels)
    source = upright_size(opened)
    return resize_to_store(decode_opened(opened, target=size, mode=mode), size, mode, source)
