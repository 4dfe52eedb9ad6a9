"""Liveness and readiness probes for load balancers and orchestrators."""

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse

from api.problems import allow_methods
from images import storage

logger = logging.getLogger(__name__)


@allow_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """Answers while the process lives; checks nothing else."""
    return JsonResponse({"status": "ok"})


@allow_methods("GET", "HEAD")
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and the storage is reachable; 503 otherwise."""
    checks = {"database": _database_ok(), "storage": storage.is_available()}
    ready = all(checks.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()},
        },
        status=200 if ready else 503,
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("database readiness check failed")
        return False
    return True
