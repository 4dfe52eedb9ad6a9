"""The domain's errors: what went wrong, and the HTTP status and field each answers with.

Most subclass `api.exceptions.ProblemError`, so `api/exception_handler.py` turns them into problems without
knowing any of them. The pixel work's errors (`images.pixels.errors`, pure Python, reached through
`images.pipeline`) are re-exported here and given their statuses in `PIXEL_ERROR_STATUSES`, which
`ImagesConfig.ready` registers with api.
"""

from api.exceptions import ProblemError
from images.pixels.errors import ImageTooLarge, InvalidImage, PixelError, UnsupportedFormat

__all__ = [
    "PIXEL_ERROR_STATUSES",
    "FileBusy",
    "ImageChanged",
    "ImageTooLarge",
    "ImageryError",
    "InvalidImage",
    "InvalidMetadata",
    "PixelError",
    "PrivacyNeedsKeys",
    "RenditionTooLarge",
    "ServerBusy",
    "SignatureExpired",
    "SignatureInvalid",
    "SignatureRequired",
    "StorageUnavailable",
    "UnsupportedFormat",
]

# The pixel work's refusals as the client sees them.
PIXEL_ERROR_STATUSES: dict[type[Exception], int] = {
    InvalidImage: 400,
    UnsupportedFormat: 415,
    ImageTooLarge: 413,
}


class ImageryError(ProblemError):
    """Base of every domain error above the pixel work; `code` is stable and machine-readable."""

    code = "imagery_error"


class RenditionTooLarge(ImageryError):
    """A rendition asked for would cost more than the limits allow (the message names the setting)."""

    status = 413
    code = "image_too_large"


class StorageUnavailable(ImageryError):
    """The file store failed (down, full, denied); nothing was saved."""

    status = 503
    code = "storage_unavailable"


class ServerBusy(ImageryError):
    """Every decode slot stayed taken for IMAGE_DECODE_WAIT_SECONDS; nothing was done (503, Retry-After)."""

    status = 503
    code = "server_busy"


class FileBusy(ServerBusy):
    """A file's lock stayed taken for as long as the database waits for its own locks: the request holding
    it is stalled (most likely on the store). Nothing was done (503, Retry-After)."""


class ImageChanged(ImageryError):
    """The image is no longer the version the client's edit was based on (its `If-Match` ETag)."""

    status = 412
    code = "precondition_failed"


class PrivacyNeedsKeys(ImageryError):
    """A private image asked for while access is open (IMAGERY_AUTH=off): it would have no owner."""

    status = 400
    code = "invalid"


class SignatureInvalid(ImageryError):
    """A signed URL that is altered, made for other parameters or another image, or names an unknown key."""

    status = 403
    code = "invalid"


class SignatureExpired(ImageryError):
    """A signed URL whose expiry has passed."""

    status = 403
    code = "expired"


class SignatureRequired(ImageryError):
    """A free-form rendition asked for without a signature where the deployment requires one
    (IMAGE_RENDITIONS_REQUIRE_SIGNATURE)."""

    status = 403
    code = "signature_required"


class InvalidMetadata(ImageryError):
    """Metadata (or a metadata filter) that breaks the rule of `images.metadata`; the message says how."""

    status = 400
    code = "invalid"
    field = "metadata"
