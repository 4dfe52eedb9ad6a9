"""Who may see an image: a public one anyone (as access allows), a private one only the API key that
uploaded it and admin keys. For anybody else a private image does not exist: its detail, file,
renditions, edit and delete answer 404, and lists leave it out (images/selectors.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from api.auth import is_admin
from images.exceptions import PrivacyNeedsKeys
from images.models import Visibility

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey


def may_see(*, visibility: str, owner_id: str | None, key: APIKey | None) -> bool:
    """Whether the caller with `key` (None: no key) may see an image of this visibility and uploader."""
    if visibility != Visibility.PRIVATE:
        return True
    return key is not None and (owner_id == key.pk or is_admin(key))


def check_may_be_private(visibility: str) -> None:
    """PrivacyNeedsKeys (400) when `visibility` is private and access is open: nobody would own it."""
    if visibility == Visibility.PRIVATE and settings.IMAGERY_AUTH == "off":
        raise PrivacyNeedsKeys(
            "Private images need API keys: set IMAGERY_AUTH=write or all, and upload with a key.",
            field="visibility",
        )
