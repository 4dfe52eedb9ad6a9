"""The kinds of event an endpoint can subscribe to. The domain apps send them; this app only names them."""

from django.db import models


class EventKind(models.TextChoices):
    IMAGE_CREATED = "image.created"
    IMAGE_UPDATED = "image.updated"
    IMAGE_DELETED = "image.deleted"
    # Sent by the uploads app (direct uploads): a one-time upload finished, or expired unused.
    UPLOAD_COMPLETED = "upload.completed"
    UPLOAD_EXPIRED = "upload.expired"
