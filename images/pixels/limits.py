"""What a request may cost, on the way in and on the way out. Checked before anything is decoded."""

from __future__ import annotations

from dataclasses import dataclass


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
