"""Writes: creating, deleting and editing images. Each is all or nothing, and a row exists exactly when
its file does (an unreferenced file may be left behind by a failure; `reconcile_storage --fix` removes it).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Final, Literal

from django.db import models, transaction
from django.db.models import F

from images import locks, notifications, pipeline, renditions, storage, tasks
from images.exceptions import FileBusy, ImageChanged, StorageUnavailable

# Fit, Gravity and OutputFormat are also the names uploads/ passes here (it reaches images through services).
from images.formats import Fit, Gravity, OutputFormat
from images.metadata import Metadata, parse_metadata_json, validate_metadata
from images.models import Image, Visibility
from images.selectors import ANSWERED_FIELDS, image_duplicate_of
from images.titles import default_title, fold
from images.visibility import check_may_be_private

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

logger = logging.getLogger(__name__)

# A focal point: (x, y), fractions of the image's width and height.
Focal = tuple[float, float]


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


# `image_update(focal=...)` when the focal point is not to change (None removes it).
UNCHANGED: Final = _Unchanged.UNCHANGED


class OnDuplicate(models.TextChoices):
    """What an upload does when its stored file is one its owner already has (`image_upload`)."""

    CREATE = "create"  # a new image all the same (the file is shared), reporting the older one
    REUSE = "reuse"  # nothing new: the older image is the answer


@dataclass(frozen=True)
class Uploaded:
    """What an upload answers: the new image (its `duplicate_of` set when it is one), or with `created`
    False the older image it reused."""

    image: Image
    created: bool


# The metadata rule, for callers that may only use services (the `uploads/` app): the serializers use it
# too, and every write below checks it again.
__all__ = [
    "UNCHANGED",
    "Fit",
    "Focal",
    "Gravity",
    "Metadata",
    "OnDuplicate",
    "OutputFormat",
    "Uploaded",
    "image_create",
    "image_delete",
    "image_file_discard_unreferenced",
    "image_update",
    "image_upload",
    "parse_metadata_json",
    "validate_metadata",
]


def image_create(
    *,
    upload: BinaryIO,
    filename: str | None = None,
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    gravity: Gravity = Gravity.CENTER,
    focal: Focal | None = None,
    output_format: OutputFormat | None = None,
    visibility: str = Visibility.PUBLIC,
    api_key: APIKey | None = None,
    metadata: Metadata | None = None,
    also: Callable[[Image], None] | None = None,
) -> Image:
    """`image_upload` that always creates a new image: the new image."""
    return image_upload(
        upload=upload,
        filename=filename,
        title=title,
        width=width,
        height=height,
        fit=fit,
        gravity=gravity,
        focal=focal,
        output_format=output_format,
        visibility=visibility,
        api_key=api_key,
        metadata=metadata,
        on_duplicate=OnDuplicate.CREATE,
        also=also,
    ).image


def image_upload(
    *,
    upload: BinaryIO,
    filename: str | None = None,
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = Fit.CONTAIN,
    gravity: Gravity = Gravity.CENTER,
    focal: Focal | None = None,
    output_format: OutputFormat | None = None,
    visibility: str = Visibility.PUBLIC,
    api_key: APIKey | None = None,
    metadata: Metadata | None = None,
    on_duplicate: OnDuplicate = OnDuplicate.CREATE,
    also: Callable[[Image], None] | None = None,
) -> Uploaded:
    """Process an uploaded image, store its file and save its row.

    `focal`: the image's focal point, as fractions of the uploaded picture (as displayed); a `cover` crop
    keeps it (whatever `gravity`), and the row keeps it where it lands in the stored picture.

    `also`: the caller's own write that must commit with the new row or not at all (an upload URL marked
    used), called with the row inside the row's transaction, under the file's lock; what it raises undoes
    the upload as any failure does.

    Either both the file and the row exist afterwards, or neither does (a file that was already stored
    for another row stays). A private image's file is stored under the private prefix, apart from any
    public image's file of the same bytes. Raises the domain errors of `images.exceptions`
    (PrivacyNeedsKeys: private while access is open; InvalidMetadata: `metadata` breaks images.metadata's
    rule, checked before any work).

    Exact duplicates: the stored file's name is its content's hash, so an earlier image of the same owner
    (`api_key`, None for every upload while keys are off) with the same `file` holds the same processed
    bytes at the same visibility; the oldest such is the new row's `duplicate_of`. Another owner's images
    are never looked at. `on_duplicate=reuse` then creates nothing (no row, no file) and answers that
    image. The look-up that decides is made under the per-name lock that every insert of a row for that
    file holds until its commit, so two identical uploads with `reuse` at once create at most one image:
    the second finds the first's row.
    """
    check_may_be_private(visibility)
    metadata = validate_metadata(metadata) if metadata is not None else {}
    # While the store is failing, the decode and encode below would be work for nothing (and a thread held).
    storage.refuse_if_failing()
    rendered = pipeline.render(
        upload,
        width=width,
        height=height,
        fit=fit,
        gravity=gravity,
        focal=focal,
        output_format=output_format,
        preview=True,
        master=True,
    )
    stored_focal = pipeline.point_in_crop(focal, rendered.crop) if focal is not None else None
    assert rendered.preview is not None
    described = pipeline.describe(rendered.preview)
    phash = pipeline.perceptual_hash(rendered.preview)
    bands = pipeline.hash_bands(phash)
    title = title or default_title(filename)
    data, extension, media_type = rendered.data, rendered.format.extension, rendered.format.media_type
    name = storage.content_name(data, extension, private=visibility == Visibility.PRIVATE)
    owner_id = api_key.pk if api_key is not None else None
    if on_duplicate == OnDuplicate.REUSE:
        # Without the lock first: a reused upload then stores nothing at all.
        existing = image_duplicate_of(name=name, owner_id=owner_id)
        if existing is not None:
            return Uploaded(image=existing, created=False)
    created = False
    try:
        # The slow part, outside any lock and transaction: the bytes go to storage under their content name.
        created = storage.store_as(name, data, media_type=media_type)
        with locks.file_name_lock(name):
            existing = image_duplicate_of(name=name, owner_id=owner_id)
            if existing is not None and on_duplicate == OnDuplicate.REUSE:
                # An identical upload committed its row meanwhile: the file is its (never removed here).
                return Uploaded(image=existing, created=False)
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
                    phash=pipeline.hash_to_signed(phash),
                    phash_band0=bands[0],
                    phash_band1=bands[1],
                    phash_band2=bands[2],
                    duplicate_of=existing,
                    visibility=visibility,
                    api_key=api_key,
                    focal_x=stored_focal[0] if stored_focal else None,
                    focal_y=stored_focal[1] if stored_focal else None,
                    metadata=metadata,
                )
                notifications.image_created(image=image, api_key=api_key)
                if also is not None:
                    also(image)
    except BaseException as exc:
        # Neither the row nor a lasting file: remove the file if this request stored it and no row uses it.
        # Not when the file's lock could not be had: removing it takes that lock again (a second wait); the
        # file is an orphan for reconcile_storage --fix.
        if created and not isinstance(exc, FileBusy):
            image_file_discard_unreferenced(name=name)
        raise
    if tasks.eager_presets():
        # Once committed, never before: a rolled-back upload enqueues nothing, and the worker finds the row.
        # Registered here, after the file's lock, not inside the transaction: run at once (no transaction
        # around this call, or TASK_BACKEND=immediate) it renders, and storing takes that lock. robust: a
        # queue that cannot be reached (RQ's Redis down) is logged, and the upload stands.
        transaction.on_commit(lambda: tasks.render_eager_presets.enqueue(image_id=image.pk), robust=True)
    logger.info(
        "image created id=%s %sx%s %s %s bytes%s",
        image.pk,
        image.width,
        image.height,
        image.format,
        image.size,
        f", a duplicate of {existing.pk}" if existing is not None else "",
    )
    return Uploaded(image=image, created=True)


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
            # The images uploaded as its duplicates no longer name it (a change of their objects).
            Image.objects.filter(duplicate_of=image.pk).update(duplicate_of=None, version=F("version") + 1)
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
    focal: Focal | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED,
    metadata: Metadata | None = None,
    precondition: Callable[[Image], bool] | None = None,
    api_key: APIKey | None = None,
) -> Image:
    """Change an image's title, visibility, metadata and/or focal point (None: none) (the pixels never
    change: upload again for that).

    A new focal point raises the version like any change; the crops the old one placed are deleted
    (unless another image of the same file still has it): they are made again, around the new point, when
    asked for, under new names.

    `metadata` replaces the whole object (as Cloudflare Images' update does): keys left out are gone, `{}`
    empties it. InvalidMetadata when it breaks images.metadata's rule, before anything changes.

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
    if metadata is not None:
        metadata = validate_metadata(metadata)
    current = Image.objects.only("file", "format", "visibility").get(pk=image_id)
    if visibility is None or visibility == current.visibility:
        return _image_save(
            image_id=image_id,
            title=title,
            focal=focal,
            metadata=metadata,
            precondition=precondition,
            api_key=api_key,
        )
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
                focal=focal,
                metadata=metadata,
                precondition=precondition,
                moved=(old_name, new_name, visibility),
                api_key=api_key,
            )
    except BaseException as exc:
        # As in image_create: not when the new name's lock could not be had (a second wait for it).
        if created and not isinstance(exc, FileBusy):
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
    focal: Focal | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED,
    metadata: Metadata | None = None,
    moved: tuple[str, str, str] | None = None,
    api_key: APIKey | None = None,
) -> Image:
    """The row's change in one transaction, with its event; `moved`: (old file, new file, visibility) to
    switch to. After it, the crops an old focal point placed are deleted (`_drop_old_crops`)."""
    old_focal: Focal | None = None
    with transaction.atomic():
        image = Image.objects.select_for_update().only(*ANSWERED_FIELDS).get(pk=image_id)
        if precondition is not None and not precondition(image):
            raise ImageChanged(_CHANGED)
        fields = ["version"]
        if title is not None:
            image.title, image.title_folded = title, fold(title)
            fields += ["title", "title_folded"]
        if focal is not UNCHANGED and focal != image.focal:
            old_focal = image.focal
            image.focal_x, image.focal_y = focal if focal is not None else (None, None)
            fields += ["focal_x", "focal_y"]
        if metadata is not None:
            image.metadata = metadata
            fields.append("metadata")
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
    if "focal_x" in fields and moved is None:
        # (A move deletes every rendition of the old file.)
        _drop_old_crops(image, old_focal)
    return image


