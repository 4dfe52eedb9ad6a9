"""The pure pipeline as this deployment runs it: its limits and encoder settings from the settings, and
one decode slot per render (uploads and first renders of renditions alike).

An upload's stored file (its master) is what every rendition decodes again, so it is written to decode
fast: a JPEG master is baseline, not progressive (`EncodeOptions.jpeg_progressive`; README, "Renditions").
"""

from __future__ import annotations

from typing import BinaryIO

from django.apps import apps
from django.conf import settings

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
    master: bool = False,
) -> processing.Rendered:
    """`processing.render` with this deployment's limits and encoders, in a decode slot (ImagesConfig);
    `preview`: with the small version placeholders are made from; `master`: the output is an upload's
    stored file, which renditions decode again (a JPEG is written baseline)."""
    with apps.get_app_config("images").decode_slots:
        return processing.render(
            src,
            width=width,
            height=height,
            fit=fit,
            output_format=output_format,
            limits=limits(),
            options=encode_options(master=master),
            preview=preview,
        )


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


def encode_options(*, master: bool = False) -> processing.EncodeOptions:
    """The encoders' settings; `master`: for a file that is decoded again (baseline JPEG)."""
    return processing.EncodeOptions(
        jpeg_progressive=not master,
        jpeg_quality=settings.IMAGE_JPEG_QUALITY,
        webp_quality=settings.IMAGE_WEBP_QUALITY,
        avif_quality=settings.IMAGE_AVIF_QUALITY,
        avif_speed=settings.IMAGE_AVIF_SPEED,
    )
