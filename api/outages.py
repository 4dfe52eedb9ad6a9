"""Long-lived processes (the task worker, the relay) that outlive a database outage.

A worker's loop that meets a database error (PostgreSQL restarted, a failover, the network gone for a
moment) must not end the process: it logs, drops its connections (a broken one is never reused), waits,
and goes on; the wait doubles from `FIRST_SECONDS` to at most `MOST_SECONDS` while the database stays
away, and starts again from the first once it is back. Only database errors are waited out: anything else
is a bug, and ends the process as before. Knows no domain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from django.db import connections
from django.db.utils import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

# What a database that went away raises (psycopg's and sqlite3's errors arrive wrapped as these).
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
FIRST_SECONDS = 1.0
MOST_SECONDS = 30.0

T = TypeVar("T")


def close_connections() -> None:
    """Drop every database connection of this thread: the next query opens a new one."""
    for connection in connections.all(initialized_only=True):
        with suppress(Exception):  # closing a connection the server already dropped may fail too
            connection.close()


class Backoff:
    """The wait after each failure in a row: FIRST_SECONDS, doubling, at most MOST_SECONDS."""

    def __init__(self, *, first: float = FIRST_SECONDS, most: float = MOST_SECONDS) -> None:
        self.first, self.most = first, most
        self.next = first

    def failed(self, name: str, exc: BaseException) -> float:
        """Log the failure, drop the connections, and return how long to wait before trying again."""
        delay = self.next
        self.next = min(self.next * 2, self.most)
        logger.warning("%s: the database failed (%s); trying again in %.0f s", name, exc, delay)
        close_connections()
        return delay

    def reset(self) -> None:
        self.next = self.first


def survive_database_outages(
    run: Callable[[], T],
    *,
    name: str,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `run` until it returns (its result), again after each database error it raises, with backoff.

    For a loop we cannot enter (a library's worker): a run that lasted longer than MOST_SECONDS had a
    working database, so the next outage waits from FIRST_SECONDS again.
    """
    backoff = Backoff()
    while True:
        started = clock()
        try:
            return run()
        except DATABASE_ERRORS as exc:
            if clock() - started > backoff.most:
                backoff.reset()
            (sleep or time.sleep)(backoff.failed(name, exc))
