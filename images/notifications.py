"""What images tells the events app about its changes: the event kind and payload of each, recorded in
the change's own transaction (`events.record`), so a rolled-back change reports nothing.

The payload is data: the image object as the API answers it (URLs as paths: no request, no host; a private
image's URLs unsigned, as in its ETag, since a signature would expire before a retry) or, for a delete,
its id; and the API key that made the change, by prefix and name (never the key), or null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import events
from api.auth import key_summary
from events.kinds import EventKind
from images.models import Image

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey


def image_object(image: Image) -> dict[str, Any]:
    """The image as `GET /images/{id}` answers it, as plain JSON data."""
    # Imported here: the serializers import the services (their upload choices), which import this.
    from images.serializers import ImageOutputSerializer

    # to_representation: plain JSON values already (the serializer's `.data` would only wrap them).
    return ImageOutputSerializer(context={"unsigned": True}).to_representation(image)


# The object is built only when an endpoint wants the event: a deployment without webhooks pays nothing.


def image_created(*, image: Image, api_key: APIKey | None) -> None:
    events.record(
        EventKind.IMAGE_CREATED, lambda: {"object": image_object(image), "key": key_summary(api_key)}
    )


def image_updated(*, image: Image, api_key: APIKey | None) -> None:
    events.record(
        EventKind.IMAGE_UPDATED, lambda: {"object": image_object(image), "key": key_summary(api_key)}
    )


def image_deleted(*, image_id: int, api_key: APIKey | None) -> None:
    events.record(EventKind.IMAGE_DELETED, {"id": image_id, "key": key_summary(api_key)})
