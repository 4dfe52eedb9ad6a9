"""Request bodies: a byte limit enforced while the body is read, so an oversize upload is never spooled in
full. (An answer given before the body is read reaches its client because gunicorn's worker reads every
body before the app runs, and drains closing connections: api/slow_clients.py.)

Django's DATA_UPLOAD_MAX_MEMORY_SIZE ignores file parts, and FILE_UPLOAD_MAX_MEMORY_SIZE only decides
when an upload spills to a temporary file: neither limits an upload's size. A subclass names the setting
that holds its limit and the field and code its 413 problem reports (images.uploads).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from api.exceptions import UploadTooLarge

logger = logging.getLogger(__name__)

# Content-Length counts the whole body: leave room for the other fields and the multipart framing.
FORM_OVERHEAD_BYTES = 64 * 1024


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: counts file bytes and passes them on to the next handler.

    `limit_setting` names the setting read on every request (so a changed setting applies at once);
    `field` and `code` are what the UploadTooLarge it raises reports.
    """

    limit_setting: str
    field: str | None = None
    code: str = UploadTooLarge.code

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],  # noqa: N803 - Django's signature
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> None:
        # Refuse before reading a byte when the declared size is already over.
        if content_length > self._limit() + FORM_OVERHEAD_BYTES:
            raise self._too_large()
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self._limit():
            raise self._too_large()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    def _limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    def _too_large(self) -> UploadTooLarge:
        message = f"The upload is larger than the limit of {self._limit()} bytes."
        return UploadTooLarge(message, code=self.code, field=self.field)
