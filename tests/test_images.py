"""softlines_attr.images: decode (every mode and bad-file class), resize, pass-through, network input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_shard_helpers import jpeg_bytes, product_image, rgba_png

from softlines_attr.config import ImageConfig
from softlines_attr.images import ImageError, decode_image, fit_size, load_image, prepare_for_shard, to_network_input

CONF = ImageConfig(
    store_size=64,
    input_size=56,
    resize_mode="shorter_side",
    jpeg_quality=90,
    max_pixels=2_000_000,
    mean=(123.68, 116.78, 103.94),
    std=(58.4, 57.12, 57.38),
)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_fit_size_matches_im2rec_arithmetic() -> None:
    assert fit_size(1000, 1333, 256, "shorter_side") == (256, 1333 * 256 // 1000)
    assert fit_size(1333, 1000, 256, "shorter_side") == (1333 * 256 // 1000, 256)
    assert fit_size(500, 500, 256, "shorter_side") == (256, 256)
    assert fit_size(1000, 1333, 256, "pad_square") == (1000 * 256 // 1333, 256)


def test_exif_orientation_is_applied() -> None:
    upright = Image.new("RGB", (60, 120), (255, 255, 255))
    upright.paste((255, 0, 0), (0, 0, 60, 30))  # red band on top
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera writes with orientation 6
    img = decode_image(jpeg_bytes(stored, exif_orientation=6), max_pixels=10**6)
    assert img.size == (60, 120)
    top = np.asarray(img)[:20].mean(axis=(0, 1))
    assert top[0] > 200 and top[1] < 60 and top[2] < 60


@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "1", "YCbCr"])
def test_modes_convert_to_rgb(mode: str) -> None:
    base = product_image(80, 100, 1)
    src = base.convert(mode)
    data = jpeg_bytes(src) if mode in ("CMYK", "L", "YCbCr") else _png(src)
    img = decode_image(data, max_pixels=10**6)
    assert img.mode == "RGB" and img.size == (80, 100)
    if mode != "1":
        assert np.abs(np.asarray(img, dtype=np.int16) - np.asarray(base, dtype=np.int16)).mean() < 20


def test_sixteen_bit_grayscale_scaled_not_clipped() -> None:
    arr = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    img = decode_image(_png(Image.fromarray(arr)), max_pixels=10**6)
    out = np.asarray(img)[:, :, 0]
    assert img.mode == "RGB" and out[0, 0] == 0 and out[0, -1] == 255 and 120 < out[0, 32] < 136


def test_alpha_composited_on_white() -> None:
    img = decode_image(rgba_png(product_image(80, 100, 2)), max_pixels=10**6)
    left = np.asarray(img)[:, :30]
    assert img.mode == "RGB" and left.min() == 255  # transparent (black underneath) became white


def test_palette_with_transparency_composited_on_white() -> None:
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.paste(1, (10, 0, 20, 20))
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    arr = np.asarray(decode_image(buf.getvalue(), max_pixels=10**6))
    assert arr[:, :10].min() == 255 and tuple(arr[5, 15]) == (200, 10, 10)


def test_jpeg_draft_decodes_smaller() -> None:
    data = jpeg_bytes(product_image(1000, 1333, 3))
    full = decode_image(data, max_pixels=10**7)
    small = decode_image(data, max_pixels=10**7, target=256)
    assert full.size == (1000, 1333)
    assert small.size == (500, 667)  # DCT scale 1/2: both sides still >= the 256 x 341 target
    out = load_image(data, size=256, mode="shorter_side", max_pixels=10**7)
    assert out.size == (256, 341)
    # a DCT-scaled decode still gives the shape of a full decode (im2rec's): 1097x1333 -> 256x311, not 310
    odd = prepare_for_shard(
        jpeg_bytes(product_image(1097, 1333, 8)), ImageConfig(**{**CONF.__dict__, "store_size": 256})
    )
    assert (odd.width, odd.height) == fit_size(1097, 1333, 256, "shorter_side") == (256, 311)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"GIF89a not really" * 3, "unreadable"),
        (b"plain text, not an image\n" * 10, "unreadable"),
        (jpeg_bytes(product_image(120, 160, 4))[:1500], "truncated"),
        (jpeg_bytes(Image.new("RGB", (1500, 1500))), "too_large"),
        (None, "unsupported_mode"),
    ],
)
def test_bad_images_raise_reason(data: bytes | None, reason: str) -> None:
    if data is None:
        buf = io.BytesIO()
        Image.fromarray(np.ones((10, 10), dtype=np.float32)).save(buf, "TIFF")
        data = buf.getvalue()
    with pytest.raises(ImageError) as info:
        prepare_for_shard(data, CONF)
    assert info.value.reason == reason, str(info.value)
    assert "expected" in str(info.value) or reason in ("truncated", "unreadable")


def test_prepare_resizes_and_reencodes() -> None:
    out = prepare_for_shard(jpeg_bytes(product_image(120, 200, 5)), CONF)
    img = Image.open(io.BytesIO(out.data))
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 106) == (out.width, out.height)
    assert not out.passed_through


def test_prepare_passes_fitting_jpeg_through() -> None:
    data = jpeg_bytes(product_image(64, 90, 6))
    out = prepare_for_shard(data, CONF)
    assert out.passed_through and out.data == data
    truncated = data[: len(data) // 2]
    with pytest.raises(ImageError):
        prepare_for_shard(truncated, CONF)


def test_pad_square_pads_with_white() -> None:
    conf = ImageConfig(**{**CONF.__dict__, "resize_mode": "pad_square"})
    out = prepare_for_shard(jpeg_bytes(product_image(100, 200, 7)), conf)
    arr = np.asarray(Image.open(io.BytesIO(out.data)))
    assert arr.shape == (64, 64, 3) and arr[:, :5].min() > 240 and arr[:, -5:].min() > 240


def test_network_input_shape_and_normalisation() -> None:
    img = Image.new("RGB", (64, 80), (123, 117, 104))
    arr = to_network_input(img, input_size=56, mean=CONF.mean, std=CONF.std)
    assert arr.shape == (3, 56, 56) and arr.dtype == np.float32
    assert np.abs(arr).max() < 0.02
    upper = to_network_input(img, input_size=56, mean=CONF.mean, std=CONF.std, region="upper")
    assert upper.shape == (3, 56, 56)


def test_upper_region_is_the_top_of_the_dress_at_the_stored_scale() -> None:
    """The neck-style view: the top half of the stored image, scaled to its shorter side, then the centre crop."""
    from softlines_attr.images import region_view

    img = Image.new("RGB", (64, 96), (255, 0, 0))
    img.paste((0, 0, 255), (0, 48, 64, 96))  # red top half, blue bottom half
    view = region_view(img, "upper")
    assert view.size == (64, 64)
    arr = np.asarray(view)
    assert arr[..., 0].min() > 200 and arr[..., 2].max() < 60  # only the (red) top half
    upper = to_network_input(img, input_size=56, mean=(0, 0, 0), std=(1, 1, 1), region="upper")
    full = to_network_input(img, input_size=56, mean=(0, 0, 0), std=(1, 1, 1), region="full")
    assert upper[2].max() < 60 and full[2].max() > 200  # the full centre crop sees the blue skirt
    assert region_view(img, "full") is img
