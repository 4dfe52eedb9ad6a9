"""Request bodies: IMAGE_MAX_UPLOAD_BYTES enforced while the body is read, so an oversize upload is never
spooled in full; and the rest of a body read before an early answer goes out.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE ignores file parts, and FILE_UPLOAD_MAX_MEMORY_SIZE only decides
when an upload spills to a temporary file: neither limits an upload's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponseBase

from images.exceptions import ImageTooLarge

logger = logging.getLogger(__name__)

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


# Read in pieces this big, and bodies up to this many times the largest upload we accept (the proxy's own
# limit, client_max_body_size, is above the upload limit: its bodies must get the app's 413).
_DRAIN_CHUNK_BYTES = 256 * 1024
_DRAIN_LIMIT_FACTOR = 2


class ReadWholeBodyMiddleware:
    """Reads what is left of a request's body before its answer goes out.

    Answers that come before the body is read (401 without a key, 429, 503 when the key cannot be checked,
    a 413 from the declared length) would otherwise leave it unread: gunicorn closes the connection, the
    kernel resets it because of the unread bytes, and a client or proxy still sending the body (nginx sends
    it whole before it reads) gets a broken pipe instead of the answer, which nginx turns into a 502. Bodies
    longer than twice the upload limit are not read; their connection is closed as before.
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
    limit = _DRAIN_LIMIT_FACTOR * (settings.IMAGE_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES)
    if not 0 < declared <= limit:
        return
    try:
        # Stops at the declared length (Django's LimitedStream); an empty read once it is all read.
        while request.read(_DRAIN_CHUNK_BYTES):
            pass
    except Exception:  # the client went away (UnreadablePostError): nobody is left to answer
        logger.debug("the rest of the request body could not be read", exc_info=True)
