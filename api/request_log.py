"""Request ids and the access log.

Every request gets an id: the caller's `X-Request-ID` when it is a sane token (a proxy or a client that
already made one), else a fresh one. It is echoed in the response's `X-Request-ID`, and every log record
written while the request runs carries it (`RequestIdFilter`, wired in `config/logs.py`), so one id finds a
request's lines across nginx, the app and the client. The middleware also writes the access log: one line
per request with method, path (a signature cut short: `redact`), status and duration.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponseBase

HEADER = "X-Request-ID"
# Tokens only: an id ends up in log lines and response headers, so nothing that could forge either.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}", re.ASCII)

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
access_logger = logging.getLogger("api.access")


def request_id_from(header: str | None) -> str:
    """The caller's id when it is sane, else a new one (32 hex digits)."""
    if header and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request), for the formatters to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get() or "-"
        return True


class RequestLogMiddleware:
    """Near the outside of the stack: sets the request id for everything inside it, then logs the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get(HEADER))
        # Kept until the response is closed (`_clear`), not just until this returns: Django logs 4xx/5xx
        # ("django.request") after the middleware, and a streamed body is sent after it too.
        _current.set(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response[HEADER] = request_id
        duration_ms = (time.perf_counter() - started) * 1000
        path = redact(request.get_full_path())
        access_logger.info(
            "%s %s %s %.1fms",
            request.method,
            path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 1),
                "client": request.META.get("REMOTE_ADDR"),
            },
        )
        return response


# Query parameters that are credentials (a signed URL's `sig`): logged as a short prefix, never whole, so a
# log line cannot be replayed as a URL.
SECRET_PARAMETERS = ("sig",)
_SECRET_IN_QUERY = re.compile(rf"([?&](?:{'|'.join(SECRET_PARAMETERS)})=)([^&#]*)")
# Paths whose part is a credential (an upload URL's secret), as regexes with a `secret` group: registered by
# the app that owns them (`register_secret_path`), since api/ knows no app's paths.
_SECRET_PATHS: list[re.Pattern[str]] = []


def register_secret_path(pattern: str) -> None:
    """Log paths that match `pattern` with its `secret` group cut short, like a `sig` parameter."""
    compiled = re.compile(pattern)
    if "secret" not in compiled.groupindex:
        raise ValueError(f"{pattern!r} has no `secret` group")
    if compiled.pattern not in {p.pattern for p in _SECRET_PATHS}:
        _SECRET_PATHS.append(compiled)


def redact(path: str) -> str:
    """`path` (with its query) with each secret parameter's value and secret path part cut to its first 4
    characters."""
    path = _SECRET_IN_QUERY.sub(lambda m: f"{m[1]}{m[2][:4]}…", path)
    for pattern in _SECRET_PATHS:
        path = pattern.sub(lambda m: _cut(m, "secret"), path)
    return path


def _cut(match: re.Match[str], group: str) -> str:
    """The match with `group` cut to its first 4 characters."""
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    return f"{match[0][:start]}{match[group][:4]}…{match[0][end:]}"


class RedactSecretsFilter(logging.Filter):
    """On the log handler: every record's message with its secrets cut short (`redact`), so that no line
    holds one whole; Django's own `django.request` lines ("Not Found: /path") name the request's path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRET_PATHS:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        request = getattr(record, "request", None)
        if (
            isinstance(request, HttpRequest)
            and (path := redact(request.get_full_path())) != request.get_full_path()
        ):
            # A JSON formatter writes the record's extras too, and the request's repr holds its path.
            record.request = f"<{type(request).__name__}: {request.method} {path!r}>"
        return True


def _clear(**kwargs: object) -> None:
    _current.set(None)


# Django's own end-of-request hook (the WSGI server closed the response): later lines belong to no request.
request_finished.connect(_clear, dispatch_uid="api.request_log.clear")
