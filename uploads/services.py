"""Writes of upload URLs: mint one, make its one image (through `images.services.image_create`), sweep the
expired ones.

Single use without holding a transaction while the image is processed: a conditional UPDATE claims the URL
(`claimed_at`), so of two uploads at once exactly one claims it and the other is a 409; a refused image
releases the claim, and the URL stays usable until it expires.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from images.services import Fit, Gravity, OutputFormat, image_create
from uploads import notifications
from uploads.exceptions import UploadExpired, UploadNotFound, UploadUsed
from uploads.models import DirectUpload
from uploads.selectors import secret_hash

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

    from images.services import Image

logger = logging.getLogger(__name__)

# What a minting request may fix of the image (the upload's fields of POST /images, and `metadata`).
FIXABLE = ("title", "width", "height", "fit", "gravity", "focal", "format", "visibility", "metadata")

# A claim older than this is of a request that died while processing (a killed worker): the URL may be
# claimed again, and the sweep may remove it once expired. Far above any upload's processing time.
CLAIM_LEASE = timedelta(hours=1)

# Expired upload URLs read at a time by the sweep.
SWEEP_BATCH = 500


def _focal_pair(focal: dict[str, float] | tuple[float, float] | None) -> tuple[float, float] | None:
    """A focal point as image_create takes it: a URL keeps its fixed one as the object's `{"x", "y"}`, the
    uploader's form field gives a pair."""
    if isinstance(focal, dict):
        return (focal["x"], focal["y"])
    return focal


def direct_upload_create(
    *,
    api_key: APIKey | None,
    fixed: dict[str, Any],
    max_bytes: int,
    expires_in: int,
) -> tuple[DirectUpload, str]:
    """Mint an upload URL; returns its row and its secret, which only this answer ever holds whole.

    `fixed`: what the image will be (validated like POST /images's fields); `max_bytes` and `expires_in`
    checked by the caller against IMAGE_MAX_UPLOAD_BYTES and UPLOAD_URL_MAX_TTL.
    """
    # 256 bits, URL-safe: unguessable, and it travels in the path (a tus client appends nothing to a URL).
    secret = secrets.token_urlsafe(32)
    upload = DirectUpload.objects.create(
        secret_hash=secret_hash(secret),
        api_key=api_key,
        fixed={name: value for name, value in fixed.items() if name in FIXABLE},
        max_bytes=max_bytes,
        expires_at=timezone.now() + timedelta(seconds=expires_in),
    )
    logger.info("upload url created id=%s expires_at=%s", upload.pk, upload.expires_at.isoformat())
    return upload, secret


def direct_upload_check_open(*, upload: DirectUpload) -> None:
    """Refuse an upload the URL can no longer take, before its body is read: UploadUsed (409) when it has
    its image or another upload is being processed, UploadExpired (410) when its time is up or the key
    that made it was revoked (the image would belong to it)."""
    now = timezone.now()
    if upload.completed_at is not None or (
        upload.claimed_at is not None and upload.claimed_at > now - CLAIM_LEASE
    ):
        raise UploadUsed("This upload URL has been used; ask for a new one.")
    if upload.expires_at <= now:
        raise UploadExpired("This upload URL has expired; ask for a new one.")
    key = upload.api_key
    if key is not None and (key.revoked or key.has_expired):
        raise UploadExpired("The API key that made this upload URL was revoked; ask for a new one.")


