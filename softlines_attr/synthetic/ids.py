"""ASIN-like product ids: ``B0`` and 8 base-36 characters, unique per code and shifted by the seed."""

from __future__ import annotations

import numpy as np

from softlines_attr.synthetic.errors import CatalogGenError

ASIN_MOD = 36**8
_ASIN_MULT = 98_765_432_111  # odd and not a multiple of 3: a bijection modulo 36**8
_ASIN_MULT2 = 5_000_011  # odd, not a multiple of 3, small enough that 36**8 * it fits in uint64
_ASIN_MAX_CODE = (2**64 - 1) // _ASIN_MULT - 1
_B36 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def asin_strings(codes: np.ndarray, seed: int) -> np.ndarray:
    """Unique 10-character ASIN-like ids (``B0`` + 8 base-36 characters) for distinct codes.

    The map ``code -> (code * M + offset(seed)) mod 36**8`` is a bijection, so distinct codes give
    distinct ids. Children use even codes and parents odd ones, so the two never collide.

    Args:
        codes: Non-negative integer codes (up to about 1.8e8).
        seed: The catalog seed (shifts the ids).

    Returns:
        A numpy ``S10`` array.

    Raises:
        CatalogGenError: if a code is too large.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    if codes.size and int(codes.max()) > _ASIN_MAX_CODE:
        raise CatalogGenError(f"ASIN code {int(codes.max())} too large; expected at most {_ASIN_MAX_CODE} products")
    offset = np.uint64((int(seed) * 2_654_435_761 + 12_345) % ASIN_MOD)
    x = (codes * np.uint64(_ASIN_MULT) + offset) % np.uint64(ASIN_MOD)
    # reverse the base-36 digits (a bijection) so that neighbouring codes differ in the leading
    # characters, then mix once more with a small multiplier (no uint64 overflow)
    rev = np.zeros_like(x)
    for _ in range(8):
        rev = rev * np.uint64(36) + x % np.uint64(36)
        x //= np.uint64(36)
    x = (rev * np.uint64(_ASIN_MULT2) + offset // np.uint64(7)) % np.uint64(ASIN_MOD)
    out = np.empty((codes.size, 10), dtype=np.uint8)
    out[:, 0] = ord("B")
    out[:, 1] = ord("0")
    for pos in range(9, 1, -1):
        out[:, pos] = _B36[(x % np.uint64(36)).astype(np.int64)]
        x //= np.uint64(36)
    return out.view("S10").ravel()
