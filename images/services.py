"""Writes: creating, deleting and editing images. Each is all or nothing, and a row exists exactly when
its file does (an unreferenced file may be left behind by a failure; `reconcile_storage --fix` removes it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from django.db import transaction

from images import locks, notifications, pipeline, renditions, storage, tasks
from images.exceptions import ImageChanged, StorageUnavailable

# Fit and OutputFormat are also the names uploads/ passes here (it reaches images through services only).
from images.formats import Fit, OutputFormat
from images.models import Image, Visibility
from images.selectors import ANSWERED_FIELDS
from images.titles import default_title, fold
from images.visibility import check_may_be_private

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
    visibility: str = Visibility.PUBLIC,
    api_key: APIKey | None = None,
) -> Image:
    """Process an uploaded image, store its file and save its row.

    Either both the file and the row exist afterwards, or neither does (a file that was already stored
    for another row stays). A private image's file is stored under the private prefix, apart from any
    public image's file of the same bytes. Raises the domain errors of `images.exceptions`
    (PrivacyNeedsKeys: private while access is open).
    """
    check_may_be_private(visibility)
    # While the store is failing, the decode and encode below would be work for nothing (and a thread held).
    storage.refuse_if_failing()
    rendered = pipeline.render(
        upload, width=width, height=height, fit=fit, output_format=output_format, preview=True, master=True
    )
    assert rendered.preview is not None
    described = pipeline.describe(rendered.preview)
    title = title or default_title(filename)
    data, extension, media_type = rendered.data, rendered.format.extension, rendered.format.media_type
    name = storage.content_name(data, extension, private=visibility == Visibility.PRIVATE)
    created = False
    try:
        # The slow part, outside any lock and transaction: the bytes go to storage under their content name.
        created = storage.store_as(name, data, media_type=media_type)
        with locks.file_name_lock(name):
            # Under the lock no cleanup can remove the file until this row is committed. One may have run
            # since `store` looked (a concurrent upload of the same bytes failed and removed the file it
            # had stored): then this stores it again, so the row never points at nothing.
            created = storage.store_as(name, data, media_type=media_type) or created
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
                    visibility=visibility,
                    api_key=api_key,
                )
                notifications.image_created(image=image, api_key=api_key)
    except BaseException:
        # Neither the row nor a lasting file: remove the file if this request stored it and no row uses it.
        if created:
            image_file_discard_unreferenced(name=name)
        raise
    if tasks.eager_presets():
        # Once committed, never before: a rolled-back upload enqueues nothing, and the worker finds the row.
        # Registered here, after the file's lock, not inside the transaction: run at once (no transaction
        # around this call, or TASK_BACKEND=immediate) it renders, and storing takes that lock. robust: a
        # queue that cannot be reached (RQ's Redis down) is logged, and the upload stands.
        transaction.on_commit(lambda: tasks.render_eager_presets.enqueue(image_id=image.pk), robust=True)
    logger.info(
        "image created id=%s %sx%s %s %s bytes",
        image.pk,
        image.width,
        image.height,
        image.format,
        image.size,
    )
    return image


def image_delete(
    *,
    image: Image,
    precondition: Callable[[Image], bool] | None = None,
    api_key: APIKey | None = None,
) -> None:
    """Delete an image's row; then its file, unless another row uses it (identical uploads share one).

    `precondition`, when given, is asked with the row as it is now, locked in the delete's transaction;
    False raises ImageChanged and nothing is deleted (the client's `If-Match` no longer matches).

    The row goes in a transaction of its own under the per-name lock that uploads take, and the file is
    deleted after that commit, still under the lock: an identical upload either saved its row first (the
    file stays) or finds the file gone and stores it again. Once the row is gone the delete has happened:
    a failure to delete the file (the store is down) or even to check for other rows leaves the file as an
    orphan for `reconcile_storage --fix`, never a row without its file. Raises Image.DoesNotExist when the
    row was already gone.
    """
    name = image.file.name
    file_deleted = False
    with locks.file_name_lock(name):
        with transaction.atomic():
            if precondition is not None:
                # Read and deleted in one transaction, the row locked (SQLite: the write lock, taken at
                # BEGIN): no change can come between the check and the delete.
                current = Image.objects.select_for_update().only(*ANSWERED_FIELDS).filter(pk=image.pk).first()
                if current is not None and not precondition(current):
                    raise ImageChanged(_CHANGED)
            deleted, _ = Image.objects.filter(pk=image.pk).delete()
            if deleted:
                notifications.image_deleted(image_id=image.pk, api_key=api_key)
        if not deleted:
            raise Image.DoesNotExist
        try:
            if not Image.objects.filter(file=name).exists():
                # False, and logged, when the store failed: the file is an orphan.
                file_deleted = storage.delete(name)
        except Exception:
            logger.exception("image %s deleted; could not check or delete %s, now an orphan", image.pk, name)
    if file_deleted:
        # The delete has committed (its own transaction, above): its renditions (a listing and a delete
        # per rendition on S3) go in a task, so the answer does not wait for them; the task does nothing
        # if an identical upload uses the file again by then. A failure is retried, then leaves orphans
        # for reconcile_storage --fix.
        _enqueue_rendition_removal(name)
    logger.info("image deleted id=%s%s", image.pk, f", and its file {name}" if file_deleted else "")


def _enqueue_rendition_removal(name: str) -> None:
    try:
        tasks.delete_renditions_of.enqueue(name=name)
    except Exception:
        # The queue is unreachable (RQ's Redis down): the image is deleted all the same; its renditions
        # stay, as orphans, until reconcile_storage --fix.
        logger.exception("could not enqueue the removal of %s's renditions; they remain", name)


def image_update(
    *,
    image_id: int,
    title: str | None = None,
    visibility: str | None = None,
    precondition: Callable[[Image], bool] | None = None,
    api_key: APIKey | None = None,
) -> Image:
    """Change an image's title and/or visibility (the pixels never change: upload again for that).

    `precondition`, when given, is asked with the row as it is now, locked until the change commits; False
    raises ImageChanged (the client's `If-Match` no longer matches). Raises Image.DoesNotExist, and
    PrivacyNeedsKeys for `private` while access is open.

    A change of visibility moves the file to where that visibility keeps files (`images/` or
    `private/images/`), crash-safe: the file is copied first (under its new name's lock, as an upload
    stores one), then the row is switched in one transaction, then the old file is deleted unless another
    row uses it (under its lock, as a delete does), with its renditions; they are rendered again under the
    new prefix when asked for. At every step the row has its file; a crash leaves at most an orphan for
    `reconcile_storage --fix`.
    """
    if visibility is not None:
        check_may_be_private(visibility)
    current = Image.objects.only("file", "format", "visibility").get(pk=image_id)
    if visibility is None or visibility == current.visibility:
        return _image_save(image_id=image_id, title=title, precondition=precondition, api_key=api_key)
    old_name = current.file.name
    new_name = storage.name_for_digest(
        storage.digest_of(old_name),
        old_name.rsplit(".", 1)[-1],
        private=visibility == Visibility.PRIVATE,
    )
    data = _read_stored(old_name)
    media_type = OutputFormat(current.format).media_type
    created = False
    try:
        created = storage.store_as(new_name, data, media_type=media_type)
        with locks.file_name_lock(new_name):
            # As in image_create: a cleanup may have removed the copy since; store it again under the lock.
            created = storage.store_as(new_name, data, media_type=media_type) or created
            image = _image_save(
                image_id=image_id,
                title=title,
                precondition=precondition,
                moved=(old_name, new_name, visibility),
                api_key=api_key,
            )
    except BaseException:
        if created:
            image_file_discard_unreferenced(name=new_name)
        raise
    if image_file_discard_unreferenced(name=old_name):
        renditions.delete_renditions(storage.digest_of(old_name), private=storage.is_private_name(old_name))
    logger.info("image %s is now %s; its file moved to %s", image_id, visibility, new_name)
    return image


def _image_save(
    *,
    image_id: int,
    title: str | None,
    precondition: Callable[[Image], bool] | None,
    moved: tuple[str, str, str] | None = None,
    api_key: APIKey | None = None,
) -> Image:
    """The row's change in one transaction, with its event; `moved`: (old file, new file, visibility)."""
    with transaction.atomic():
        image = Image.objects.select_for_update().only(*ANSWERED_FIELDS).get(pk=image_id)
        if precondition is not None and not precondition(image):
            raise ImageChanged(_CHANGED)
        fields = ["version"]
        if title is not None:
            image.title, image.title_folded = title, fold(title)
            fields += ["title", "title_folded"]
        if moved is not None:
            old_name, new_name, visibility = moved
            if image.file.name != old_name:
                # Another change moved it meanwhile: this one's copy is not the row's file.
                raise ImageChanged(_CHANGED)
            image.file, image.visibility = new_name, visibility
            fields += ["file", "visibility"]
        # Every change raises the version, which the object's ETag is made from (under the row's lock).
        image.version += 1
        image.save(update_fields=fields)
        notifications.image_updated(image=image, api_key=api_key)
    return image


def _read_stored(name: str) -> bytes:
    """The bytes of a stored file; StorageUnavailable when the store cannot give them."""
    try:
        with storage.open_file(name) as file:
            return file.read()
    except Exception as exc:
        logger.exception("reading %s failed", name)
        raise StorageUnavailable("The file store is unavailable; nothing was changed.") from exc


_CHANGED = "The image has changed since the version your If-Match names; get it again."


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
        with locks.file_name_lock(name):
            if Image.objects.filter(file=name).exists():
                return False
            return storage.delete(name)
    except Exception:
        logger.exception("could not check references to %s; keeping it", name)
        return False
