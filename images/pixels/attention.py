"""Where the subject is: the box of a crop's size that holds the most of what draws the eye.

The idea is libvips' `attention` smartcrop (imgproxy's and imagor's `gravity=sm`): on a small version of
the picture, score every place for what a viewer looks at first, then keep the crop that holds the
largest score. Here a place is a block of a small version (at most `_DETAIL_SIDE` pixels a side, box-
reduced from the decoded image; blocks of about 1/`SMALL_SIDE` of it), scored for

- texture: the mean difference between neighbouring pixels inside the block, in its most varied colour
  channel (detail that the block's average hides; a plain or blurred background has none);
- outlines: the Sobel gradient of the blocks' luminance;
- saturation: the blocks' chroma (how far from grey);
- skin: a chroma in the band that human skin of every tone falls in, not dark.

Unlike libvips, which centres the crop on the maximum of the blurred score, the crop here is the window
of the crop's size with the largest sum (a summed-area table makes every window one subtraction): a
subject larger than the blur's reach is kept whole rather than around its busiest point. Outline, colour
and skin scores count above the picture's own median, so a saturated, skin-coloured or softly graded
background does not pull the crop towards itself. Among windows that hold as much (within 1 %), the one
that centres the subject wins; a flat picture keeps its centre.

Pure numpy and Pillow (the full-size pixel work in Pillow's C), no Django: a millisecond or two for the
500x375 draft a 4000x3000 JPEG's thumbnail decodes (bench/crops.py).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops

__all__ = ["SMALL_SIDE", "saliency", "salient_box"]

# Score blocks along the longer side. 128 places a crop to within 1/128 of the picture (a pixel or two of
# a 200 px thumbnail cut from a 4:3 photo) and keeps the window search and the numpy work small.
SMALL_SIDE = 128

# A pixel's chroma (distance from grey in YCbCr, 0..181) counts from here, fully from the top of the ramp.
_CHROMA_FROM, _CHROMA_RAMP = 24.0, 48.0
# Skin of every tone in YCbCr (Chai and Ngan's bounds), over this luminance.
_SKIN_CB, _SKIN_CR, _SKIN_Y_MIN = (77.0, 127.0), (133.0, 173.0), 40.0
# A Sobel magnitude (|gx| + |gy| of 0..255 luminance) counts fully from here: a clear edge in the small
# version.
_EDGE_FULL = 128.0
# The mean difference between neighbouring pixels inside a block counts as texture from here (above
# sensor and JPEG noise), fully from the top of the ramp.
_TEXTURE_FROM, _TEXTURE_RAMP = 6.0, 30.0
# Texture is measured on at most this many pixels a side (a box reduction of a larger decode).
_DETAIL_SIDE = 256
# What each score weighs: detail first, then the colour scores (a subject is mostly told by its edges; a
# saturated or skin-toned area helps among detailed ones).
_TEXTURE_WEIGHT, _EDGE_WEIGHT, _CHROMA_WEIGHT, _SKIN_WEIGHT = 1.0, 0.4, 0.5, 0.7
# Windows holding at least this share less than the best count as good as it: among them the subject is
# centred (JPEG noise in a plain background makes no two windows exactly equal).
_NEAR_BEST = 0.01


def saliency(im: Image.Image, block: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The attention score of each `block` (columns, rows of pixels) of `im` (any mode), as float32 of
    shape (rows // block rows, columns // block columns); a partial block at the right or bottom edge is
    left out."""
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    bx, by = block
    cols, rows = rgb.width // bx, rgb.height // by
    small = rgb.reduce((bx, by)) if block != (1, 1) else rgb
    ycc = np.asarray(small.convert("YCbCr"), dtype=np.float32)[:rows, :cols]
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    # Detail at two scales: texture inside each block (a fine pattern that the small version averages
    # away), and edges between blocks (outlines).
    edges = np.minimum(_sobel(y) / _EDGE_FULL, 1.0)
    if block != (1, 1):
        texture = _texture(rgb, block)[:rows, :cols]
        texture = np.pad(texture, ((0, rows - texture.shape[0]), (0, cols - texture.shape[1])), mode="edge")
        fine = np.clip((texture - _TEXTURE_FROM) / _TEXTURE_RAMP, 0.0, 1.0)
    else:
        fine = edges
    chroma = np.hypot(cb - 128.0, cr - 128.0)
    colour = np.clip((chroma - _CHROMA_FROM) / _CHROMA_RAMP, 0.0, 1.0)
    skin = (
        (cb >= _SKIN_CB[0])
        & (cb <= _SKIN_CB[1])
        & (cr >= _SKIN_CR[0])
        & (cr <= _SKIN_CR[1])
        & (y > _SKIN_Y_MIN)
    ).astype(np.float32)
    return (
        _TEXTURE_WEIGHT * fine
        + _EDGE_WEIGHT * _above_median(edges)
        + _CHROMA_WEIGHT * _above_median(colour)
        + _SKIN_WEIGHT * _above_median(skin)
    )


