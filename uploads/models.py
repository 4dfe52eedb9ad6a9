"""DirectUpload: a one-time upload URL minted by an API key, and its resumable (tus) state."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class UploadState(models.TextChoices):
    """What `GET /uploads/{id}` answers; derived from the row, never stored."""

    PENDING = "pending"
    COMPLETED = "completed"
    EXPIRED = "expired"


class DirectUpload(models.Model):
    # The public id in /uploads/{id}; the secret that lets anyone upload is separate, kept only hashed.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # sha256 hex of the URL's secret (secrets.token_urlsafe(32), 256 bits): a leaked database gives no URL.
    secret_hash = models.CharField(max_length=64, unique=True)
    # The key that minted it and will own the image (None when access is open).
    api_key = models.ForeignKey(
        "rest_framework_api_key.APIKey",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="direct_uploads",
    )
    # What the minting request fixed (title, width, height, fit, format, visibility, metadata): the uploader
    # cannot change these; what is absent here the uploader may send.
    fixed = models.JSONField(default=dict, blank=True)
    max_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    # When the image was made from it (single use done).
    completed_at = models.DateTimeField(null=True, blank=True)
    # A string reference: uploads/ never imports images.models (the uploads-through-services contract).
    image = models.ForeignKey(
        "images.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Resumable (tus) state. upload_length: tus Upload-Length (None until declared, or no tus).
    upload_length = models.BigIntegerField(null=True, blank=True)
    # Bytes durably stored; a PATCH at any other offset is a 409.
    upload_offset = models.BigIntegerField(default=0)
    # The decoded Upload-Metadata.
    tus_metadata = models.JSONField(default=dict, blank=True)
    # When the tus resource was created (None: not a tus upload).
    tus_created_at = models.DateTimeField(null=True, blank=True)
    # Set by the conditional UPDATE that claims the URL for one upload (uploads.services): a second upload
    # finds it set (409) while the first is processed; cleared again if the image is refused, so the URL
    # stays usable. A claim of its own rather than `completed_at`, so that no transaction holds the row
    # (SQLite's write lock) while the image is processed.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The stored chunk objects the offset counts, in order (uploads/partials.py): each PATCH stores its
    # chunk under a name of its own, and the conditional UPDATE that advances the offset appends it here,
    # so of two PATCHes at one offset only the winner's chunk is ever read.
    tus_chunks = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(max_bytes__gt=0), name="direct_upload_max_bytes_positive"),
            models.CheckConstraint(
                condition=Q(upload_offset__gte=0), name="direct_upload_offset_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"upload {self.id} ({self.state})"

    @property
    def state(self) -> str:
        if self.completed_at is not None:
            return UploadState.COMPLETED
        if self.expires_at <= timezone.now():
            return UploadState.EXPIRED
        return UploadState.PENDING
