"""Where rate limits count: `take(key, amount=..., limit=..., window=...)` takes `amount` from what `key` may
spend in any `window` seconds, or refuses and says when it could.

Two stores, chosen by RATE_LIMIT_STORE, both atomic: two takes of the last allowance never both succeed,
however many processes or servers race for it.
- `sqlite` (the default without Redis): a small SQLite file (RATE_LIMIT_DATABASE) that every process of one
  server shares. Each take is one `BEGIN IMMEDIATE` transaction. A per-process count (Django's LocMemCache)
  multiplied every limit by the number of gunicorn workers; Django's FileBasedCache and DatabaseCache have no
  atomic increment.
- `redis` (REDIS_URL set): the Redis that several servers share. Each take is one Lua script, which Redis
  runs with nothing else in between. The Django cache's get-then-set (as DRF's own throttles count) let N
  replicas racing for the last allowance all pass.

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

import redis
from django.conf import settings


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
    if settings.RATE_LIMIT_STORE == "redis":
        return _redis_store(settings.REDIS_URL, settings.REDIS_OPTIONS, REDIS_KEY_PREFIX)
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


def _answer(spent: list[tuple[float, int]], *, amount: int, limit: int, window: float, now: float) -> Taken:
    """What a take of `amount` did, given what the window counted before it (`spent`, oldest first)."""
    used = sum(n for _, n in spent)
    if used + amount <= limit:
        return Taken(allowed=True, used=used + amount)
    return Taken(
        allowed=False,
        used=used,
        retry_after=_refused(spent, amount=amount, limit=limit, window=window, now=now),
    )


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


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL once. Switching needs the file to itself, and SQLite answers "database is
    locked" at once (no busy wait) while another process holds it: processes that open a new store
    together (a server's workers starting) retry for as long as a take would wait. A file already in WAL
    is only read."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


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
            _use_wal(connection)
            connection.execute("PRAGMA synchronous=OFF")
            with self._schema_lock:
                if not self._schema_ready:
                    connection.executescript(_SCHEMA)
                    self._schema_ready = True
            self._local.connection = connection
        return connection

    def take(self, key: str, *, amount: int, limit: int, window: float, now: float) -> Taken:
        db = self._connection()
        if not amount:
            # A look writes nothing, so it takes no write lock (every keyed request looks at its address's
            # failed authentications): one read, of what the window still counts.
            spent = db.execute(
                "SELECT until, amount FROM spent WHERE key = ? AND until > ? ORDER BY until",
                (key, now - window),
            ).fetchall()
            return _answer(spent, amount=0, limit=limit, window=window, now=now)
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
            if used + amount <= limit:
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
        return _answer(spent, amount=amount, limit=limit, window=window, now=now)

    def clear(self) -> None:
        self._connection().execute("DELETE FROM spent")


_sqlite_stores: dict[str, SQLiteStore] = {}
_sqlite_stores_lock = threading.Lock()


def _sqlite_store(path: str) -> SQLiteStore:
    with _sqlite_stores_lock:
        if path not in _sqlite_stores:
            _sqlite_stores[path] = SQLiteStore(path)
        return _sqlite_stores[path]


# --- Redis --------------------------------------------------------------------------------------

# Every key this store writes starts with this (the tests give each run its own).
REDIS_KEY_PREFIX = "imagery:rate:"

# One take, atomically: Redis runs a script with no other command in between. A key's spendings are a hash of
# slot end -> amount. Slot ends travel as the strings Python made of them, so a slot's field is the same on
# every take and every server, and the comparisons below see the very floats Python computed.
# KEYS[1]: the key. ARGV: amount, limit, the slot now falls in, the cutoff (slots ending at or before it are
# forgotten), the key's time to live in ms.
# Returns {allowed (1/0), used (this take included when it spent)}, then, when refused, each slot still
# counted as field, amount, ... (for the wait).
_TAKE_SCRIPT = """
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cutoff = tonumber(ARGV[4])
local spent = redis.call('HGETALL', KEYS[1])
local used = 0
local kept = {}
for i = 1, #spent, 2 do
  if tonumber(spent[i]) <= cutoff then
    redis.call('HDEL', KEYS[1], spent[i])
  else
    used = used + tonumber(spent[i + 1])
    kept[#kept + 1] = spent[i]
    kept[#kept + 1] = spent[i + 1]
  end
end
if used + amount > limit then
  local refused = {0, used}
  for i = 1, #kept do refused[#refused + 1] = kept[i] end
  return refused
end
if amount ~= 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return {1, used + amount}
"""


class RedisStore:
    """The counts in Redis, one hash per key, each take one script (EVALSHA)."""

    def __init__(self, client: redis.Redis, *, prefix: str = REDIS_KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        # register_script runs EVALSHA, and loads the script first where Redis does not know it yet.
        self._take = client.register_script(_TAKE_SCRIPT)

    def take(self, key: str, *, amount: int, limit: int, window: float, now: float) -> Taken:
        until = _slot_end(now, window)
        # A key lives two windows after its last spending: longer than any slot in it counts.
        ttl_ms = math.ceil(2 * window * 1000)
        reply = self._take(
            keys=[self.prefix + key], args=[amount, limit, repr(until), repr(now - window), ttl_ms]
        )
        allowed, used = bool(reply[0]), int(reply[1])
        if allowed:
            return Taken(allowed=True, used=used)
        slots = reply[2:]
        spent = sorted((float(slots[i]), int(slots[i + 1])) for i in range(0, len(slots), 2))
        wait = _refused(spent, amount=amount, limit=limit, window=window, now=now)
        return Taken(allowed=False, used=used, retry_after=wait)

    def clear(self) -> None:
        """Forget this store's counts (only its prefix: the Redis may hold other things)."""
        keys = self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000)
        batch: list[bytes] = []
        for name in keys:
            batch.append(name)
            if len(batch) == 1000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


_redis_stores: dict[tuple[str, tuple[tuple[str, float], ...], str], RedisStore] = {}
_redis_stores_lock = threading.Lock()


def _redis_store(url: str, options: dict[str, float], prefix: str) -> RedisStore:
    """One client (one connection pool) per process and Redis, built with REDIS_TIMEOUT's socket options."""
    name = (url, tuple(sorted(options.items())), prefix)
    with _redis_stores_lock:
        if name not in _redis_stores:
            # No retries (from_url's default, said here so it stays): a failure goes to api.throttling's
            # breaker at once, where retries would multiply REDIS_TIMEOUT on a hung Redis.
            client = redis.Redis.from_url(url, retry=None, **options)
            _redis_stores[name] = RedisStore(client, prefix=prefix)
        return _redis_stores[name]
