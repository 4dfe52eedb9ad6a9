"""Writes of resumable (tus) uploads on an upload URL: create, append a chunk, terminate, sweep.

The offset is what the store holds, never more: a PATCH's chunk is stored first (uploads/partials.py),
then one conditional UPDATE (`WHERE upload_offset = <where the chunk starts>`) advances the offset and
records the chunk's name. Of two PATCHes at one offset exactly one UPDATE matches; the other's chunk is
deleted and it answers 409. No transaction or lock is held while bytes move, so a replica that dies
mid-chunk leaves the offset where it was (and at most an unrecorded chunk, for the sweep), and the
client resumes on any replica: every one reads the row and the store.

The last chunk makes the image exactly as the one-shot upload does (`direct_upload_complete`: the same
claim, the same `image_create`, the same errors). A refused image (a 4xx) ends the resumable upload and
removes its data, and the URL takes another file until it expires; a failure of ours (a 503) takes the
last chunk back, so the client's retry of that PATCH finds the offset it expects.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from api.exceptions import ProblemError, registered_status
from uploads import partials
from uploads.exceptions import UploadExpired, UploadNotFound, UploadUsed
from uploads.models import DirectUpload
from uploads.services import CLAIM_LEASE, direct_upload_check_open, direct_upload_complete
from uploads.tus import Checksum, OffsetConflict, TusError

if TYPE_CHECKING:
    from images.services import Image

logger = logging.getLogger(__name__)

# A stored chunk that no row records and is older than this was left by a PATCH whose process died
# between storing it and advancing the offset (a live one does that within seconds).
UNRECORDED_CHUNK_AGE = timedelta(minutes=10)


class UploadLengthExceeded(TusError):
    """A chunk would take the upload past its Upload-Length, or past the URL's `max_bytes`."""

    status = 413
    code = "upload_too_large"


class LengthRequired(TusError):
    """A PATCH (or a creation with a body) without Content-Length: the chunk's size must be known first."""

    status = 411
    code = "length_required"


@dataclass(frozen=True)
class Chunk:
    """A request body to append: where it must start, how long it says it is, and its checksum."""

    body: partials.Readable
    offset: int
    length: int | None
    checksum: Checksum | None


@dataclass(frozen=True)
class Appended:
    """What a PATCH (or a creation with a body) leaves: the row as it is now, and the image when the last
    byte arrived."""

    upload: DirectUpload
    image: Image | None = None


def tus_upload_create(
    *,
    upload: DirectUpload,
    length: int | None,
    metadata: dict[str, str],
    chunk: Chunk | None = None,
    chosen: dict[str, Any] | None = None,
    filename: str | None = None,
) -> Appended:
    """Start the URL's resumable upload (`length` None: deferred, declared by a later PATCH).

    UploadUsed (409) when the URL made its image, or a resumable upload is already under way on it (a
    client that lost its place DELETEs it first); UploadExpired (410); UploadLengthExceeded (413) past
    the URL's `max_bytes`. `chunk`: creation-with-upload, the first bytes in the same request; if they
    are refused, the upload is not created. `chosen`, `filename`: what Upload-Metadata chose of the image
    (validated by the caller), used if this request completes it.
    """
    direct_upload_check_open(upload=upload)
    if length is not None and length > tus_upload_limit(upload):
        raise UploadLengthExceeded(
            f"Upload-Length is over this upload URL's limit of {tus_upload_limit(upload)} bytes."
        )
    now = timezone.now()
    created = DirectUpload.objects.filter(
        pk=upload.pk, tus_created_at__isnull=True, completed_at__isnull=True, claimed_at__isnull=True
    ).update(upload_length=length, upload_offset=0, tus_metadata=metadata, tus_chunks=[], tus_created_at=now)
    if not created:
        current = _current(upload)
        direct_upload_check_open(upload=current)
        raise UploadUsed(
            "A resumable upload is already under way on this URL: resume it (HEAD for its offset), or "
            "DELETE it to start again."
        )
    upload.upload_length, upload.upload_offset, upload.tus_metadata = length, 0, metadata
    upload.tus_chunks, upload.tus_created_at = [], now
    logger.info("tus upload created id=%s length=%s", upload.pk, length)
    if chunk is None:
        return Appended(upload=upload)
    try:
        return tus_upload_append(upload=upload, chunk=chunk, chosen=chosen or {}, filename=filename)
    except BaseException:
        # Refused first bytes: as if the creation had not happened (the client gets no Location).
        _end(upload)
        raise


