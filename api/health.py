"""Liveness and readiness probes for load balancers and orchestrators.

`ProbeMiddleware` answers the probes and `/metrics` before Django checks the Host header: a container's
HEALTHCHECK, a Kubernetes probe or a Prometheus scraper addresses the app as 127.0.0.1 or a pod IP, which
no ALLOWED_HOSTS of a real deployment lists. These answers build no URL, so the Host header means nothing to
them.

`/readyz` runs the checks the READINESS_CHECKS setting lists (the database's is here; the image store's is
`images.storage.is_available`), each a function answering True when its dependency answers, and tells the
READINESS_REPORTS (the task queue's depth and oldest age, `api.task_queue`), which inform and gate nothing.
`/metrics` adds the queue's gauges (`imagery_queue_depth`, `imagery_queue_oldest_age_seconds`…).

`/metrics` answers only sockets in METRICS_ALLOWED_NETWORKS and `/readyz` only those in
READINESS_ALLOWED_NETWORKS, and neither answers a request a proxy relayed: to everyone else each is the 404 of
an unknown path, so it does not advertise itself. `/readyz` costs a database query and a storage request of
up to 2 s, so it is for the deployment's own load balancer or orchestrator, never the internet.

Every probe answer gets the security headers every other response has (SecurityMiddleware's and
XFrameOptionsMiddleware's), although it leaves the middleware chain before those run.
"""

import functools
import logging
from collections.abc import Callable
from ipaddress import IPv6Address, ip_address
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import CollectorRegistry, generate_latest

from api.errors import page_not_found
from api.problems import allow_methods
from api.task_queue import QueueCollector

logger = logging.getLogger(__name__)


# Headers a proxy adds for the client it relays. Their presence can only refuse, never admit: a proxy inside
# an allowed network (compose's nginx) relays the public, whose requests must not pass as the proxy's own.
RELAY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def from_allowed_network(request: HttpRequest, setting: str) -> bool:
    """True when the socket's peer is in the networks the setting names and no proxy relayed the request."""
    if any(header in request.META for header in RELAY_HEADERS):
        return False
    try:
        address = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:  # no address (a Unix socket) or a malformed one
        return False
    # A dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d; match them against IPv4 networks.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in getattr(settings, setting))


def only_from_allowed_networks(
    setting: str,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Only sockets in the networks `setting` names get the view; everyone else gets the 404 of an unknown
    path, before any other answer (a 405 would give it away)."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not from_allowed_network(request, setting):
                return page_not_found(request, Http404())
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@allow_methods("GET", "HEAD")
def healthz(request: HttpRequest) -> JsonResponse:
    """Answers while the process lives; checks nothing else."""
    return JsonResponse({"status": "ok"})


@only_from_allowed_networks("READINESS_ALLOWED_NETWORKS")
@allow_methods("GET", "HEAD")
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when every check in READINESS_CHECKS passes (the database, the storage…); 503 otherwise. The
    READINESS_REPORTS (the task queue's depth…) are told too, and never change the status."""
    checks = {name: _passes(name, check) for name, check in settings.READINESS_CHECKS.items()}
    ready = all(checks.values())
    body: dict[str, Any] = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: "ok" if ok else "unavailable" for name, ok in checks.items()},
    }
    reports = {name: _report(name, report) for name, report in settings.READINESS_REPORTS.items()}
    if reports:
        body["reports"] = reports
    return JsonResponse(body, status=200 if ready else 503)


def _report(name: str, report: str) -> Any:
    # A report that fails says so; a readiness probe must not answer 500 for what only informs.
    try:
        return import_string(report)()
    except Exception:
        logger.exception("readiness report %s failed", name)
        return {"status": "unavailable"}


def _passes(name: str, check: str) -> bool:
    # Looked up on every probe, so a check replaced in a test (or settings overridden) is the one run.
    try:
        return bool(import_string(check)())
    except Exception:
        logger.exception("readiness check %s failed", name)
        return False


def database_ok() -> bool:
    """The default database answers a query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.exception("database readiness check failed")
        return False
    return True


# Prometheus text format, from django-prometheus. Under gunicorn with PROMETHEUS_MULTIPROC_DIR set it adds up
# every worker's numbers; without it, each scrape sees the one worker that answered.
# The task queue's gauges, read at scrape time from the queue itself (the same for every worker, so not
# through the multiprocess files): a registry of their own, appended to django-prometheus's page.
_queue_registry = CollectorRegistry(auto_describe=False)
_queue_registry.register(QueueCollector())


def _metrics(request: HttpRequest) -> HttpResponse:
    response = ExportToDjangoView(request)
    response.content = response.content + generate_latest(_queue_registry)
    return response


metrics = only_from_allowed_networks("METRICS_ALLOWED_NETWORKS")(allow_methods("GET", "HEAD")(_metrics))

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
        # A probe's answer skips the middleware below this one, and with it the headers every other response
        # gets (nosniff, Referrer-Policy, Cross-Origin-Opener-Policy, HSTS, X-Frame-Options): add them from
        # the same middleware. Only their response side runs: their request side (the HTTPS redirect, which
        # reads the Host header) is what probes must skip.
        self.response_headers = (SecurityMiddleware(get_response), XFrameOptionsMiddleware(get_response))

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        probe = PROBES.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        response = probe(request)
        for middleware in self.response_headers:
            response = middleware.process_response(request, response)
        return response
