"""The task queue in tests: tasks wait in the database, and its worker runs here until nothing is ready.

The suite runs tasks where they are enqueued (TASK_BACKEND=immediate, pyproject.toml); a test of the queue
itself uses the `database_queue` fixture (conftest.py) and runs the worker with `run_worker()`: Django's
`db_worker --batch` in this process, on this test's database, after the enqueuing transaction committed
(tests using it are `transaction=True`, so commits and `on_commit` happen as they do in a server).
"""

from __future__ import annotations

import io
import signal

from django.core.management import call_command
from django_tasks_db.models import DBTaskResult

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def run_worker(*command: str) -> str:
    """Run every task that is ready now (`db_worker --batch`, or `command`), then return its output."""
    command = command or (
        "db_worker",
        "--batch",
        "--no-reload",
        "--no-startup-delay",
        "--interval=0",
        "--queue-name=*",
    )
    # db_worker installs its own handlers for a graceful stop; pytest's are put back after it.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    out = io.StringIO()
    try:
        call_command(*command, stdout=out, verbosity=0)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return out.getvalue()


def waiting() -> list[DBTaskResult]:
    """The tasks not run yet (ready or deferred), oldest first."""
    return list(DBTaskResult.objects.filter(status="READY").order_by("enqueued_at"))


def results(task_name: str) -> list[DBTaskResult]:
    """Every row of one task (by its function's name), oldest first."""
    return [r for r in DBTaskResult.objects.order_by("enqueued_at") if r.task_path.endswith(f".{task_name}")]
