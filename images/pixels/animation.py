"""Animations: every frame composited, resized and encoded, with durations, loop count and disposal kept.

Pillow's APNG blending is worked around here (see `_apng_canvases`). Pure Pillow; no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops
from PIL.PngImagePlugin import Blend, Disposal

from images.pixels import compat
from images.pixels.decoding import broken_data_is_invalid, check_frame, decode
from images.pixels.encoding import (
    EncodeOptions,
    OutputFormat,
    Rendered,
    encode,
    has_transparency,
    png_compression,
    save,
    with_webp_alpha_flag,
)
from images.pixels.errors import InvalidImage
from images.pixels.limits import Limits

# Output formats that can hold an animation (PNG as APNG); an animated source stored in another keeps its
# first frame.
ANIMATED_OUTPUTS = {OutputFormat.GIF, OutputFormat.WEBP, OutputFormat.PNG}

# Formats whose frames are an animation. A TIFF's pages, an MPO's views or a HEIF file's images are
# several pictures, of sizes of their own: the first is the image.
ANIMATED_INPUTS = {"GIF", "WEBP", "PNG", "AVIF"}


@dataclass
class _Frame:
    pixels: Image.Image
    duration: int
    disposal: int


def render_animation(
    im: Image.Image,
    frames: int,
    step: Callable[[Image.Image], Image.Image],
    output: OutputFormat,
    options: EncodeOptions,
    limits: Limits,
) -> Rendered:
    """Composite every frame, pass it through `step` (resize, orient, colour), encode them all as `output`;
    keep durations, the loop count and (GIF) disposal.

    The resized frames are held together until they are encoded: an APNG is stored opaque only when
    every frame is, a WebP is labelled transparent when any frame is, and the encoders want them all at
    once anyway (Pillow's PNG and WebP writers list them before they start; its GIF writer keeps a
    palette copy of each). That is 4 bytes per output pixel of every frame, and the APNG writer's own
    copies as many again, which IMAGE_MAX_ANIMATION_PIXELS bounds.
    """
    loop = im.info.get("loop")
    canvases = _apng_canvases(im, frames, limits) if im.format == "PNG" else _canvases(im, frames, limits)
    timeline: list[_Frame] = []
    for canvas in canvases:
        # Whole composited canvases; RGBA keeps each one's transparency through resizing.
        frame = _Frame(step(canvas), int(im.info.get("duration", 100)), getattr(im, "disposal_method", 0))
        if output is OutputFormat.GIF and timeline and _same_pixels(timeline[-1].pixels, frame.pixels):
            # Pillow's GIF writer merges such frames itself, and when one is left it trips over the list
            # of disposals meant for several.
            timeline[-1].duration += frame.duration
            continue
        timeline.append(frame)
    if not timeline:
        raise InvalidImage(f"The {im.format} animation has no frames.")
    if len(timeline) == 1:
        # Every frame came out the same: a still image.
        still = timeline[0].pixels
        return Rendered(encode(still, output, options), format=output, width=still.width, height=still.height)

    transparent = output is not OutputFormat.GIF and any(has_transparency(f.pixels) for f in timeline)
    if output is OutputFormat.PNG and not transparent:
        for frame in timeline:
            frame.pixels = frame.pixels.convert("RGB")  # a quarter fewer bytes to compress
    first = timeline[0].pixels
    first.info = {}
    size = (first.width, first.height)
    params: dict[str, Any] = {
        "save_all": True,
        "append_images": [frame.pixels for frame in timeline[1:]],
        "duration": [frame.duration for frame in timeline],
    }
    if (plays := _loop_count(loop, source=im.format, output=output)) is not None:
        params["loop"] = plays
    if output is OutputFormat.GIF:
        disposals = [frame.disposal for frame in timeline]
        uniform = len(set(disposals)) == 1
        params["disposal"] = disposals[0] if uniform else disposals
    pixels = size[0] * size[1] * len(timeline)
    if output is OutputFormat.GIF:
        data = save(first, "GIF", optimize=True, **params)
    elif output is OutputFormat.PNG:
        # Every frame is a whole canvas: each replaces the one before (APNG's default disposal and blend).
        data = save(first, "PNG", **png_compression(pixels), **params)
    else:
        data = save(first, "WEBP", quality=options.webp_quality, method=4, **params)
        if transparent:
            data = with_webp_alpha_flag(data)
    return Rendered(data=data, format=output, width=size[0], height=size[1])


def _same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and ImageChops.difference(a, b).getbbox(alpha_only=False) is None


def _loop_count(loop: int | None, *, source: str | None, output: OutputFormat) -> int | None:
    """The source's loop count in the output's terms; None leaves it out.

    A GIF counts repeats after the first play, and one without a count plays once. WebP and APNG count
    plays (0 is forever) and, without a count, loop forever.
    """
    if source != "GIF" or output is OutputFormat.GIF:
        return loop
    if loop is None:
        return 1
    return loop + 1 if loop else 0


def _canvases(im: Image.Image, frames: int, limits: Limits) -> Iterator[Image.Image]:
    """Every frame of a GIF, WebP or AVIF animation, as Pillow composites it onto the canvas, in RGBA;
    the canvas checked after every seek (`decode`)."""
    for index in range(frames):
        decode(im, limits, frame=index)
        yield im.convert("RGBA")


def _apng_canvases(im: Image.Image, frames: int, limits: Limits) -> Iterator[Image.Image]:
    """Every frame of an APNG composited onto its canvas as browsers do, in RGBA.

    Pillow blends a frame "over" the canvas with `paste(mask=alpha)`, which is not the over operator:
    semi-transparent pixels (anti-aliased edges) come out darker and more transparent than they are. So
    Pillow is asked for each frame's own pixels only (blend "source", through the attribute its loader
    reads), and they are composited here, with the frame's disposal applied before the next one.
    """
    canvas = Image.new("RGBA", im.size)
    # A still image for viewers without animation may come first; the animation does not show it.
    first = 1 if im.info.get("default_image") else 0
    dispose: tuple[tuple[int, int], Image.Image] | None = None  # what the last frame's box goes back to
    for index in range(frames):
        with broken_data_is_invalid("The PNG animation could not be decoded."):
            if index:
                im.seek(index)
            check_frame(im, limits)  # before the load, as for every other format
            box = tuple(int(v) for v in im.info.get("bbox", (0, 0, *im.size)))
            blend, disposal = im.info.get("blend"), im.info.get("disposal")
            compat.load_apng_frame_unblended(im)
        if index < first:
            continue
        if dispose is not None:
            canvas.paste(dispose[1], dispose[0])
        pixels = im.convert("RGBA").crop(box)
        if disposal == Disposal.OP_PREVIOUS:
            dispose = (box[:2], canvas.crop(box))
        elif disposal == Disposal.OP_BACKGROUND:
            dispose = (box[:2], Image.new("RGBA", pixels.size))
        else:
            dispose = None
        if blend == Blend.OP_OVER:
            canvas.alpha_composite(pixels, box[:2])
        else:
            canvas.paste(pixels, box[:2])
        yield canvas.copy()
