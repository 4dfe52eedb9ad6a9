"""What a client shows before an image arrives: its ThumbHash placeholder and its dominant colour.

Both come from a small version of the stored pixels (at most 64x64; ThumbHash takes up to 100x100), which the
pipeline makes from the pixels it already holds (`processing.render(..., preview=True)`) and the backfill
from the stored file (`processing.stored_preview`). Pure Pillow and `thumbhash` (the `thumbhash-rs`
package: Rust bindings to the reference implementation, encoder and decoder); no Django.

- `placeholder`: a ThumbHash, standard base64 (about 25-35 characters). It keeps the aspect ratio and the
  transparency, which BlurHash does not; `thumbhash` on npm decodes it in the browser.
- `color`: `#rrggbb`, the most populous entry of an 8-colour palette of the small version (Pillow's fast
  octree quantizer), counting only the pixels that are at least half opaque. A plain average turns a
  photo grey-brown; a palette's largest cluster is a colour that is really in it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import thumbhash
from PIL import Image, ImageStat

# ThumbHash encodes at most 100x100 pixels.
THUMBHASH_MAX = 100

# The small version's longer side. A ThumbHash keeps at most 7 DCT terms a side, which 64 pixels resolve as
# well as 100 (photos get the same hash but for a character or two) at 60% of the cost: 0.8 ms rather
# than 1.3 ms per upload for both values (bench/pipeline.py).
PREVIEW_MAX = 64

# Colours in the palette the dominant colour is chosen from: few enough that the shades of one area fall
# in one entry, enough that two large areas do not merge into a colour between them.
_PALETTE_COLOURS = 8

# Pixels at least this opaque count for the colour; fully transparent ones hold colours nobody sees.
_OPAQUE_ENOUGH = 128


@dataclass(frozen=True)
class Placeholder:
    thumbhash: str  # base64
    color: str  # "#rrggbb"


def small_version(im: Image.Image, *, on_white: bool = False) -> Image.Image:
    """`im` shrunk to fit in PREVIEW_MAX x PREVIEW_MAX (never enlarged), keeping its aspect ratio, in RGB
    or RGBA (RGBA when it has an alpha channel). `on_white`: flattened onto white, as a JPEG stores it."""
    mode = "RGBA" if im.mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in im.info else "RGB"
    if im.mode != mode:
        im = im.convert(mode)
    scale = min(PREVIEW_MAX / im.width, PREVIEW_MAX / im.height, 1.0)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    # Integer box reduction first, then a bilinear step: an area average, at a fraction of Lanczos' cost.
    small = im.copy() if size == im.size else im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if on_white and small.mode == "RGBA":
        white = Image.new("RGB", small.size, "white")
        white.paste(small, mask=small.getchannel("A"))
        small = white
    return small


def describe(small: Image.Image) -> Placeholder:
    """The placeholder and colour of `small` (a `small_version`; ThumbHash takes at most 100x100)."""
    if small.width > THUMBHASH_MAX or small.height > THUMBHASH_MAX:
        raise ValueError(
            f"{small.width}x{small.height} is over {THUMBHASH_MAX}x{THUMBHASH_MAX}: shrink it first"
        )
    rgba = small if small.mode == "RGBA" else small.convert("RGBA")
    hashed = thumbhash.rgba_to_thumb_hash(rgba.width, rgba.height, rgba.tobytes())
    return Placeholder(thumbhash=base64.b64encode(hashed).decode("ascii"), color=dominant_color(rgba))


def dominant_color(rgba: Image.Image) -> str:
    """The most populous colour of an 8-colour palette of `rgba`'s visible pixels, as `#rrggbb`."""
    rgb = rgba.convert("RGB")
    opaque = rgba.getchannel("A").point(lambda a: 255 if a >= _OPAQUE_ENOUGH else 0)
    mask: Image.Image | None = opaque
    if opaque.getextrema() == (255, 255):
        mask = None  # opaque throughout: count every pixel
    elif opaque.getextrema() == (0, 0):
        mask = None  # nothing visible: the colours there are, rather than none
    else:
        # The hidden pixels take the visible ones' mean, so they found no palette entry of their own; the
        # mask keeps them out of the count.
        mean = tuple(round(v) for v in ImageStat.Stat(rgb, opaque).mean)
        rgb = Image.composite(rgb, Image.new("RGB", rgb.size, mean), opaque)
    palette = rgb.quantize(_PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE)
    counts = palette.histogram(mask=mask)
    entries = palette.getpalette() or []
    used = len(entries) // 3
    index = max(range(min(used, len(counts))), key=counts.__getitem__)
    r, g, b = entries[3 * index : 3 * index + 3]
    return f"#{r:02x}{g:02x}{b:02x}"


def decode(placeholder: str) -> Image.Image:
    """The RGBA picture a ThumbHash stands for (at most 32x32), as a client would draw it."""
    width, height, rgba = thumbhash.thumb_hash_to_rgba(base64.b64decode(placeholder))
    return Image.frombytes("RGBA", (width, height), rgba)
