"""What a request may cost, on the way in and on the way out, and the check of a canvas against it.
Checked before anything is decoded, and again whenever a decoder has moved to another frame."""

from __future__ import annotations

from dataclasses import dataclass

from images.pixels.errors import ImageTooLarge


@dataclass(frozen=True)
class Limits:
    """What a request may cost, on the way in and on the way out; all checked before decoding."""

    # Pixels of one frame: the source's canvas and the output alike.
    max_pixels: int = 120_000_000
    max_dimension: int = 10_000
    max_frames: int = 500
    # Pixels across all frames of an animation: frames x canvas (decoded one at a time) and frames x
    # output (held together until encoded).
    max_animation_pixels: int = 100_000_000
    # Pixels across all frames of an output larger than the part of the source it is made from. A
    # shrink's work is bounded by what was sent; an enlargement makes work out of a few bytes.
    max_enlarged_pixels: int = 16_000_000
    # Pixels of an AVIF output: its encoder takes about 30 bytes per pixel and 0.1 s of CPU per megapixel.
    max_avif_pixels: int = 16_000_000


@dataclass(frozen=True)
class Canvas:
    """The canvas an image is decoded on, and how many frames are drawn on it."""

    width: int
    height: int
    frames: int


def check_canvas(canvas: Canvas, limits: Limits) -> None:
    """Refuse a canvas (and its frames) over `limits`: ImageTooLarge naming the setting."""
    pixels = canvas.width * canvas.height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"The image has {canvas.width}x{canvas.height} = {pixels} pixels, over the limit of "
            f"{limits.max_pixels} (IMAGE_MAX_PIXELS)."
        )
    if canvas.frames > 1 and canvas.frames * pixels > limits.max_animation_pixels:
        raise ImageTooLarge(
            f"The animation has {canvas.frames} frames of {canvas.width}x{canvas.height}, over the limit "
            f"of {limits.max_animation_pixels} pixels in all (IMAGE_MAX_ANIMATION_PIXELS)."
        )
