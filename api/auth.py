"""Who may call the API: API keys (stored hashed by djangorestframework-api-key) and the access mode.

`IMAGERY_AUTH` decides what needs a key: `off` (nothing), `write` (uploads), `all` (reads too). Keys are sent
as `Authorization: Bearer <key>` or `Authorization: Api-Key <key>`, and managed with `manage.py apikey`.
Failed checks count against THROTTLE_AUTH_FAILURES_PER_ADDRESS (api/throttling.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework_api_key.models import APIKey

from api.models import AdminKey
from api.throttling import AuthFailuresPerAddress

_KEYWORDS = ("bearer", "api-key")


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticates a request by its API key; the key becomes `request.auth`, there is no user."""

    def authenticate(self, request: Request) -> tuple[None, APIKey] | None:
        keyword, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if keyword.lower() not in _KEYWORDS:
            return None
        # An address that failed too often is refused before its key is looked at (429), so that key
        # guessing is bounded by THROTTLE_AUTH_FAILURES_PER_ADDRESS and learns nothing past it.
        failures = AuthFailuresPerAddress()
        if failures.exhausted(request):
            raise exceptions.Throttled(wait=failures.wait())
        try:
            return (None, _valid_key(key.strip()))
        except exceptions.AuthenticationFailed:
            failures.record(request)
            raise

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="imagery"'


def _valid_key(key: str) -> APIKey:
    """The live key `key` names; AuthenticationFailed (a 401) when there is none."""
    if not key:
        raise exceptions.AuthenticationFailed("The Authorization header has no key.")
    try:
        api_key = APIKey.objects.get_from_key(key)
    except APIKey.DoesNotExist:
        raise exceptions.AuthenticationFailed("The API key is not valid.") from None
    if api_key.revoked or api_key.has_expired:
        raise exceptions.AuthenticationFailed("The API key is revoked or expired.")
    return api_key


def key_summary(api_key: APIKey | None) -> dict[str, str] | None:
    """A key as others may be told of it (an event's payload): its prefix (the part before the dot) and
    name, never the key; None without one."""
    if api_key is None:
        return None
    return {"prefix": api_key.prefix, "name": api_key.name}


def is_admin(api_key: APIKey) -> bool:
    """Whether `api_key` was made an administrator (`manage.py apikey create NAME --admin`)."""
    return AdminKey.objects.filter(api_key=api_key).exists()


def key_required(method: str) -> bool:
    """Whether a request with this HTTP method needs an API key under the current IMAGERY_AUTH."""
    mode = settings.IMAGERY_AUTH
    return mode == "all" or (mode == "write" and method not in SAFE_METHODS)


class ImageryAccess(BasePermission):
    """Lets a request through according to IMAGERY_AUTH; without a key where one is needed, it is a 401."""

    message = "This needs an API key: send `Authorization: Bearer <key>`."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth is not None or not key_required(request.method or "GET")