def salient_box(im: Image.Image, crop: tuple[float, float]) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) of size `crop` inside `im`, in `im`'s pixels, that holds the most
    attention. `crop` is clamped to `im`'s size; the box is always inside `im`."""
    width, height = im.size
    crop_w, crop_h = min(crop[0], width), min(crop[1], height)
    # A large decoded image (a PNG, which has no DCT draft) is first box-reduced in C to at most
    # _DETAIL_SIDE a side, where texture is still visible; the scores are then per block of that.
    pre = max(1, math.ceil(max(width, height) / _DETAIL_SIDE))
    base = im.reduce(pre) if pre > 1 else im
    side = max(1, math.ceil(max(base.size) / SMALL_SIDE))
    block = (min(side, base.width), min(side, base.height))
    scores = saliency(base, block)
    rows, cols = scores.shape
    # One score cell in `im`'s pixels.
    cell_w, cell_h = block[0] * width / base.width, block[1] * height / base.height
    # The crop in cells (at least one), and every position it can take.
    win_w = min(cols, max(1, round(crop_w / cell_w)))
    win_h = min(rows, max(1, round(crop_h / cell_h)))
    table = np.zeros((rows + 1, cols + 1), dtype=np.float64)
    table[1:, 1:] = scores.cumsum(axis=0).cumsum(axis=1)
    sums = table[win_h:, win_w:] - table[:-win_h, win_w:] - table[win_h:, :-win_w] + table[:-win_h, :-win_w]
    best = _best_window(sums, scores, (win_h, win_w))
    if best is None:
        centre_x, centre_y = width / 2, height / 2
    else:
        # The window's centre, back in `im`'s pixels.
        top, left = best
        centre_x = (left + win_w / 2) * cell_w
        centre_y = (top + win_h / 2) * cell_h
    # The box around it, kept inside.
    x0 = min(max(centre_x - crop_w / 2, 0.0), width - crop_w)
    y0 = min(max(centre_y - crop_h / 2, 0.0), height - crop_h)
    return (x0, y0, x0 + crop_w, y0 + crop_h)


def _texture(rgb: Image.Image, block: tuple[int, int]) -> np.ndarray:
    """The mean absolute difference between neighbouring pixels (the larger of across and down) in each
    block of `rgb`, in its most varied channel: fine detail that a block's average hides, in luminance or
    in colour (a pattern of two colours of one lightness). In Pillow's C (crops, differences, a box
    reduction), as the full-size pixels are the most there are to touch."""
    width, height = rgb.size
    if width < 2 or height < 2:
        return np.zeros((max(1, height // block[1]), max(1, width // block[0])), dtype=np.float32)
    here = rgb.crop((0, 0, width - 1, height - 1))
    across = ImageChops.difference(here, rgb.crop((1, 0, width, height - 1)))
    down = ImageChops.difference(here, rgb.crop((0, 1, width - 1, height)))
    return np.asarray(ImageChops.lighter(across, down).reduce(block), dtype=np.float32).max(axis=2)


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
