"""Several task workers share the database queue on PostgreSQL (django-tasks-db claims each task with
SELECT … FOR UPDATE SKIP LOCKED): two `db_worker` processes, N tasks, each task runs exactly once.

Runs on PostgreSQL only (DATABASE_URL=postgres://…, e.g. `make test-postgres`); skipped on SQLite, where
one write lock serialises every claim anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django_tasks_db.models import DBTaskResult

from tests.queue_probe import SIDE_EFFECTS, record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("database_queue")]

ROOT = Path(__file__).resolve().parent.parent
TASKS = 80


@pytest.fixture
def side_effects() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("several workers share the queue on PostgreSQL (DATABASE_URL=postgres://…)")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {SIDE_EFFECTS} (n integer NOT NULL, pid integer NOT NULL)")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SIDE_EFFECTS}")


def worker(tmp_path: Path) -> subprocess.Popen[bytes]:
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TASK_BACKEND": "database",
        "IMAGERY_ENV": "development",
        "DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "manage.py", "db_worker", "--batch", "--no-reload", "--no-startup-delay"]
    command += ["--interval=0", "--queue-name=*", "--verbosity=0"]
    return subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603


@pytest.mark.usefixtures("side_effects")
def test_two_workers_run_each_task_exactly_once(tmp_path: Path) -> None:
    for n in range(TASKS):
        record.enqueue(n=n)
    workers = [worker(tmp_path), worker(tmp_path)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n, count(*) FROM {SIDE_EFFECTS} GROUP BY n ORDER BY n")  # noqa: S608
        runs = dict(cursor.fetchall())
        cursor.execute(f"SELECT count(DISTINCT pid) FROM {SIDE_EFFECTS}")  # noqa: S608
        (processes,) = cursor.fetchone()
    assert runs == dict.fromkeys(range(TASKS), 1)
    assert processes == 2, "both workers took tasks"
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
