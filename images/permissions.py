"""Who may change an image: its uploader's key, or an admin key; anyone while access is open."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from api.auth import is_admin
from images.models import Image


class MayChangeImage(BasePermission):
    """Deleting and editing an image.

    With `IMAGERY_AUTH=off` anyone may, as anyone may upload. Otherwise a key is needed (ImageryAccess
    answers 401 without one) and it must be the key that uploaded the image or an admin key (403 else).
    """

    message = "Only the API key that uploaded this image, or an admin key, may change it."

    def has_object_permission(self, request: Request, view: Any, image: Image) -> bool:
        if request.method in SAFE_METHODS or settings.IMAGERY_AUTH == "off":
            return True
        key = request.auth
        return key is not None and (image.api_key_id == key.pk or is_admin(key))
