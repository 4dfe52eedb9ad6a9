"""The one error format: RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Statuses that protocols we speak define beyond the HTTP registry (http.HTTPStatus does not know them).
_EXTENSION_STATUSES = {460: ("Checksum Mismatch", "checksum_mismatch")}  # tus 1.0's checksum extension


def _status_names(status: int) -> tuple[str, str]:
    """The title and the default code of a status."""
    if status in _EXTENSION_STATUSES:
        return _EXTENSION_STATUSES[status]
    known = HTTPStatus(status)
    return known.phrase, known.name.lower()


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The body of a problem: `type`, `title`, `status`, `detail`, a stable `code`, and field `errors`."""
    title, default_code = _status_names(status)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code or default_code,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(status: int, detail: str, **kwargs: Any) -> JsonResponse:
    """A problem as a plain Django response, for the layers below DRF (Django's error handlers)."""
    return JsonResponse(
        problem(status, detail, **kwargs),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )


def allow_methods(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Like Django's require_http_methods, but the 405 is a problem like every other error."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = problem_response(405, f"Method {request.method} is not allowed here.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