def tus_upload_append(
    *,
    upload: DirectUpload,
    chunk: Chunk,
    declared_length: int | None = None,
    chosen: dict[str, Any],
    filename: str | None,
) -> Appended:
    """Append a chunk at `chunk.offset`; when it is the last, make the image.

    OffsetConflict (409) when the offset is not the stored one (or another PATCH advanced it first);
    UploadLengthExceeded (413); LengthRequired (411); ChunkCutOff (400) and ChecksumMismatch (460) keep
    nothing of the chunk; UploadUsed / UploadExpired as for the one-shot upload; and at the end, the
    errors of `image_create`. `declared_length`: Upload-Length sent with a PATCH of a deferred upload.
    """
    _check_resumable(upload)
    if chunk.offset != upload.upload_offset:
        raise OffsetConflict(f"Upload-Offset is {chunk.offset}, but the upload is at {upload.upload_offset}.")
    length = _declare_length(upload, declared_length)
    if chunk.length is None:
        raise LengthRequired("Content-Length is required: a chunk's size must be known before it is read.")
    end = chunk.offset + chunk.length
    bound = length if length is not None else tus_upload_limit(upload)
    if end > bound:
        raise UploadLengthExceeded(
            f"This chunk would end at byte {end}, past the upload's "
            f"{'Upload-Length' if length is not None else 'limit'} of {bound}."
        )
    name = None
    if chunk.length:
        with partials.receive(chunk.body, length=chunk.length, checksum=chunk.checksum) as received:
            name = partials.chunk_name(upload.pk, chunk.offset)
            partials.store(name, received)
    chunks = [*upload.tus_chunks, name] if name else list(upload.tus_chunks)
    advanced = DirectUpload.objects.filter(
        pk=upload.pk,
        upload_offset=chunk.offset,
        tus_created_at=upload.tus_created_at,
        completed_at__isnull=True,
        claimed_at__isnull=True,
    ).update(upload_offset=end, tus_chunks=chunks, upload_length=length)
    if not advanced:
        if name:
            partials.delete(name)
        current = _current(upload)
        _check_resumable(current)
        raise OffsetConflict(
            f"Another request wrote at offset {chunk.offset} first; the upload is at {current.upload_offset}."
        )
    previous = list(upload.tus_chunks)
    upload.upload_offset, upload.tus_chunks, upload.upload_length = end, chunks, length
    if length is None or end < length:
        return Appended(upload=upload)
    return Appended(
        upload=upload, image=_complete(upload, previous, start=chunk.offset, chosen=chosen, filename=filename)
    )


def _complete(
    upload: DirectUpload, previous: list[str], *, start: int, chosen: dict[str, Any], filename: str | None
) -> Image:
    """The last byte is stored: the chunks, in order, become the image, as a one-shot upload would."""
    try:
        with partials.assembled(upload.tus_chunks) as whole:
            image = direct_upload_complete(upload=upload, file=whole, filename=filename, chosen=chosen)
    except (UploadUsed, UploadExpired):
        raise  # the URL was claimed by another upload, or ran out: its chunks are the sweep's
    except BaseException as exc:
        if _is_refusal(exc):
            # The file is not an image we take: it is gone, and the URL takes another until it expires.
            logger.info("tus upload %s refused at completion (%s); its data removed", upload.pk, exc)
            _end(upload)
        else:
            # Ours failed (the store, the database): the last chunk is taken back, so that the client's
            # retry of the same PATCH finds the offset it expects.
            taken_back = DirectUpload.objects.filter(
                pk=upload.pk, upload_offset=upload.upload_offset, tus_created_at=upload.tus_created_at
            ).update(upload_offset=start, tus_chunks=previous)
            if taken_back and upload.tus_chunks[len(previous) :]:
                partials.delete(upload.tus_chunks[-1])
        raise
    partials.delete_upload(upload.pk)
    logger.info("tus upload completed id=%s image=%s", upload.pk, image.pk)
    return image


