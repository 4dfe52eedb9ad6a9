"""`manage.py task_worker [--batch]`: run the tasks of the queue TASK_BACKEND names, whichever it is.

One command for `make run` (deploy/run-local), the compose stack's `worker` service and an operator:
- database: django-tasks-db's `db_worker` on every queue (several may run, on PostgreSQL each task is claimed
  by one: SELECT … FOR UPDATE SKIP LOCKED), under a stable worker id (`TASK_WORKER_ID`, default this host's
  name): as it starts, the tasks a previous run of that id left claimed (it was killed mid-task) are made
  ready again (`api.task_queue.reclaim_tasks_of`). Two workers on one host need ids of their own;
- rq: django-rq's `rqworker` on our queues with RQ's scheduler (deferred tasks: retries) and the job class
  that runs Django tasks;
- immediate: tasks run where they are enqueued; there is nothing to run, and it says so and exits 0.

`--batch` runs what is ready, then exits (RQ's burst mode).

A database outage does not end the database worker: it is started again (its claimed tasks made ready
again) after a wait that grows from 1 s to 30 s while the database stays away (api.outages). And beside
the tasks, in a thread of its own, the worker runs `TASK_WORKER_SWEEPS` every `TASK_WORKER_SWEEP_SECONDS`
(the webhooks' relay: one process to run, not two; api.worker_sweeps).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from api.outages import survive_database_outages
from api.task_queue import reclaim_tasks_of
from api.worker_sweeps import start_sweeps


class Command(BaseCommand):
    help = "Run the task worker of the configured TASK_BACKEND (database or rq); immediate needs none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", action="store_true", help="Run the tasks ready now, then exit.")

    def handle(self, *args: Any, batch: bool, **options: Any) -> None:
        backend = settings.TASK_BACKEND
        if backend in ("database", "rq") and not batch:
            start_sweeps(settings.TASK_WORKER_SWEEPS, every=settings.TASK_WORKER_SWEEP_SECONDS)
        if backend == "database":
            extra = ["--batch"] if batch else []
            worker_id = settings.TASK_WORKER_ID

            def work() -> None:
                # After an outage too: what this worker had claimed when the database went is ready again.
                reclaim_tasks_of(worker_id)
                # --no-reload: a worker reloaded mid-task would leave it claimed.
                call_command("db_worker", "--queue-name=*", "--no-reload", f"--worker-id={worker_id}", *extra)

            survive_database_outages(work, name="task worker")
        elif backend == "rq":
            extra = ["--burst"] if batch else []
            call_command(
                "rqworker",
                *settings.RQ_QUEUES,
                "--with-scheduler",
                "--job-class=django_tasks_rq.backend.Job",
                *extra,
            )
        else:
            self.stdout.write("TASK_BACKEND=immediate: tasks run where they are enqueued; no worker to run.")
