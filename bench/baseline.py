"""What our pipeline is compared against: the naive Pillow way, and a quality reference.

- `naive_render`: what a first version would do. Open, decode everything at full size, apply the EXIF
  orientation, `resize(LANCZOS)` straight to the output size, save with the same encoder settings as ours.
- `reference`: the best Pillow can do, for the PSNR column: full decode, one Lanczos resize, no encoding.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageChops, ImageOps, ImageSequence, ImageStat

from images.pixels.processing import EncodeOptions, OutputFormat


def naive_render(path: Path, size: tuple[int, int], output: OutputFormat, options: EncodeOptions) -> bytes:
    """Encode `path` resized to `size` in `output`, the straightforward way."""
    with Image.open(path) as im:
        if getattr(im, "n_frames", 1) > 1:
            return _naive_animation(im, size, output)
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        resized = im.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if output is OutputFormat.JPEG:
        resized.convert("RGB").save(
            buffer,
            "JPEG",
            quality=options.jpeg_quality,
            subsampling="4:2:0",
            optimize=True,
            progressive=True,
        )
    elif output is OutputFormat.PNG:
        resized.save(buffer, "PNG", optimize=True)
    else:
        raise ValueError(f"no naive baseline for {output}")
    return buffer.getvalue()


def _naive_animation(im: Image.Image, size: tuple[int, int], output: OutputFormat) -> bytes:
    if output is not OutputFormat.GIF:
        raise ValueError(f"no naive animated baseline for {output}")
    frames, durations = [], []
    for frame in ImageSequence.Iterator(im):
        frames.append(frame.convert("RGBA").resize(size, Image.Resampling.LANCZOS))
        durations.append(frame.info.get("duration", 100))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=im.info.get("loop", 0),
        optimize=True,
    )
    return buffer.getvalue()


def reference(path: Path, size: tuple[int, int]) -> Image.Image:
    """Full decode and a single Lanczos resize, in RGB; for an animation, its first frame."""
    with Image.open(path) as im:
        im.seek(0)
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        # Palette frames resample as RGBA; RGB(A) stays as it is (a 108 MP copy is 432 MB).
        pixels = im if im.mode in ("RGB", "RGBA") else im.convert("RGBA")
        return pixels.resize(size, Image.Resampling.LANCZOS).convert("RGB")


def first_frame_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGBA").convert("RGB")


def psnr(actual: Image.Image, expected: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over the RGB channels (higher is closer; inf when identical)."""
    if actual.size != expected.size:
        raise ValueError(f"sizes differ: {actual.size} vs {expected.size}")
    diff = ImageChops.difference(actual.convert("RGB"), expected.convert("RGB"))
    squares = sum(ImageStat.Stat(diff).sum2)
    mse = squares / (3 * diff.width * diff.height)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
