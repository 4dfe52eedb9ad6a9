"""Writes: the one place that creates an image. Validate -> process -> store -> save, all or nothing."""

from __future__ import annotations

import atexit
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from images import placeholders, processing, storage
from images.models import Image
from images.processing import Fit, OutputFormat
from images.titles import default_title, fold

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

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
    api_key: APIKey | None = None,
) -> Image:
    """Process an uploaded image, store its file and save its row.

    Either both the file and the row exist afterwards, or neither does (a file that was already stored
    for another row stays). Raises the domain errors of `images.exceptions`.
    """
    with apps.get_app_config("images").decode_slots:  # see ImagesConfig
        rendered = _render(upload, width=width, height=height, fit=fit, output_format=output_format)
    assert rendered.preview is not None
    described = placeholders.describe(rendered.preview)
    title = title or default_title(filename)
    data, extension, media_type = rendered.data, rendered.format.extension, rendered.format.media_type
    name = storage.content_name(data, extension)
    created = False
    try:
        # The slow part, outside any lock and transaction: the bytes go to storage under their content name.
        created = storage.store(data, extension, media_type=media_type).created
        with _file_name_lock(name):
            # Under the lock no cleanup can remove the file until this row is committed. One may have run
            # since `store` looked (a concurrent upload of the same bytes failed and removed the file it
            # had stored): then this stores it again, so the row never points at nothing.
            created = storage.store(data, extension, media_type=media_type).created or created
            # The only write transaction: no storage call while it holds SQLite's write lock.
            with transaction.atomic():
                image = Image.objects.create(
                    title=title,
                    title_folded=fold(title),
                    file=name,
                    width=rendered.width,
                    height=rendered.height,
                    format=rendered.format.value,
                    size=len(rendered.data),
                    placeholder=described.thumbhash,
                    color=described.color,
                    api_key=api_key,
                )
    except BaseException:
        # Neither the row nor a lasting file: remove the file if this request stored it and no row uses it.
        if created:
            image_file_discard_unreferenced(name=name)
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


def _render(
    upload: BinaryIO,
    *,
    width: int | None,
    height: int | None,
    fit: Fit,
    output_format: OutputFormat | None,
) -> processing.Rendered:
    """The pipeline with this deployment's limits and encoder settings."""
    return processing.render(
        upload,
        width=width,
        height=height,
        fit=fit,
        output_format=output_format,
        limits=pipeline_limits(),
        options=processing.EncodeOptions(
            jpeg_quality=settings.IMAGE_JPEG_QUALITY,
            webp_quality=settings.IMAGE_WEBP_QUALITY,
            avif_quality=settings.IMAGE_AVIF_QUALITY,
        ),
        preview=True,
    )


def pipeline_limits() -> processing.Limits:
    """What this deployment lets one image cost (the IMAGE_MAX_* settings)."""
    return processing.Limits(
        max_pixels=settings.IMAGE_MAX_PIXELS,
        max_dimension=settings.IMAGE_MAX_DIMENSION,
        max_frames=settings.IMAGE_MAX_FRAMES,
        max_animation_pixels=settings.IMAGE_MAX_ANIMATION_PIXELS,
        max_enlarged_pixels=settings.IMAGE_MAX_ENLARGED_PIXELS,
        max_avif_pixels=settings.IMAGE_MAX_AVIF_PIXELS,
    )


def image_file_discard_unreferenced(*, name: str) -> bool:
    """Delete a stored file unless a row references it; True when it was deleted.

    Used by `image_create` when its row could not be saved, and by `reconcile_storage --fix` for orphans.
    It takes the same per-name lock as `image_create`'s insert, so a row being saved for this file has
    either been committed (the check below sees it, the file stays) or will check the file under the lock
    after this and store it again. No transaction is held while the file is deleted. If the database cannot
    answer, the file stays: an unreferenced file is tidied up later, a row whose file was deleted is data
    lost.
    """
    try:
        with _file_name_lock(name):
            if Image.objects.filter(file=name).exists():
                return False
            return storage.delete(name)
    except Exception:
        logger.exception("could not check references to %s; keeping it", name)
        return False


@contextmanager
def _file_name_lock(name: str) -> Iterator[None]:
    """Serialize, per stored name, the uploads that save a row for it and the cleanups that delete it.

    Held outside any database transaction, so storage calls made under it never hold the database's write
    lock (on SQLite that lock is global, and an S3 request that retries can take many seconds). Names are
    hashed to lock keys; unrelated names sharing a key merely wait for each other. PostgreSQL: a
    session-level advisory lock. SQLite: `flock` on one of a fixed set of files next to the database,
    which every process using that database shares.
    """
    digest = hashlib.sha256(name.encode()).digest()
    if connection.vendor == "postgresql":
        key = int.from_bytes(digest[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # The session ends with the connection, and its locks with it.
                logger.warning("could not release the lock for %s; closing the connection", name)
                connection.close()
        return
    path = _lock_folder(connection.settings_dict["NAME"]) / f"{digest[0]:02x}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # each open() is its own lock: threads exclude each other too
        yield
    finally:
        os.close(fd)  # releases the lock


@functools.cache
def _lock_folder(database: str) -> Path:
    """`locks/` next to the SQLite file; a folder of this process's own for an in-memory database."""
    if connection.vendor == "sqlite" and not connection.creation.is_in_memory_db(database):
        folder = Path(database).parent / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="imagery-locks-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
