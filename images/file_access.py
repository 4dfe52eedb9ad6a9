"""Who may have an image's bytes (GET /images/{id}/file), and how the answer may be cached.

Decided from the request and the row alone, before any storage call:

- A signed request (`expires`, `kid`, `sig`: images/signing.py) is verified first, before the row is
  read, so that a bad signature answers the same 403 for any id (`invalid` or `expired`); a valid one
  is answered `Cache-Control: private, max-age=<seconds left>`.
- Unsigned, a private image's bytes are only its owner's (its API key, or an admin key), privately cached;
  for anyone else the image does not exist (404). Presets named in IMAGE_PUBLIC_PRESETS stay public.
- Free-form renditions (`width`, `height`) need a signature as IMAGE_RENDITIONS_REQUIRE_SIGNATURE says:
  `private` (private images', even for their owner), `all` (every image's). Presets and the stored file
  never do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.auth import ImageryAccess
from api.caching import cache_forever_read
from images.exceptions import SignatureInvalid, SignatureRequired
from images.models import Image, Visibility
from images.selectors import ImageFile
from images.signing import is_signed, verify
from images.visibility import may_see

if TYPE_CHECKING:
    from rest_framework_api_key.models import APIKey

# An owner's own unsigned read of a private image: never kept by a shared cache, revalidated by the browser.
CACHE_OWNER_ONLY = "private, no-cache"


class SignedOrImageryAccess(BasePermission):
    """A signed URL is its own credential (an `<img>` sends no API key); anything else is ImageryAccess."""

    message = ImageryAccess.message

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_signed(request.query_params) or ImageryAccess().has_permission(request, view)


def signed_access(image_id: int, params: Mapping[str, object] | None, query: Mapping[str, str]) -> str:
    """The Cache-Control of a signed request; SignatureInvalid/SignatureExpired (403) when it is not one.

    `params` None: the request's rendition parameters did not parse, which no signature was made for.
    """
    if params is None:
        raise SignatureInvalid("This signed URL is not valid: its parameters are not a rendition's.")
    left = verify(image_id, params, query)
    # Never longer than the signature lives, and never in a shared cache.
    return f"private, max-age={left}"


def may_ask_unsigned(image: ImageFile, query: Mapping[str, str], key: APIKey | None) -> bool:
    """Whether an unsigned request may learn that this image exists (else: 404, as for an unknown id)."""
    if image.visibility != Visibility.PRIVATE:
        return True
    if _public_preset(query):
        return True
    return may_see(visibility=image.visibility, owner_id=image.owner_id, key=key)


def unsigned_access(image: ImageFile, params: Mapping[str, object], key: APIKey | None) -> str:
    """The Cache-Control of an unsigned request; Image.DoesNotExist (404) for a private image that is not
    the caller's, SignatureRequired (403) for a free-form rendition that needs a signature."""
    free_form = params.get("width") is not None or params.get("height") is not None
    mode = settings.IMAGE_RENDITIONS_REQUIRE_SIGNATURE
    if image.visibility != Visibility.PRIVATE:
        if free_form and mode == "all":
            raise SignatureRequired(_SIGN_SIZES)
        return cache_forever_read()
    if params.get("preset") in settings.IMAGE_PUBLIC_PRESETS and not free_form:
        return cache_forever_read()
    if not may_see(visibility=image.visibility, owner_id=image.owner_id, key=key):
        raise Image.DoesNotExist
    if free_form and mode != "off":
        raise SignatureRequired(_SIGN_SIZES)
    return CACHE_OWNER_ONLY


def _public_preset(query: Mapping[str, str]) -> bool:
    return query.get("preset") in settings.IMAGE_PUBLIC_PRESETS and not ({"width", "height"} & set(query))


_SIGN_SIZES = (
    "This server renders free-form sizes only through signed URLs: use the image object's `srcset`, or a "
    "preset."
)
