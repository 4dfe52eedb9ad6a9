"""The pure pipeline as this deployment runs it: its limits and encoder settings from the settings, and
one decode slot per render (uploads and first renders of renditions alike), waited for a bounded time.

The one door to `images.pixels` for work (`images.formats` carries its names only): services, renditions
and the backfill call what is here, never the pixel modules themselves (an import contract in
`pyproject.toml` checks it). The pixel work's refusals come through here too, for `images.exceptions`.

An upload's stored file (its master) is what every rendition decodes again, so it is written to decode
fast: a JPEG master is baseline, not progressive (`EncodeOptions.jpeg_progressive`; README, "Renditions").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from django.apps import apps
from django.conf import settings

from images.exceptions import ServerBusy
from images.pixels import decoding, hashing, masters, placeholders, processing
from images.pixels.errors import ImageTooLarge, InvalidImage, PixelError, UnsupportedFormat
from images.pixels.hashing import bands as hash_bands
from images.pixels.hashing import probes as hash_probes
from images.pixels.hashing import to_signed as hash_to_signed
from images.pixels.placeholders import Placeholder
from images.pixels.processing import EncodeOptions, Fit, Gravity, OutputFormat, Rendered

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MASTER_HEAD_BYTES",
    "EncodeOptions",
    "ImageTooLarge",
    "InvalidImage",
    "PixelError",
    "Placeholder",
    "Rendered",
    "UnsupportedFormat",
    "baseline_master",
    "bound_pillow",
    "describe",
    "encode_options",
    "hash_bands",
    "hash_probes",
    "hash_to_signed",
    "is_progressive_jpeg",
    "limits",
    "perceptual_hash",
    "point_in_crop",
    "render",
    "stored_description",
    "stored_summary",
]


def render(
    src: BinaryIO,
    *,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    gravity: Gravity = Gravity.CENTER,
    focal: tuple[float, float] | None = None,
    output_format: OutputFormat | None = None,
    preview: bool = False,
    master: bool = False,
) -> Rendered:
    """`processing.render` with this deployment's limits and encoders, in a decode slot (ImagesConfig);
    `preview`: with the small version placeholders are made from; `master`: the output is an upload's
    stored file, which renditions decode again (a JPEG is written baseline).

    Waits at most IMAGE_DECODE_WAIT_SECONDS for a slot, then raises ServerBusy (503, Retry-After): a queue
    with no bound would keep every thread of the process waiting behind one slow decode.
    """
    slots = apps.get_app_config("images").decode_slots
    if not slots.acquire(timeout=settings.IMAGE_DECODE_WAIT_SECONDS):
        raise ServerBusy(
            "Every image decoder of this server is busy; nothing was changed. Try again shortly."
        )
    try:
        return processing.render(
            src,
            width=width,
            height=height,
            fit=fit,
            gravity=gravity,
            focal=focal,
            output_format=output_format,
            limits=limits(),
            options=encode_options(master=master),
            preview=preview,
        )
    finally:
        slots.release()


def point_in_crop(point: tuple[float, float], crop: tuple[float, float, float, float]) -> tuple[float, float]:
    """`point` (fractions of a source) as fractions of the part `crop` kept (`Rendered.crop`)."""
    return processing.point_in_crop(point, crop)


def bound_pillow() -> None:
    """Once per process: Pillow's own decompression-bomb check at our pixel limit.

    Our own pixel limits are checked from the header before anything is decoded, and again after every
    seek (images/pixels/decoding.py); Pillow's own check, at the same number, is the line behind them,
    inside the decoder: never off.
    """
    decoding.bound_pillow(settings.IMAGE_MAX_PIXELS)


# How much of a stored file tells whether it is a progressive JPEG (almost always; else read it all).
MASTER_HEAD_BYTES = masters.HEAD_BYTES


def is_progressive_jpeg(head: bytes) -> bool | None:
    """Whether a stored JPEG is progressive, from its first bytes (None: they do not say)."""
    return masters.is_progressive_jpeg(head)


def baseline_master(src: BinaryIO) -> bytes:
    """A progressive JPEG master rewritten baseline with its own tables, within this deployment's limits."""
    return masters.baseline_jpeg(src, limits())


def limits() -> processing.Limits:
    """What one render may cost, from the settings."""
    return processing.Limits(
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_dimension=settings.IMAGE_MAX_DIMENSION,
        max_frames=settings.IMAGE_MAX_FRAMES,
        max_animation_pixels=settings.IMAGE_MAX_ANIMATION_PIXELS,
        max_enlarged_pixels=settings.IMAGE_MAX_ENLARGED_PIXELS,
        max_avif_pixels=settings.IMAGE_MAX_AVIF_PIXELS,
    )


def encode_options(*, master: bool = False) -> EncodeOptions:
    """The encoders' settings; `master`: for a file that is decoded again (baseline JPEG)."""
    return EncodeOptions(
        jpeg_progressive=not master,
        jpeg_quality=settings.IMAGE_JPEG_QUALITY,
        webp_quality=settings.IMAGE_WEBP_QUALITY,
        avif_quality=settings.IMAGE_AVIF_QUALITY,
        avif_speed=settings.IMAGE_AVIF_SPEED,
    )


def describe(preview: PILImage.Image) -> Placeholder:
    """The placeholder and dominant colour of a render's small version (`Rendered.preview`)."""
    return placeholders.describe(preview)


def stored_description(src: BinaryIO) -> Placeholder:
    """The placeholder and dominant colour of a stored file, read within this deployment's limits."""
    return placeholders.describe(processing.stored_preview(src, limits()))


def perceptual_hash(preview: PILImage.Image) -> int:
    """The 64-bit DCT hash (unsigned) of a render's small version (`Rendered.preview`), on white."""
    return hashing.phash(preview)


def stored_summary(src: BinaryIO) -> tuple[Placeholder, int]:
    """The placeholder, dominant colour and perceptual hash of a stored file, from one small version read
    within this deployment's limits (the backfill's one decode per file)."""
    small = processing.stored_preview(src, limits())
    return placeholders.describe(small), hashing.phash(small)
