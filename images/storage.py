"""Where image files go: content-addressed names, save, delete, health. No HTTP here.

Only Django's storage API is used, so the backend (local files, S3) is a setting. Names are the SHA-256 of
the stored bytes, so identical content is stored once and a name never changes meaning; nothing of the
user's input ever reaches a path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, default_storage

from images.exceptions import StorageUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    name: str
    created: bool  # False when identical content was already stored


def content_name(data: bytes, extension: str) -> str:
    """`images/ab/cd/<sha256>.<ext>`: two levels of fan-out keep directories and listings small."""
    digest = hashlib.sha256(data).hexdigest()
    return f"images/{digest[:2]}/{digest[2:4]}/{digest}.{extension}"


def digest_of(name: str) -> str:
    """The content hash a stored name carries (its stem)."""
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


def store(data: bytes, extension: str) -> StoredFile:
    """Save `data` under its content name, unless the same bytes are stored already."""
    name = content_name(data, extension)
    try:
        if default_storage.exists(name):
            return StoredFile(name=name, created=False)
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:
            # A concurrent upload of the same bytes won the race; the storage picked another name.
            default_storage.delete(saved)
            return StoredFile(name=name, created=False)
    except Exception as exc:
        logger.exception("storing %s failed", name)
        raise StorageUnavailable("The file store is unavailable; nothing was saved.") from exc
    return StoredFile(name=name, created=True)


def delete(name: str) -> None:
    """Remove a stored file; a failure is logged, never raised (the caller is already cleaning up)."""
    try:
        default_storage.delete(name)
    except Exception:
        logger.exception("deleting %s failed; it is now an orphan", name)


def open_file(name: str) -> File:
    """Open a stored file for reading; FileNotFoundError when it is not there."""
    return default_storage.open(name, "rb")


def size_of(name: str) -> int:
    """Bytes of a stored file; FileNotFoundError when it is not there."""
    return default_storage.size(name)


def is_local() -> bool:
    """True when files live on this machine's filesystem (and the app serves them itself)."""
    return isinstance(default_storage, FileSystemStorage)


def is_available() -> bool:
    """A cheap readiness probe: no listing, no data transfer."""
    try:
        if is_local():
            location = Path(default_storage.location)
            location.mkdir(parents=True, exist_ok=True)
            return os.access(location, os.W_OK)
        default_storage.exists("images/.readyz")
        return True
    except Exception:
        logger.exception("storage readiness check failed")
        return False
