"""Where the subject is: the box of a crop's size that holds the most of what draws the eye.

The idea is libvips' `attention` smartcrop (imgproxy's and imagor's `gravity=sm`): on a small version of
the picture, score every pixel for the three things a viewer looks at first, then keep the crop that
holds the largest score.

- edges: the Sobel gradient of the luminance (detail, texture, outlines; a plain or blurred background
  has almost none);
- saturation: the chroma of the pixel (how far it is from grey);
- skin: a pixel whose chroma falls in the band human skin of every tone falls in, and that is not dark.

Unlike libvips, which centres the crop on the maximum of the blurred score, the crop here is the window
of the crop's size with the largest sum (a summed-area table makes every window one subtraction): a
subject larger than the blur's reach is kept whole rather than around its busiest point. Colour scores
count above the picture's own median, so a saturated or skin-coloured plain background does not pull the
crop towards itself. Among windows that hold as much (within 1 %), the one that centres the subject
wins; a flat picture keeps its centre.

Pure numpy and Pillow, no Django. The work is on at most `SMALL_SIDE` pixels a side, reduced from the
decoded image by an integer box filter: about a millisecond (bench/crops.py).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["SMALL_SIDE", "saliency", "salient_box"]

# The small version's longer side. 128 places a crop to within 1/128 of the picture (a pixel of a 200 px
# thumbnail cut from a 4:3 photo) and costs a quarter of 256; the subject's detail survives the box
# filter as edges.
SMALL_SIDE = 128

# A pixel's chroma (distance from grey in YCbCr, 0..181) counts from here, fully from the top of the ramp.
_CHROMA_FROM, _CHROMA_RAMP = 24.0, 48.0
# Skin of every tone in YCbCr (Chai and Ngan's bounds), over this luminance.
_SKIN_CB, _SKIN_CR, _SKIN_Y_MIN = (77.0, 127.0), (133.0, 173.0), 40.0
# A Sobel magnitude (|gx| + |gy| of 0..255 luminance) counts fully from here: a clear edge in the small
# version.
_EDGE_FULL = 128.0
# What each score weighs: detail first, then the colour scores (a subject is mostly told by its edges; a
# saturated or skin-toned area helps among detailed ones).
_EDGE_WEIGHT, _CHROMA_WEIGHT, _SKIN_WEIGHT = 1.0, 0.5, 0.7
# Windows holding at least this share less than the best count as good as it: among them the subject is
# centred (JPEG noise in a plain background makes no two windows exactly equal).
_NEAR_BEST = 0.01


def saliency(im: Image.Image) -> np.ndarray:
    """The attention score of every pixel of `im` (any mode), as float32 of `im`'s shape (rows, columns)."""
    ycc = np.asarray(im.convert("RGB").convert("YCbCr"), dtype=np.float32)
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    edges = np.minimum(_sobel(y) / _EDGE_FULL, 1.0)
    chroma = np.hypot(cb - 128.0, cr - 128.0)
    colour = np.clip((chroma - _CHROMA_FROM) / _CHROMA_RAMP, 0.0, 1.0)
    skin = (
        (cb >= _SKIN_CB[0])
        & (cb <= _SKIN_CB[1])
        & (cr >= _SKIN_CR[0])
        & (cr <= _SKIN_CR[1])
        & (y > _SKIN_Y_MIN)
    ).astype(np.float32)
    return _EDGE_WEIGHT * edges + _CHROMA_WEIGHT * _above_median(colour) + _SKIN_WEIGHT * _above_median(skin)


def salient_box(im: Image.Image, crop: tuple[float, float]) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) of size `crop` inside `im`, in `im`'s pixels, that holds the most
    attention. `crop` is clamped to `im`'s size; the box is always inside `im`."""
    width, height = im.size
    crop_w, crop_h = min(crop[0], width), min(crop[1], height)
    factor = max(1, math.ceil(max(width, height) / SMALL_SIDE))
    small = im.reduce(factor) if factor > 1 else im
    scores = saliency(small)
    rows, cols = scores.shape
    # The crop in the small version's pixels (at least one), and every position it can take.
    win_w = min(cols, max(1, round(crop_w * cols / width)))
    win_h = min(rows, max(1, round(crop_h * rows / height)))
    table = np.zeros((rows + 1, cols + 1), dtype=np.float64)
    table[1:, 1:] = scores.cumsum(axis=0).cumsum(axis=1)
    sums = table[win_h:, win_w:] - table[:-win_h, win_w:] - table[win_h:, :-win_w] + table[:-win_h, :-win_w]
    best = _best_window(sums, scores, (win_h, win_w))
    if best is None:
        centre_x, centre_y = width / 2, height / 2
    else:
        # The window's centre, back in `im`'s pixels.
        top, left = best
        centre_x = (left + win_w / 2) * width / cols
        centre_y = (top + win_h / 2) * height / rows
    # The box around it, kept inside.
    x0 = min(max(centre_x - crop_w / 2, 0.0), width - crop_w)
    y0 = min(max(centre_y - crop_h / 2, 0.0), height - crop_h)
    return (x0, y0, x0 + crop_w, y0 + crop_h)


def _sobel(y: np.ndarray) -> np.ndarray:
    """|gx| + |gy| of the Sobel operator, the border repeated (so the picture's edge is no edge)."""
    p = np.pad(y, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.abs(gx) + np.abs(gy)


def _above_median(score: np.ndarray) -> np.ndarray:
    """`score` above its median over the picture (on a strided sample: a median of everything costs more
    than the rest of the work): what is common to most of the picture is background, not subject."""
    level = float(np.median(score[::3, ::3]))
    return np.maximum(score - level, 0.0) if level > 0 else score


def _best_window(sums: np.ndarray, scores: np.ndarray, window: tuple[int, int]) -> tuple[int, int] | None:
    """The (row, column) of the window to keep: of the windows within `_NEAR_BEST` of the largest sum, the
    one whose centre is nearest the centre of attention of the best window, so that a subject smaller
    than the crop sits in its middle rather than at an edge. None for a flat picture (no window scores):
    the crop stays in the middle."""
    best = float(sums.max())
    if best <= 0:
        return None
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    win_h, win_w = window
    inside = scores[top : top + win_h, left : left + win_w]
    weight = float(inside.sum())
    # The centre of attention of the best window, as a window position (top-left) that centres it.
    ys = float((inside.sum(axis=1) * np.arange(win_h)).sum()) / weight + top + 0.5
    xs = float((inside.sum(axis=0) * np.arange(win_w)).sum()) / weight + left + 0.5
    want_top, want_left = ys - win_h / 2, xs - win_w / 2
    near_y, near_x = np.nonzero(sums >= best * (1 - _NEAR_BEST))
    distance = (near_y - want_top) ** 2 + (near_x - want_left) ** 2
    i = int(np.argmin(distance))
    return int(near_y[i]), int(near_x[i])