def _drop_old_crops(image: Image, old_focal: Focal | None) -> None:
    """Delete the crops of `image`'s file that `old_focal` placed, unless another row of that file still
    has that point (identical uploads share a file and its renditions' folder)."""
    name = image.file.name
    others = Image.objects.filter(file=name).exclude(pk=image.pk)
    if old_focal is None:
        shared = others.filter(focal_x__isnull=True).exists()
    else:
        shared = others.filter(focal_x=old_focal[0], focal_y=old_focal[1]).exists()
    if shared:
        return
    source = renditions.Source(
        name=name, width=image.width, height=image.height, format=image.format, focal=old_focal
    )
    renditions.delete_crops(source)


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


@contextmanager
def file_store_turn(*, answers: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """A turn at the file store for a call made outside images/ (uploads' chunks): the one guard every
    call of `images.storage` takes (its caps on calls and on callers waiting, its breaker), so a stalled
    store holds no more threads for resumable uploads than for the rest. Raises api.breakers.Unavailable
    when refused; an exception from the block that is not one of `answers` opens the guard. With
    FileNotFoundError among `answers`, the store's own "not there" (S3: a 404) is raised as one."""
    with storage.guard.call(answers=answers):
        try:
            yield
        except Exception as exc:
            if FileNotFoundError in answers and storage.is_not_found(exc):
                raise FileNotFoundError(str(exc)) from exc
            raise


def file_store_is_local() -> bool:
    """Whether the file store is the local filesystem (which has folders to remove; S3 has none)."""
    return storage.is_local()
