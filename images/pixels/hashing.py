"""A perceptual hash of a picture: 64 bits that stay nearly the same when the picture is resized,
re-encoded, converted or lightly cropped, and differ in about half their bits between unrelated pictures.

The classic DCT hash (pHash, as the `imagehash` package's `phash` computes it): the picture in grayscale at
32x32, its 2-D DCT-II, the 8x8 lowest frequencies (the DC term included), each bit set when its
coefficient is above the median of the 64. Bits in row-major order, the first the most significant, so the
hex form is `imagehash`'s for the same 32x32 grayscale input (tests/test_phash.py checks the transform
against a direct evaluation of the DCT's sum). The DC bit, always above the median, carries no
information: the hash has 63 useful bits, like `imagehash`'s.

It is computed from the small version the placeholders are made of (`placeholders.small_version`, at most
64x64; an animation's first frame), so it costs no decode of its own: a 32x32 resize and two small matrix
products with a DCT matrix computed once, about 0.08 ms (bench/phash.py). Transparent pixels are put on white
first, as a JPEG of the picture would show them.

Distances: `distance(a, b)` is the number of differing bits (Hamming). `bands(h)` splits a hash into the
integer bands that the database indexes for multi-index hashing (images/selectors.py, README "Duplicates").
Pure numpy and Pillow; no Django.
"""

from __future__ import annotations

import functools
from itertools import combinations

import numpy as np
from PIL import Image

# The side of the grayscale square the DCT is taken of, and of the low-frequency block kept.
SIZE = 32
KEPT = 8
BITS = KEPT * KEPT

# The DCT-II basis, unnormalized (cos(pi k (2n + 1) / 2N)), its first KEPT rows only: the coefficients
# kept are D X D^T restricted to them. One scale for every coefficient, as scipy's default DCT has, so
# that the comparison with the median is the one `imagehash` makes (an orthonormal DCT scales the DC row
# differently).
_n = np.arange(SIZE)
_DCT = np.cos(np.pi * np.arange(KEPT)[:, None] * (2 * _n[None, :] + 1) / (2 * SIZE))
_DCT_T = np.ascontiguousarray(_DCT.T)
_WEIGHTS = (1 << np.arange(BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)

# Multi-index hashing: the 64 bits in BANDS bands (most significant first) of these widths. Three bands
# of 22/21/21 bits give the fewest probes and candidates at the distances asked most (README, bench).
BAND_WIDTHS = (22, 21, 21)
BANDS = len(BAND_WIDTHS)
MAX_SIGNED = 2**63 - 1


def phash(small: Image.Image) -> int:
    """The 64-bit DCT hash of `small` (a small version: any size, mode and transparency), unsigned."""
    return phash_of_gray(_gray32(small))


def phash_of_gray(gray: np.ndarray) -> int:
    """The hash of a SIZE x SIZE grayscale array (values 0-255)."""
    coefficients = _DCT @ gray.astype(np.float64) @ _DCT_T
    flat = coefficients.ravel()
    bits = flat > np.median(flat)
    return int(_WEIGHTS[bits].sum(dtype=np.uint64))


def _gray32(small: Image.Image) -> np.ndarray:
    if small.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in small.info:
        rgba = small.convert("RGBA")
        white = Image.new("RGB", rgba.size, "white")
        white.paste(rgba, mask=rgba.getchannel("A"))
        small = white
    # Grayscale first, then the resize (as imagehash does): Lanczos on at most 64x64 pixels costs little.
    gray = small.convert("L").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(gray, dtype=np.float64)


def to_hex(value: int) -> str:
    """16 lowercase hex digits."""
    return f"{value:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)


def to_signed(value: int) -> int:
    """The unsigned hash as the database's signed 64-bit integer (bigint) holds it."""
    return value - (1 << 64) if value > MAX_SIGNED else value


def to_unsigned(value: int) -> int:
    return value & ((1 << 64) - 1)


def distance(a: int, b: int) -> int:
    """Hamming distance of two hashes (signed or unsigned)."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def bands(value: int) -> tuple[int, ...]:
    """The hash's bands, most significant first, each a non-negative integer under 2**width."""
    value = to_unsigned(value)
    out = []
    shift = BITS
    for width in BAND_WIDTHS:
        shift -= width
        out.append((value >> shift) & ((1 << width) - 1))
    return tuple(out)


def band_radii(max_distance: int) -> tuple[int, ...]:
    """How far from the query's band each band is searched so that every hash within `max_distance` is in
    at least one probe (multi-index hashing; -1: that band is not searched).

    With D = m r + a (0 <= a < m): if the first a + 1 bands each differed in more than r bits and the others
    in more than r - 1, the hashes would differ in at least m r + a + 1 > D bits. So the first a + 1 bands
    are searched within r, the others within r - 1 (Norouzi et al., "Fast Search in Hamming Space with
    Multi-Index Hashing", 2012). The wider bands come first: they take the larger radius at fewer
    candidates per probe.
    """
    if max_distance < 0:
        raise ValueError("max_distance must be 0 or more")
    r, a = divmod(max_distance, BANDS)
    return tuple(r if i <= a else r - 1 for i in range(BANDS))


@functools.lru_cache(maxsize=64)
def _flips(width: int, radius: int) -> np.ndarray:
    """Every `width`-bit mask with at most `radius` bits set, fewest first (computed once per pair)."""
    masks = [
        sum(1 << p for p in positions)
        for k in range(radius + 1)
        for positions in combinations(range(width), k)
    ]
    return np.array(masks, dtype=np.int64)


def neighbours(value: int, width: int, radius: int) -> list[int]:
    """Every `width`-bit value within `radius` bits of `value`, `value` first."""
    if radius < 0:
        return []
    return (_flips(width, radius) ^ value).tolist()


def probes(value: int, max_distance: int) -> list[list[int]]:
    """For each band, the band values to look up (empty: the band is not searched)."""
    return [
        neighbours(band, width, radius)
        for band, width, radius in zip(bands(value), BAND_WIDTHS, band_radii(max_distance), strict=True)
    ]
