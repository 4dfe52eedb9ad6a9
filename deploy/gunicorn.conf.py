"""Gunicorn settings, read from the environment. Used by `make run` and the container image."""

import multiprocessing
import os

from api.slow_clients import BufferingWorker
from api.uploads import FORM_OVERHEAD_BYTES
from config.env import env
from config.logs import gunicorn_logconfig

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One process per core, plus one to cover a worker blocked on I/O. Each runs GUNICORN_THREADS threads
# (gthread): a thread waiting on the database or storage leaves the core to the others, and, unlike
# sync workers, connections are kept alive between requests (a new TCP connection per request is a
# measurable part of a 2 ms read). Image work releases the GIL in Pillow's C code for the most part.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# gthread, except that a request reaches a thread only once its head and body have arrived, and closing
# connections are drained by the event loop: slow clients hold no thread (api/slow_clients.py). Bodies
# declared longer than an upload may be are not read (the app refuses them by their declared length).
worker_class = "api.slow_clients.BufferingWorker"
# The upload limit (settings.py's default) and room for the form, as the app's upload handler allows.
BufferingWorker.body_max_bytes = (
    env.int("IMAGE_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024) + FORM_OVERHEAD_BYTES
)
# Connections one client address may hold in a worker. Behind proxies (NUM_PROXIES > 0) every connection
# comes from a proxy, which bounds its own clients: no bound by default.
BufferingWorker.connections_per_address = env.int(
    "GUNICORN_CONNECTIONS_PER_ADDRESS", default=0 if env.int("NUM_PROXIES", default=0) else 64
)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then so a fragmented heap after large decodes is returned to the OS. Not too
# often: a new worker imports the app again (0.7 s of CPU on our 2-core machines), which at 1000
# requests cost 0.7 ms per request, a quarter of a detail read.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = 100
# gunicorn's own lines in the app's format (JSON in production); the app logs each request itself, with its
# request id, so gunicorn's access log stays off (config/logs.py).
logconfig_dict = gunicorn_logconfig()
accesslog = None
errorlog = "-"
# gunicorn 27's control socket defaults to one shared $HOME/.gunicorn path: servers started side by side
# (tests, benchmarks, make run) would take over and delete each other's. Nothing here uses it.
control_socket_disable = True


def child_exit(server: object, worker: object) -> None:
    """Prometheus multiprocess mode (PROMETHEUS_MULTIPROC_DIR): drop a gone worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
