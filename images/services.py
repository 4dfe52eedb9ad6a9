"""Writes: the one place that creates an image. Validate -> process -> store -> save, all or nothing."""

from __future__ import annotations

import logging
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from images import processing, storage
from images.models import Image
from images.processing import Fit, OutputFormat
from images.titles import default_title, fold

logger = logging.getLogger(__name__)


def image_create(
    *,
    upload: BinaryIO,
    filename: str | None = None,
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    output_format: OutputFormat | None = None,
) -> Image:
    """Process an uploaded image, store its file and save its row.

    Either both the file and the row exist afterwards, or neither does (a file that was already stored
    for another row stays). Raises the domain errors of `images.exceptions`.
    """
    rendered = processing.render(
        upload,
        width=width,
        height=height,
        fit=fit,
        output_format=output_format,
        limits=processing.Limits(
            max_pixels=settings.IMAGE_MAX_PIXELS,
            max_dimension=settings.IMAGE_MAX_DIMENSION,
            max_frames=settings.IMAGE_MAX_FRAMES,
            max_animation_pixels=settings.IMAGE_MAX_ANIMATION_PIXELS,
        ),
        options=processing.EncodeOptions(
            jpeg_quality=settings.IMAGE_JPEG_QUALITY,
            webp_quality=settings.IMAGE_WEBP_QUALITY,
            avif_quality=settings.IMAGE_AVIF_QUALITY,
        ),
    )
    title = title or default_title(filename)
    stored = storage.store(rendered.data, rendered.format.extension)
    try:
        with transaction.atomic():
            image = Image.objects.create(
                title=title,
                title_folded=fold(title),
                file=stored.name,
                width=rendered.width,
                height=rendered.height,
                format=rendered.format.value,
                size=len(rendered.data),
            )
    except BaseException:
        if stored.created:
            _discard_unreferenced(stored.name)
        raise
    logger.info(
        "image created id=%s %sx%s %s %s bytes",
        image.pk,
        image.width,
        image.height,
        image.format,
        image.size,
    )
    return image


def _discard_unreferenced(name: str) -> None:
    """Delete a file this request stored, unless a row (from a concurrent identical upload) uses it.

    If the database cannot even answer that, keep the file: an unreferenced file is tidied up later,
    a row whose file was deleted is data lost.
    """
    try:
        referenced = Image.objects.filter(file=name).exists()
    except Exception:
        logger.exception("could not check references to %s; keeping it", name)
        return
    if not referenced:
        storage.delete(name)
