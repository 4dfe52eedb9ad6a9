"""What uploads tells the events app: `upload.completed` and `upload.expired`, recorded in the transaction
of the change that decides them (`events.record`), so a rolled-back completion or deletion reports nothing.

The payload is data: the upload URL object as `GET /uploads/{id}` answers it (with its image's object once
completed; URLs as paths and unsigned, as images/notifications.py makes them) and the key that made the URL,
by prefix and name (never the key), or null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import events
from api.auth import key_summary
from events.kinds import EventKind
from uploads.models import DirectUpload

if TYPE_CHECKING:
    pass


def upload_object(upload: DirectUpload) -> dict[str, Any]:
    """The upload URL as `GET /uploads/{id}` answers it, as plain JSON data (its nested image unsigned)."""
    # Imported here: the serializers import images' serializers, which this module need not load early.
    from uploads.serializers import DirectUploadOutputSerializer

    return DirectUploadOutputSerializer(context={"unsigned": True}).to_representation(upload)


# The object is built only when an endpoint wants the event: a deployment without webhooks pays nothing.


def upload_completed(*, upload: DirectUpload) -> None:
    events.record(
        EventKind.UPLOAD_COMPLETED,
        lambda: {"object": upload_object(upload), "key": key_summary(upload.api_key)},
    )


def upload_expired(*, upload: DirectUpload) -> None:
    events.record(
        EventKind.UPLOAD_EXPIRED,
        lambda: {"object": upload_object(upload), "key": key_summary(upload.api_key)},
    )