def tus_upload_terminate(*, upload: DirectUpload) -> None:
    """Termination: the resumable upload and its data go (the URL takes a new one until it expires)."""
    _check_resumable(upload)
    if not _end(upload):
        raise UploadNotFound("This upload URL has no resumable upload under way.")


def _end(upload: DirectUpload) -> bool:
    """Reset the row's tus state (if it is still this upload's) and remove its chunks."""
    ended = DirectUpload.objects.filter(
        pk=upload.pk, tus_created_at=upload.tus_created_at, completed_at__isnull=True
    ).update(upload_length=None, upload_offset=0, tus_metadata={}, tus_chunks=[], tus_created_at=None)
    partials.delete_upload(upload.pk)
    return bool(ended)


def tus_partials_sweep(*, now: datetime | None = None, fix: bool = True) -> int:
    """Delete the stored chunks no upload will read: of uploads that are gone, completed or expired (and
    not being completed), and chunks no row recorded once they are UNRECORDED_CHUNK_AGE old; returns how
    many (without `fix`, how many it would delete). Run by `manage.py expire_uploads` and by
    `reconcile_storage` (settings.STORAGE_SWEEPS). They never become rows."""
    now = now or timezone.now()
    listed = list(partials.listed())
    rows = {
        str(row.pk): row
        for row in DirectUpload.objects.filter(pk__in=_uuids({p.upload_id for p in listed})).only(
            "pk", "completed_at", "claimed_at", "expires_at", "tus_chunks"
        )
    }
    removed = 0
    for partial in listed:
        row = rows.get(partial.upload_id)
        if row is None or row.completed_at is not None:
            dead = True
        elif row.claimed_at is not None and row.claimed_at > now - CLAIM_LEASE:
            dead = False  # being made into an image right now
        elif row.expires_at <= now:
            dead = True
        elif partial.name in row.tus_chunks:
            dead = False
        else:
            written = partials.modified(partial.name)
            dead = written is not None and written <= now - UNRECORDED_CHUNK_AGE
        if dead and (not fix or partials.delete(partial.name)):
            removed += 1
    if removed and fix:
        logger.info("partial upload chunks deleted: %s", removed)
    return removed


def _uuids(values: set[str]) -> list[str]:
    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid


def _check_resumable(upload: DirectUpload) -> None:
    """A resumable upload exists on this URL and may still take bytes."""
    direct_upload_check_open(upload=upload)
    if upload.tus_created_at is None:
        raise UploadNotFound("This upload URL has no resumable upload under way; POST to create one.")


def _declare_length(upload: DirectUpload, declared: int | None) -> int | None:
    if declared is None or declared == upload.upload_length:
        return upload.upload_length
    if upload.upload_length is not None:
        raise TusError("Upload-Length was declared already and cannot change.", field="Upload-Length")
    if declared < upload.upload_offset:
        raise TusError("Upload-Length is less than the bytes already uploaded.", field="Upload-Length")
    if declared > tus_upload_limit(upload):
        raise UploadLengthExceeded(
            f"Upload-Length is over this upload URL's limit of {tus_upload_limit(upload)} bytes."
        )
    return declared


def tus_upload_limit(upload: DirectUpload) -> int:
    """The most bytes this URL's resumable upload may have (`Tus-Max-Size`): its `max_bytes`, or the
    server's limit if that was lowered since the URL was made."""
    return min(upload.max_bytes, int(settings.IMAGE_MAX_UPLOAD_BYTES))


def _current(upload: DirectUpload) -> DirectUpload:
    current = DirectUpload.objects.filter(pk=upload.pk).first()
    if current is None:
        raise UploadNotFound("No upload URL with this id and secret exists; ask for a new one.")
    return current


def _is_refusal(exc: BaseException) -> bool:
    """Whether the image was refused for what it is (a 4xx), not for a failure of ours."""
    if isinstance(exc, ProblemError):
        return 400 <= exc.status < 500
    status = registered_status(exc) if isinstance(exc, Exception) else None
    return status is not None and 400 <= status < 500
