"""Enforces IMAGE_MAX_UPLOAD_BYTES while the body is read, so an oversize upload is never spooled in full.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE ignores file parts, and FILE_UPLOAD_MAX_MEMORY_SIZE only decides
when an upload spills to a temporary file: neither limits an upload's size.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from images.exceptions import ImageTooLarge

# Content-Length counts the whole body: leave room for the other fields and the multipart framing.
FORM_OVERHEAD_BYTES = 64 * 1024


def _too_large() -> ImageTooLarge:
    limit = settings.IMAGE_MAX_UPLOAD_BYTES
    return ImageTooLarge(f"The upload is larger than the limit of {limit} bytes.")


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: counts file bytes and passes them on to the next handler."""

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],  # noqa: N803 - Django's signature
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> None:
        # Refuse before reading a byte when the declared size is already over.
        if content_length > settings.IMAGE_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES:
            raise _too_large()
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.IMAGE_MAX_UPLOAD_BYTES:
            raise _too_large()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
