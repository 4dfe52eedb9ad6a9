"""A task for tests of the queue itself: it records that it ran (which number, in which process) in a table
of side effects, so a test can count how often each task ran (tests/test_tasks_postgres.py)."""

from __future__ import annotations

import os
import time

from django.db import connection
from django_tasks import task

SIDE_EFFECTS = "queue_side_effects"


@task()
def record(*, n: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {SIDE_EFFECTS} (n, pid) VALUES (%s, %s)", [n, os.getpid()])  # noqa: S608
    # Long enough that both workers are busy at once.
    time.sleep(0.02)
    return n
