"""Image decoding, resizing and encoding, shared by the shard job, training and scoring.

* :func:`decode_image` turns file bytes into an upright RGB :class:`PIL.Image.Image` at (about) the
  size the caller needs, using JPEG DCT scaling where it saves work.
* :func:`prepare_for_shard` is what the shard job stores: resized, re-encoded JPEG bytes (or the
  original bytes when they already fit).
* :func:`load_image` + :func:`to_network_input` is what training and scoring feed the network
  (:func:`crop_pixels` + :func:`normalise`, which scoring runs on a whole batch at once).

Every problem with one image raises :class:`ImageError` carrying a reason code (``unreadable``,
``truncated``, ``too_large``, ``unsupported_mode``, ``empty``) so callers can turn it into a reject row.
"""

from softlines_attr.images.decode import (
    ImageError,
    decode_image,
    fit_size,
    load_image,
    resize_to_store,
)
from softlines_attr.images.encode import PreparedImage, encode_jpeg, prepare_for_shard
from softlines_attr.images.tensor import center_crop, crop_pixels, normalise, region_view, to_network_input

__all__ = [
    "ImageError",
    "PreparedImage",
    "center_crop",
    "crop_pixels",
    "decode_image",
    "encode_jpeg",
    "fit_size",
    "load_image",
    "normalise",
    "prepare_for_shard",
    "region_view",
    "resize_to_store",
    "to_network_input",
]
