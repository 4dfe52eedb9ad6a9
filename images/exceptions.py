"""The domain's errors. They say what went wrong; `api/exception_handler.py` decides how it looks on HTTP."""


class ImageryError(Exception):
    """Base of every error Imagery raises on purpose; `code` is stable and machine-readable."""

    code = "imagery_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(ImageryError):
    """The content claims an accepted format but does not decode (truncated, corrupt)."""

    code = "invalid_image"


class UnsupportedFormat(ImageryError):
    """The content is not an image, or not in a format we accept."""

    code = "unsupported_format"


class ImageTooLarge(ImageryError):
    """Too many bytes, pixels or frames: refused before the expensive work."""

    code = "image_too_large"


class StorageUnavailable(ImageryError):
    """The file store failed (down, full, denied); nothing was saved."""

    code = "storage_unavailable"
