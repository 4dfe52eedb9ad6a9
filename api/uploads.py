"""Request bodies: a byte limit enforced while the body is read, so an oversize upload is never spooled in
full; and the rest of a body read before an early answer goes out.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE ignores file parts, and FILE_UPLOAD_MAX_MEMORY_SIZE only decides
when an upload spills to a temporary file: neither limits an upload's size. A subclass names the setting
that holds its limit and the field and code its 413 problem reports (images.uploads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponseBase

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


# Read in pieces this big.
_DRAIN_CHUNK_BYTES = 256 * 1024


class ReadWholeBodyMiddleware:
    """Reads what is left of a request's body before its answer goes out.

    Answers that come before the body is read (401 without a key, 429, 503 when the key cannot be checked,
    a 413 from the declared length) would otherwise leave it unread: gunicorn closes the connection, the
    kernel resets it because of the unread bytes, and a client or proxy still sending the body (nginx sends
    it whole before it reads) gets a broken pipe instead of the answer, which nginx turns into a 502. Bodies
    longer than READ_WHOLE_BODY_UP_TO_BYTES are not read; their connection is closed as before.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        _read_rest_of_body(request)
        return response


def _read_rest_of_body(request: HttpRequest) -> None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    limit = settings.READ_WHOLE_BODY_UP_TO_BYTES
    if not 0 < declared <= limit:
        return
    try:
        # Stops at the declared length (Django's LimitedStream); an empty read once it is all read.
        while request.read(_DRAIN_CHUNK_BYTES):
            pass
    except Exception:  # the client went away (UnreadablePostError): nobody is left to answer
        logger.debug("the rest of the request body could not be read", exc_info=True)
