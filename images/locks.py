"""The per-name lock: saving a row for a stored file and deleting that file never interleave.

Content-addressed files are shared by identical uploads, so an upload that saves a row for a name and a
cleanup or delete that removes the file of that name must take turns: under the lock, an upload checks
that the file is there (and stores it again if not) before it saves its row, and a delete checks that no
row uses the file before it removes it.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import DatabaseError, OperationalError, connection

from images.exceptions import FileBusy

logger = logging.getLogger(__name__)


@contextmanager
def file_name_lock(name: str) -> Iterator[None]:
    """Serialize, per stored name, the uploads that save a row for it and the cleanups that delete it.

    Held outside any database transaction, so storage calls made under it never hold the database's write
    lock (on SQLite that lock is global, and an S3 request that retries can take many seconds). Names are
    hashed to lock keys; unrelated names sharing a key merely wait for each other. PostgreSQL: a
    session-level advisory lock, waited for at most DATABASE_STATEMENT_TIMEOUT (the server's bound on
    every statement). SQLite: `flock` on one of a fixed set of files next to the database, which every
    process using that database shares, waited for at most as long as SQLite waits for its own write lock
    (the connection's `timeout`). Either way a holder stalled on the store costs a waiter a bounded wait,
    then FileBusy (503, Retry-After), never a thread held for good.
    """
    digest = hashlib.sha256(name.encode()).digest()
    if connection.vendor == "postgresql":
        key = int.from_bytes(digest[:8], "big", signed=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:  # the statement timeout
                raise FileBusy(_BUSY) from exc
            raise
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # The session ends with the connection, and its locks with it.
                logger.warning("could not release the lock for %s; closing the connection", name)
                connection.close()
        return
    path = _lock_folder(connection.settings_dict["NAME"]) / f"{digest[0]:02x}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock_within(fd, float(connection.settings_dict["OPTIONS"].get("timeout", 5)), name)
        yield
    finally:
        os.close(fd)  # releases the lock


# PostgreSQL's error code for a statement its timeout cancelled.
QUERY_CANCELED = "57014"
_BUSY = "Another request is working on the same file and has not finished; try again shortly."
# How often a waiter asks for a held `flock` again (flock has no timeout of its own): soon at first, then
# less and less often, up to this.
FLOCK_POLL_SECONDS = 0.005
FLOCK_POLL_MAX_SECONDS = 0.05
# Threads of this process waiting for a `flock` now (the kernel lists no waiter for a lock asked without
# blocking): `flock_waiters()`.
_flock_waiting = 0
_flock_waiting_lock = threading.Lock()


def flock_waiters() -> int:
    """Threads of this process waiting for a file's lock on SQLite now."""
    return _flock_waiting


def _flock_within(fd: int, timeout: float, name: str) -> None:
    """Take an exclusive `flock` on `fd` (each open() is its own lock: threads exclude each other too),
    asking again after FLOCK_POLL_SECONDS, doubled each time up to FLOCK_POLL_MAX_SECONDS; FileBusy after
    `timeout` seconds."""
    global _flock_waiting
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    deadline = time.monotonic() + timeout
    with _flock_waiting_lock:
        _flock_waiting += 1
    pause = FLOCK_POLL_SECONDS
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning("the lock for %s stayed taken for %g s", name, timeout)
                raise FileBusy(_BUSY)
            time.sleep(min(pause, left))
            pause = min(pause * 2, FLOCK_POLL_MAX_SECONDS)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
    finally:
        with _flock_waiting_lock:
            _flock_waiting -= 1


@functools.cache
def _lock_folder(database: str) -> Path:
    """`locks/` next to the SQLite file; a folder of this process's own for an in-memory database."""
    if connection.vendor == "sqlite" and not connection.creation.is_in_memory_db(database):
        folder = Path(database).parent / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="imagery-locks-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
