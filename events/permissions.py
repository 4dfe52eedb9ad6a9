"""Who may manage webhooks: admin keys only, whatever IMAGERY_AUTH says (an endpoint's URL is where this
server will send requests, and its secret signs them)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.auth import is_admin


class AdminKeyOnly(BasePermission):
    """401 without a key, 403 with a key that is not an admin key (`manage.py apikey create --admin`)."""

    message = "Webhooks are managed with an admin API key (`manage.py apikey create NAME --admin`)."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not hasattr(view, (request.method or "").lower()):
            return True  # a method the endpoint does not have: its 405, not a 401
        return request.auth is not None and is_admin(request.auth)
