"""Periodic sweeps inside the task worker: one process runs the queue's tasks and the sweeps that feed it.

`settings.TASK_WORKER_SWEEPS` names them (label: a dotted path to a function taking no argument, e.g. the
webhooks' relay, `events.deliveries.relay`), so that api imports no app; `manage.py task_worker` runs them
every `TASK_WORKER_SWEEP_SECONDS` in a daemon thread of its own (0: not at all). A sweep that fails does
not stop the others or the thread: a database error is waited out with backoff (api.outages), anything
else is logged and tried again at the next turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from django.db import close_old_connections
from django.utils.module_loading import import_string

from api.outages import DATABASE_ERRORS, Backoff

logger = logging.getLogger(__name__)


def run_sweeps(
    sweeps: Mapping[str, Callable[[], object]],
    *,
    every: float,
    stop: threading.Event,
) -> None:
    """Run each sweep, then wait `every` seconds (longer while the database is away), until `stop` is set."""
    backoff = Backoff()
    while not stop.is_set():
        wait = every
        for label, sweep in sweeps.items():
            try:
                sweep()
            except DATABASE_ERRORS as exc:
                wait = max(wait, backoff.failed(f"sweep {label!r}", exc))
                break
            except Exception:
                logger.exception("sweep %r failed; it runs again in %.0f s", label, every)
        else:
            backoff.reset()
        # A long-lived thread: a connection the database dropped, or past CONN_MAX_AGE, is replaced.
        close_old_connections()
        stop.wait(wait)


def start_sweeps(paths: Mapping[str, str], *, every: float) -> threading.Thread | None:
    """Start `run_sweeps` of the functions `paths` names in a daemon thread (it ends with the process);
    None when there is nothing to run."""
    if every <= 0 or not paths:
        return None
    sweeps = {label: import_string(path) for label, path in paths.items()}
    thread = threading.Thread(
        target=run_sweeps,
        kwargs={"sweeps": sweeps, "every": every, "stop": threading.Event()},
        name="worker-sweeps",
        daemon=True,
    )
    thread.start()
    logger.info("worker sweeps every %g s: %s", every, ", ".join(sweeps))
    return thread
