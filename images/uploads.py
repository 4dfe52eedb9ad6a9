"""The byte limit of an uploaded image (IMAGE_MAX_UPLOAD_BYTES), enforced while the body is read."""

from api.uploads import SizeLimitedUploadHandler
from images.exceptions import ImageTooLarge


class ImageUploadHandler(SizeLimitedUploadHandler):
    """An upload over the limit is a 413 about the `image` field, like every other too-large image."""

    limit_setting = "IMAGE_MAX_UPLOAD_BYTES"
    field = ImageTooLarge.field
    code = ImageTooLarge.code
