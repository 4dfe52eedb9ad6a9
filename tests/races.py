"""Waiting for the other side of a race without sleeping: who waits for a lock; polling to a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from images import locks


def lock_waiters(database: Any) -> int:
    """Sessions of this test database waiting for an advisory lock (PostgreSQL), or threads of this process
    waiting for a file's `flock` (SQLite; asked for without blocking, so the kernel lists no waiter)."""
    if database.vendor != "postgresql":
        return locks.flock_waiters()
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
