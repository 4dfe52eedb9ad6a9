"""An upload URL's byte limit (its `max_bytes`), enforced while the body is read, on api's upload handler."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from api.uploads import SizeLimitedUploadHandler


class DirectUploadHandler(SizeLimitedUploadHandler):
    """Put first in a request's upload handlers: a body declared or read past the URL's `max_bytes` is a
    413 about `image` before any more is read, answered as POST /images answers a file over its limit."""

    limit_setting = "IMAGE_MAX_UPLOAD_BYTES"
    # The field and code of images' ImageTooLarge, which uploads/ may not import: a test compares them.
    field = "image"
    code = "image_too_large"

    def __init__(self, request: Any, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes

    def _limit(self) -> int:
        # The server's limit may have been lowered since the URL was made.
        return min(self.max_bytes, int(settings.IMAGE_MAX_UPLOAD_BYTES))


def limit_upload(request: Any, *, max_bytes: int) -> None:
    """Make `request`'s body (Django's or DRF's request) refused past `max_bytes`; call it before anything
    reads the body. Django's own list of handlers is changed in place, as its documentation shows."""
    request.upload_handlers.insert(0, DirectUploadHandler(request, max_bytes=max_bytes))
