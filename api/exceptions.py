"""Errors that carry their own HTTP answer. Pure Python: domain code below the web layer may raise them.

A subclass sets its `status` and a stable, machine-readable `code`; `field` names the request field the
error is about (it becomes the problem's one `errors` item), None when it is about the request as a whole.
`api.exception_handler` turns any of them into a problem+json response; it knows no subclass.
"""

from __future__ import annotations


class ProblemError(Exception):
    """Base of every error raised on purpose that the client should see as a problem."""

    status: int = 500
    code: str = "error"
    field: str | None = None

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field


class UploadTooLarge(ProblemError):
    """The request body, or one of its files, is over the configured byte limit."""

    status = 413
    code = "request_too_large"


# Errors of pure code below the web layer that cannot subclass ProblemError (a package that must not import
# api/): their status, registered by the app that owns them. Each has `message`, `code` and `field`.
_REGISTERED_STATUSES: dict[type[Exception], int] = {}


def register_statuses(statuses: dict[type[Exception], int]) -> None:
    """Answer each of these error types (and its subclasses) with this status, as a ProblemError would."""
    _REGISTERED_STATUSES.update(statuses)


def registered_status(exc: Exception) -> int | None:
    """The status registered for this error's type or its nearest registered base, if any."""
    for cls in type(exc).__mro__:
        status = _REGISTERED_STATUSES.get(cls)
        if status is not None:
            return status
    return None
