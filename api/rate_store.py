"""Where rate limits count: `take(key, amount=..., limit=..., window=...)` takes `amount` from what `key` may
spend in any `window` seconds, or refuses and says when it could.

Two stores, chosen by RATE_LIMIT_STORE:
- `sqlite` (the default without Redis): a small SQLite file (RATE_LIMIT_DATABASE) that every process of one
  server shares. Each take is one `BEGIN IMMEDIATE` transaction, so two processes never both spend the last
  of an allowance. A per-process count (Django's LocMemCache) multiplied every limit by the number of
  gunicorn workers; Django's FileBasedCache and DatabaseCache have no atomic increment.
- `cache` (REDIS_URL set): the Django cache, which several servers share. Like DRF's own throttles it reads,
  then writes, the key's history: shared, not atomic.

Windows slide, as DRF's did: what was spent in the last `window` seconds counts. Spendings are counted in
SLOTS_PER_WINDOW slots per window (so a key has a bounded number of rows, and a take costs the same at the
limit of 6000 reads a minute as at 3 uploads an hour), each forgotten a window after its slot's end: never
sooner than an exact count would forget it. Amounts are integers, so one store counts requests (amount 1)
and costs alike (render budgets). Time is the wall clock (`time.time`), the one clock processes share.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Taken:
    """What a take did: `allowed`, what the key has spent in the window (this take included when allowed),
    and when it was refused, the seconds until `amount` would fit again."""

    allowed: bool
    used: int
    retry_after: float = 0.0


class Store(Protocol):
    def take(self, key: str, *, amount: int, limit: int, window: float, now: float) -> Taken: ...

    def clear(self) -> None: ...


# The one clock every process shares; tests set it rather than wait out a window.
clock: Callable[[], float] = time.time


def take(key: str, *, amount: int = 1, limit: int, window: float) -> Taken:
    """Spend `amount` of `key`'s `limit` per `window` seconds in the configured store, or refuse.
    `amount=0` only looks: refused when what is spent is already over `limit`.

    Raises whatever the store raises when it cannot answer (the caller decides: api.throttling lets the
    request through and leaves the store alone for a while).
    """
    return store().take(key, amount=amount, limit=limit, window=window, now=clock())


def add(key: str, *, amount: int, window: float) -> None:
    """Add `amount` to what `key` has spent in its `window`, whatever its limit: the correction of an
    estimate once the real cost is known (negative: a refund)."""
    store().take(key, amount=amount, limit=_NO_LIMIT, window=window, now=clock())


# A limit no spending reaches: `add` spends without asking.
_NO_LIMIT = 2**62


def clear() -> None:
    """Forget every count (the tests start each from nothing)."""
    store().clear()


def store() -> Store:
    if settings.RATE_LIMIT_STORE == "cache":
        return _cache_store
    return _sqlite_store(str(settings.RATE_LIMIT_DATABASE))


# A window is counted in this many slots: a key has at most this many rows, however many requests it sent.
SLOTS_PER_WINDOW = 60


def _slot_end(now: float, window: float) -> float:
    """The end of the slot `now` falls in. A spending counts as made at its slot's end, so it is forgotten a
    window after that, never sooner: a limit is never exceeded, and a refusal lasts at most one slot
    (window / SLOTS_PER_WINDOW) longer than an exact count would make it."""
    width = window / SLOTS_PER_WINDOW
    return (math.floor(now / width) + 1) * width


def _refused(spent: list[tuple[float, int]], *, amount: int, limit: int, window: float, now: float) -> float:
    """Seconds until the oldest slots have expired enough for `amount` to fit (`spent`: (slot end, amount),
    oldest first)."""
    if amount > limit:
        return window
    over = sum(n for _, n in spent) + amount - limit
    for until, n in spent:
        over -= n
        if over <= 0:
            return max(until + window - now, 0.0)
    return window


# --- SQLite -------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spent (key TEXT NOT NULL, until REAL NOT NULL, amount INTEGER NOT NULL,
                                  expires REAL NOT NULL, PRIMARY KEY (key, until)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spent_expires ON spent (expires);
"""
# How long a take waits for another process's transaction (each lasts well under a millisecond).
_BUSY_TIMEOUT_SECONDS = 2.0
# About one take in this many also removes every key's expired rows (keys that never come back).
_SWEEP_EVERY = 1000


class SQLiteStore:
    """The counts in one SQLite file, one connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; each take opens its own BEGIN IMMEDIATE.
            connection = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            # WAL: readers never wait; synchronous=OFF: a count lost to a power cut costs nothing.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            with self._schema_lock:
                if not self._schema_ready:
                    connection.executescript(_SCHEMA)
                    self._schema_ready = True
            self._local.connection = connection
        return connection

    def take(self, key: str, *, amount: int, limit: int, window: float, now: float) -> Taken:
        db = self._connection()
        # IMMEDIATE takes the write lock first: what is read below cannot change before the write.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM spent WHERE key = ? AND until <= ?", (key, now - window))
            if random.randrange(_SWEEP_EVERY) == 0:  # noqa: S311 - not a secret
                db.execute("DELETE FROM spent WHERE expires <= ?", (now,))
            spent = db.execute(
                "SELECT until, amount FROM spent WHERE key = ? ORDER BY until", (key,)
            ).fetchall()
            used = sum(n for _, n in spent)
            if amount and used + amount <= limit:
                until = _slot_end(now, window)
                db.execute(
                    "INSERT INTO spent (key, until, amount, expires) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key, until) DO UPDATE SET amount = amount + excluded.amount",
                    (key, until, amount, until + window),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if used + amount <= limit:
            return Taken(allowed=True, used=used + amount)
        wait = _refused(spent, amount=amount, limit=limit, window=window, now=now)
        return Taken(allowed=False, used=used, retry_after=wait)

    def clear(self) -> None:
        self._connection().execute("DELETE FROM spent")


_sqlite_stores: dict[str, SQLiteStore] = {}
_sqlite_stores_lock = threading.Lock()


def _sqlite_store(path: str) -> SQLiteStore:
    with _sqlite_stores_lock:
        if path not in _sqlite_stores:
            _sqlite_stores[path] = SQLiteStore(path)
        return _sqlite_stores[path]


# --- The Django cache (Redis) -------------------------------------------------------------------


class CacheStore:
    """The key's slots, oldest first, as one cache value (read, then written: not atomic)."""

    def take(self, key: str, *, amount: int, limit: int, window: float, now: float) -> Taken:
        cache_key = f"rate:{key}"
        spent = [(until, n) for until, n in cache.get(cache_key, []) if until > now - window]
        used = sum(n for _, n in spent)
        if used + amount > limit:
            wait = _refused(spent, amount=amount, limit=limit, window=window, now=now)
            return Taken(allowed=False, used=used, retry_after=wait)
        if not amount:  # a look, not a spending
            return Taken(allowed=True, used=used)
        until = _slot_end(now, window)
        if spent and spent[-1][0] == until:
            spent[-1] = (until, spent[-1][1] + amount)
        else:
            spent.append((until, amount))
        cache.set(cache_key, spent, math.ceil(2 * window))
        return Taken(allowed=True, used=used + amount)

    def clear(self) -> None:
        cache.clear()


_cache_store = CacheStore()
