"""Waiting for the other side of a race without sleeping: who waits for a lock; polling to a deadline."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def lock_waiters(database: Any) -> int:
    """Sessions of this test database waiting for an advisory lock (PostgreSQL), or threads of this process
    waiting for a `flock` (SQLite; Linux lists waiters in /proc/locks with an arrow)."""
    if database.vendor != "postgresql":
        pid = str(os.getpid())
        lines = Path("/proc/locks").read_text().splitlines()
        return sum(1 for line in lines if "-> FLOCK" in line and line.split()[5] == pid)
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return cursor.fetchone()[0]


def until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Whether `condition` came true within `timeout` seconds (asked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True
