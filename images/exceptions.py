"""The domain's errors: what went wrong, and the HTTP status and field each answers with.

They subclass `api.exceptions.ProblemError`, so `api/exception_handler.py` turns them into problems without
knowing any of them.
"""

from api.exceptions import ProblemError


class ImageryError(ProblemError):
    """Base of every error Imagery raises on purpose; `code` is stable and machine-readable."""

    code = "imagery_error"


class InvalidImage(ImageryError):
    """The content claims an accepted format but does not decode (truncated, corrupt)."""

    status = 400
    code = "invalid_image"
    field = "image"


class UnsupportedFormat(ImageryError):
    """The content is not an image, or not in a format we accept."""

    status = 415
    code = "unsupported_format"
    field = "image"


class ImageTooLarge(ImageryError):
    """Too many bytes, pixels or frames: refused before the expensive work."""

    status = 413
    code = "image_too_large"
    field = "image"


class RenditionTooLarge(ImageTooLarge):
    """A rendition asked for would cost more than the limits allow (the message names the setting)."""

    field = None


class StorageUnavailable(ImageryError):
    """The file store failed (down, full, denied); nothing was saved."""

    status = 503
    code = "storage_unavailable"


class ImageChanged(ImageryError):
    """The image is no longer the version the client's edit was based on (its `If-Match` ETag)."""

    status = 412
    code = "precondition_failed"
