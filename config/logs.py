"""Log lines: one JSON object per line (production's default) or plain text (development's), each with the id
of the request it was written in.

Used twice, so a container's output is one format end to end: `settings.LOGGING` for the app, and gunicorn's
`logconfig_dict` for the server's own lines (`deploy/gunicorn.conf.py`). Nothing here imports Django's
settings: gunicorn reads it before any app is loaded.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.env import env

FORMATS = ("json", "plain")

_FORMATTERS: dict[str, dict[str, Any]] = {
    "json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",
    },
    "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s %(message)s"},
}


def log_format() -> str:
    """`LOG_FORMAT`; unset: json, or plain in development (`IMAGERY_ENV=development`)."""
    development = env.str("IMAGERY_ENV", default="production") == "development"
    chosen = env.str("LOG_FORMAT", default="") or ("plain" if development else "json")
    if chosen not in FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {chosen!r}.")
    return chosen


def log_level() -> str:
    return env.str("LOG_LEVEL", default="INFO").upper()


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """A `dictConfig` that sends every record to stderr in `log_format`, with its request id."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "api.request_log.RequestIdFilter"},
            "redact_secrets": {"()": "api.request_log.RedactSecretsFilter"},
        },
        "formatters": {log_format: _FORMATTERS[log_format]},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "redact_secrets"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own lines (boot, worker exits, timeouts) in the app's format.

    gunicorn's access log stays silent: the app logs every request itself (`api.request_log`), with the
    request id and in the same format.
    """
    config = logging_config(log_format=log_format(), level=log_level())
    config["loggers"] = {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    }
    return config
