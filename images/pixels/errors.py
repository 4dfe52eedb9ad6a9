"""What the pixel work refuses, as plain Python errors (no HTTP, no Django).

Each has a stable, machine-readable `code` and names the input `field` it is about; the images app gives
each its HTTP status (`images.exceptions`), so these reach the client as problems like every other error.
"""

from __future__ import annotations


class PixelError(Exception):
    """Base of every error the pixel work raises on purpose."""

    code = "pixel_error"
    field: str | None = "image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(PixelError):
    """The content claims an accepted format but does not decode (truncated, corrupt)."""

    code = "invalid_image"


class UnsupportedFormat(PixelError):
    """The content is not an image, or not in a format we accept."""

    code = "unsupported_format"


class ImageTooLarge(PixelError):
    """Too many bytes, pixels or frames: refused before the expensive work."""

    code = "image_too_large"
