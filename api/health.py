"""Liveness and readiness probes for load balancers and orchestrators.

`ProbeMiddleware` answers the probes and `/metrics` before Django checks the Host header: a container's
HEALTHCHECK, a Kubernetes probe or a Prometheus scraper addresses the app as 127.0.0.1 or a pod IP, which
no ALLOWED_HOSTS of a real deployment lists. These answers build no URL, so the Host header means nothing to
them.
"""

import logging
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django_prometheus.exports import ExportToDjangoView

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


# Prometheus text format, from django-prometheus. Under gunicorn with PROMETHEUS_MULTIPROC_DIR set it adds up
# every worker's numbers; without it, each scrape sees the one worker that answered.
metrics = allow_methods("GET", "HEAD")(ExportToDjangoView)

# Answered ahead of host validation, HTTPS redirects and the URL resolver (also routed in config/urls.py).
PROBES: dict[str, Callable[[HttpRequest], HttpResponseBase]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics,
}


class ProbeMiddleware:
    """Answers `PROBES` whatever the Host header; sits after the request id and before SecurityMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
