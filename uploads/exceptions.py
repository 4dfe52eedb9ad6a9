"""What an upload URL refuses, each with its HTTP status and stable code (`api.exceptions.ProblemError`)."""

from api.exceptions import ProblemError


class UploadNotFound(ProblemError):
    """No upload URL with this id and secret, or one that this key may not see."""

    status = 404
    code = "not_found"


class UploadUsed(ProblemError):
    """The URL has made its image already, or another upload to it is being processed: single use."""

    status = 409
    code = "upload_used"


class UploadExpired(ProblemError):
    """The URL's time ran out before an image was made from it (or the key that made it was revoked)."""

    status = 410
    code = "upload_expired"
