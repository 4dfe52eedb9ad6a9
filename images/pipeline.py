"""The pure pipeline as this deployment runs it: its limits and encoder settings from the settings, and
one decode slot per render (uploads and first renders of renditions alike), waited for a bounded time."""

from __future__ import annotations

from typing import BinaryIO

from django.apps import apps
from django.conf import settings

from images.exceptions import ServerBusy
from images.pixels import processing
from images.pixels.processing import Fit, OutputFormat


def render(
    src: BinaryIO,
    *,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    output_format: OutputFormat | None = None,
    preview: bool = False,
) -> processing.Rendered:
    """`processing.render` with this deployment's limits and encoders, in a decode slot (ImagesConfig);
    `preview`: with the small version placeholders are made from.

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
            output_format=output_format,
            limits=limits(),
            options=encode_options(),
            preview=preview,
        )
    finally:
        slots.release()


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


def encode_options() -> processing.EncodeOptions:
    """The encoders' settings."""
    return processing.EncodeOptions(
        jpeg_quality=settings.IMAGE_JPEG_QUALITY,
        webp_quality=settings.IMAGE_WEBP_QUALITY,
        avif_quality=settings.IMAGE_AVIF_QUALITY,
        avif_speed=settings.IMAGE_AVIF_SPEED,
    )
