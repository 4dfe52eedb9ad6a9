"""Reads of upload URLs: by the public id for the key that made it, and by the URL's secret for anyone."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING

from api.auth import is_admin
from uploads.exceptions import UploadNotFound
from uploads.models import DirectUpload

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

# The longest secret a URL may carry: ours are 43 characters (secrets.token_urlsafe(32)).
SECRET_MAX_LENGTH = 128


def secret_hash(secret: str) -> str:
    """What the database keeps of a URL's secret: its sha256, hex. The secret itself is never stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def direct_upload_get_visible(*, upload_id: uuid.UUID, key: APIKey | None) -> DirectUpload:
    """The upload URL `upload_id` as the key that made it or an admin key sees it; UploadNotFound (404) for
    anyone else (a URL made with access open, by no key, is anyone's)."""
    upload = DirectUpload.objects.filter(pk=upload_id).first()
    if upload is None:
        raise UploadNotFound("No upload URL with this id exists.")
    if upload.api_key_id is not None and (key is None or (key.pk != upload.api_key_id and not is_admin(key))):
        raise UploadNotFound("No upload URL with this id exists.")
    return upload


def direct_upload_by_secret(*, upload_id: uuid.UUID, secret: str) -> DirectUpload:
    """The upload URL `/uploads/{upload_id}/{secret}` names; UploadNotFound (404) for a wrong id or secret.

    The row is found by its id; the secret's hash is then compared in constant time, so how long the answer
    takes says nothing about how much of a guess was right.
    """
    upload = DirectUpload.objects.filter(pk=upload_id).first() if len(secret) <= SECRET_MAX_LENGTH else None
    # Compared even without a row, so that an unknown id costs the same as a wrong secret.
    expected = upload.secret_hash if upload is not None else "0" * 64
    if not hmac.compare_digest(expected, secret_hash(secret)) or upload is None:
        raise UploadNotFound("No upload URL with this id and secret exists; ask for a new one.")
    return upload
