"""Turns every exception a view raises into a problem+json response with the right status.

Errors that carry their own status and code (`api.exceptions.ProblemError`, which the domain's errors
subclass), DRF's errors and Django's own all end here; views never build error responses themselves.
Anything not known here is a bug: DRF re-raises it and `api.errors.server_error` answers a problem+json 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from api.exceptions import ProblemError, registered_status
from api.problems import PROBLEM_CONTENT_TYPE, problem

logger = logging.getLogger(__name__)

# How long a client should wait before retrying after a dependency failed.
RETRY_AFTER_SECONDS = 5


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ProblemError):
        return _own_problem(exc, exc.status)
    status = registered_status(exc)
    if status is not None:
        return _own_problem(exc, status)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.exception("database unavailable")
        return _respond(
            503,
            "The database is unavailable; nothing was changed. Try again shortly.",
            code="database_unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RequestDataTooBig):
        return _respond(413, str(exc), code="request_too_large")
    if isinstance(exc, SuspiciousOperation):
        return _respond(400, "The request was malformed.", code="bad_request")
    if isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound("No object with this id exists.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        errors = list(_field_errors(exc.detail))
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _respond(400, summary or "The request is invalid.", code="invalid", errors=errors)
    if isinstance(exc, exceptions.APIException):
        return _respond(
            exc.status_code,
            str(exc.detail),
            code=_code_of(exc),
            headers=_headers_of(exc, context),
        )
    return None


def _own_problem(exc: Any, status: int) -> Response:
    """A ProblemError, or a registered error of the same shape (`message`, `code`, `field`)."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    errors = None
    if exc.field is not None:
        errors = [{"field": exc.field, "code": exc.code, "message": exc.message}]
    return _respond(status, exc.message, code=exc.code, errors=errors, headers=headers)


def _respond(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        problem(status, detail, code=code, errors=errors),
        status=status,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _field_errors(detail: Any, field: str = "") -> Any:
    """Flatten DRF's nested error detail into `{field, code, message}` items."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "non_field_errors" if key == "non_field_errors" else str(key)
            yield from _field_errors(value, f"{field}.{name}" if field else name)
    elif isinstance(detail, list):
        for item in detail:
            yield from _field_errors(item, field)
    else:
        yield {
            "field": field or "non_field_errors",
            "code": getattr(detail, "code", "invalid"),
            "message": str(detail),
        }


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def _headers_of(exc: exceptions.APIException, context: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(math.ceil(exc.wait))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        view = context.get("view")
        request = context.get("request")
        if view is not None and request is not None:
            auth_header = view.get_authenticate_header(request)
            if auth_header:
                headers["WWW-Authenticate"] = auth_header
    return headers