def direct_upload_complete(
    *, upload: DirectUpload, file: BinaryIO, filename: str | None, chosen: dict[str, Any]
) -> Image:
    """Make the URL's one image from `file`: what the URL fixed, else what the uploader `chosen`, owned by
    the key that made the URL.

    Claims the URL first (UploadUsed / UploadExpired when it cannot); the errors of `image_create` (a bad
    image, a failing store) release the claim and propagate, and nothing is changed.
    """
    direct_upload_check_open(upload=upload)
    claimed_at = timezone.now()
    claimed = (
        DirectUpload.objects.filter(pk=upload.pk, completed_at__isnull=True, expires_at__gt=claimed_at)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lte=claimed_at - CLAIM_LEASE))
        .update(claimed_at=claimed_at)
    )
    if not claimed:
        # Another upload claimed it since it was read, or it expired or went meanwhile: say which.
        current = DirectUpload.objects.filter(pk=upload.pk).first()
        if current is None:
            raise UploadNotFound("No upload URL with this id and secret exists; ask for a new one.")
        direct_upload_check_open(upload=current)
        raise UploadUsed("This upload URL has been used; ask for a new one.")
    values = {**chosen, **upload.fixed}
    try:
        image = image_create(
            upload=file,
            filename=filename,
            title=values.get("title"),
            width=values.get("width"),
            height=values.get("height"),
            fit=Fit(values.get("fit") or Fit.CONTAIN.value),
            gravity=Gravity(values.get("gravity") or settings.IMAGE_DEFAULT_GRAVITY),
            focal=_focal_pair(values.get("focal")),
            output_format=OutputFormat(fmt) if (fmt := values.get("format")) else None,
            visibility=values.get("visibility") or settings.IMAGE_DEFAULT_VISIBILITY,
            api_key=upload.api_key,
            metadata=values.get("metadata"),
            also=lambda image: _complete(upload=upload, image=image, claimed_at=claimed_at),
        )
    except BaseException:
        DirectUpload.objects.filter(pk=upload.pk, claimed_at=claimed_at).update(claimed_at=None)
        raise
    logger.info("upload url used id=%s image=%s", upload.pk, image.pk)
    return image


def _complete(*, upload: DirectUpload, image: Image, claimed_at: datetime) -> None:
    """Mark the URL used by `image`, in the image's own transaction (image_create's `also`): the image, the
    completion and its event commit together or not at all, so a process that dies in between leaves a URL
    still unused rather than one whose lapsed claim would let it make a second image. Only while this
    request's claim holds (UploadUsed otherwise, which undoes the image)."""
    completed_at = timezone.now()
    done = DirectUpload.objects.filter(pk=upload.pk, claimed_at=claimed_at, completed_at__isnull=True).update(
        completed_at=completed_at, image=image
    )
    if not done:
        raise UploadUsed("This upload URL has been used; ask for a new one.")
    upload.completed_at, upload.image, upload.claimed_at = completed_at, image, claimed_at
    notifications.upload_completed(upload=upload)


def expired_uploads_sweep(*, now: Any = None) -> int:
    """Delete the upload URLs that expired without their image (not one still being processed), each with
    its `upload.expired` event; returns how many. `manage.py expire_uploads` runs it. (The tus uploads'
    partial data goes with them: `tus_partials_sweep`.)

    Completed ones stay: `GET /uploads/{id}` still says which image each made. One conditional DELETE per
    URL, in the transaction of its event: of two sweeps at once (or a sweep and a late completion) only
    the one whose DELETE removed the row records the event, so each expiry is reported once.
    """
    now = now or timezone.now()
    expired = DirectUpload.objects.filter(completed_at__isnull=True, expires_at__lte=now).filter(
        Q(claimed_at__isnull=True) | Q(claimed_at__lte=now - CLAIM_LEASE)
    )
    deleted = 0
    label = DirectUpload._meta.label
    # In batches, each read before its rows are deleted (SQLite cannot write under an open read). A row
    # another sweep or a completion took no longer matches, so every batch is new rows.
    while batch := list(expired.select_related("api_key").order_by("expires_at", "pk")[:SWEEP_BATCH]):
        for upload in batch:
            with transaction.atomic():
                _, removed = expired.filter(pk=upload.pk).delete()
                if removed.get(label):
                    notifications.upload_expired(upload=upload)
                    deleted += 1
    if deleted:
        logger.info("expired upload urls deleted: %s", deleted)
    return deleted
