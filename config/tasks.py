"""The task queue, from the environment: `TASK_BACKEND` picks where `django_tasks` tasks wait for a worker.

`settings.py` builds `TASKS`, the apps a backend needs and, for RQ, `RQ_QUEUES` with `tasks_from_env()`;
the tests call it too. Code enqueues through Django's own task API (`django_tasks`, the backport of
`django.tasks`), so it never names a backend:

- `database` (the default): rows in this deployment's database (django-tasks-db), on SQLite and PostgreSQL,
  run by `manage.py db_worker`; on PostgreSQL several workers share the queue (SELECT … FOR UPDATE SKIP
  LOCKED), on SQLite each claim takes the database's write lock. No new service to run.
- `rq`: a Redis list (django-tasks-rq on RQ), for a deployment that already runs Redis; `TASK_REDIS_URL`
  (default `REDIS_URL`) names it, `manage.py rqworker --with-scheduler --job-class
  django_tasks_rq.backend.Job default` runs the tasks (the scheduler runs the deferred ones: retries).
- `immediate`: each task runs in the process that enqueues it, at once (tests; a deployment that wants no
  worker and accepts the wait). It cannot defer: a retry runs at once.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from config.caches import redis_from_env
from config.env import env

# The queues tasks may name; a worker runs them all (`db_worker --queue-name '*'`, `rqworker <each>`).
QUEUE_NAMES = ("default",)

BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "rq": "django_tasks_rq.RQBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
}


@dataclass(frozen=True)
class TaskSettings:
    """What settings.py sets from `TASK_BACKEND`: `TASKS`, the apps to install, `RQ_QUEUES`."""

    backend: str
    tasks: dict[str, Any]
    apps: list[str]
    rq_queues: dict[str, Any] = field(default_factory=dict)
    # The database worker's id (`TASK_WORKER_ID`, default this host's name): stable across its restarts, so a
    # restarted worker makes ready again what it had claimed when it was killed (api.task_queue).
    worker_id: str = ""


def _bounded(url: str) -> str:
    """`url` with REDIS_TIMEOUT as its socket timeouts (unless it names its own), in the URL's query since
    django-rq passes nothing else to redis-py for a URL. Every upload enqueues after its commit: a Redis
    that hangs must cost it REDIS_TIMEOUT, as it does the cache, not redis-py's default 5 s per call. An
    RQ worker raises the read timeout above its own blocking dequeue's by itself."""
    _, options = redis_from_env()
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in options.items():
        query.setdefault(name, str(value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def tasks_from_env() -> TaskSettings:
    backend = env.str("TASK_BACKEND", default="database")
    if backend not in BACKENDS:
        raise ImproperlyConfigured(f"TASK_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}.")
    default: dict[str, Any] = {"BACKEND": BACKENDS[backend], "QUEUES": list(QUEUE_NAMES)}
    # django_tasks_db is installed whatever the backend: its table exists (migrations run once), so switching
    # backends needs no migration and the health check reads a table that is there.
    apps = ["django_tasks", "django_tasks_db"]
    rq_queues: dict[str, Any] = {}
    if backend == "rq":
        url = env.str("TASK_REDIS_URL", default="") or env.str("REDIS_URL", default="")
        if not url:
            raise ImproperlyConfigured(
                "TASK_BACKEND=rq needs TASK_REDIS_URL (or REDIS_URL), e.g. redis://redis:6379/1."
            )
        # A task's own bound (seconds): RQ kills the work horse past it, and the task counts as failed.
        timeout = env.int("TASK_TIMEOUT", default=300)
        url = _bounded(url)
        rq_queues = {name: {"URL": url, "DEFAULT_TIMEOUT": timeout} for name in QUEUE_NAMES}
        apps.append("django_rq")
    worker_id = (env.str("TASK_WORKER_ID", default="") or socket.gethostname())[:64]
    return TaskSettings(
        backend=backend, tasks={"default": default}, apps=apps, rq_queues=rq_queues, worker_id=worker_id
    )
