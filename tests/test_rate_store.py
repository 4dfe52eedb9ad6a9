"""api.rate_store: what a key may spend in a sliding window, in each store (SQLite file, Redis), and that
racing takes never both spend the last of an allowance."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from api import rate_store
from api.rate_store import RedisStore, SQLiteStore, Store

STORES = ("sqlite", "redis")


def new_store(kind: str, where: str, prefix: str) -> Store:
    """A store as a process builds one: on the SQLite file `where`, or the Redis at `where` under `prefix`."""
    if kind == "sqlite":
        return SQLiteStore(where)
    return RedisStore(redis.Redis.from_url(where, socket_connect_timeout=2, socket_timeout=2), prefix=prefix)


@pytest.fixture(params=STORES)
def where(request, tmp_path) -> tuple[str, str, str]:
    """(kind, the SQLite file or the Redis URL, a key prefix of this test's own)."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "counts.sqlite3"), ""
    return "redis", request.getfixturevalue("redis_url"), f"imagery-test:{uuid.uuid4().hex}:"


@pytest.fixture
def store(where) -> Iterator[Store]:
    store = new_store(*where)
    yield store
    store.clear()


def test_a_key_spends_up_to_its_limit_then_waits_for_the_oldest_to_expire(store):
    # A minute counts in slots of a second; a request counts as made at its slot's end.
    for second in range(3):
        assert store.take("k", amount=1, limit=3, window=60, now=1000.5 + second).allowed
    refused = store.take("k", amount=1, limit=3, window=60, now=1010)
    assert (refused.allowed, refused.used, refused.retry_after) == (False, 3, 51)
    # Never forgotten sooner than a minute after it was made; then the window slides on.
    assert not store.take("k", amount=1, limit=3, window=60, now=1060.5).allowed
    assert store.take("k", amount=1, limit=3, window=60, now=1061).allowed
    assert not store.take("k", amount=1, limit=3, window=60, now=1061.5).allowed


def test_any_minute_holds_at_most_the_limit(store):
    granted = [
        t / 4 for t in range(0, 4 * 300) if store.take("k", amount=1, limit=5, window=60, now=t / 4).allowed
    ]
    assert max(sum(1 for t in granted if start <= t < start + 60) for start in granted) == 5
    assert len(granted) >= 20  # and the window does slide


def test_amounts_are_costs(store):
    assert store.take("k", amount=70, limit=100, window=60, now=0).used == 70
    assert store.take("k", amount=20, limit=100, window=60, now=1).used == 90
    refused = store.take("k", amount=20, limit=100, window=60, now=2)
    assert (refused.allowed, refused.retry_after) == (False, 59)  # once the 70 are forgotten
    assert not store.take("k", amount=101, limit=100, window=60, now=2).allowed
    assert store.take("k", amount=10, limit=100, window=60, now=2).used == 100


def test_a_correction_adds_or_refunds_whatever_the_limit(store):
    # A render is charged its estimate, then corrected to its measure (api/throttling.py): more, or less.
    assert store.take("k", amount=80, limit=100, window=60, now=0).used == 80
    assert not store.take("k", amount=30, limit=100, window=60, now=1).allowed
    store.take("k", amount=-30, limit=rate_store._NO_LIMIT, window=60, now=1)  # the render cost less
    taken = store.take("k", amount=30, limit=100, window=60, now=2)
    assert (taken.allowed, taken.used) == (True, 80)
    store.take("k", amount=50, limit=rate_store._NO_LIMIT, window=60, now=3)  # this one cost more
    assert store.take("k", amount=0, limit=100, window=60, now=3).used == 130
    assert not store.take("k", amount=1, limit=100, window=60, now=3).allowed


def test_a_key_at_a_high_rate_keeps_one_row_per_slot(tmp_path):
    store = SQLiteStore(str(tmp_path / "counts.sqlite3"))
    for n in range(6000):
        assert store.take("k", amount=1, limit=6000, window=60, now=n / 100).allowed
    assert not store.take("k", amount=1, limit=6000, window=60, now=59.99).allowed
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM spent").fetchone() == (60,)


def test_keys_count_apart(store):
    assert store.take("a", amount=1, limit=1, window=60, now=0).allowed
    assert store.take("b", amount=1, limit=1, window=60, now=0).allowed
    assert not store.take("a", amount=1, limit=1, window=60, now=1).allowed


def test_clear_forgets_every_count(store):
    assert store.take("a", amount=1, limit=1, window=60, now=0).allowed
    store.clear()
    assert store.take("a", amount=1, limit=1, window=60, now=1).allowed


def test_the_sqlite_file_is_shared_by_every_store_on_it(tmp_path):
    # Two stores on one file stand for two processes of one server.
    path = str(tmp_path / "counts.sqlite3")
    first, second = SQLiteStore(path), SQLiteStore(path)
    assert first.take("k", amount=1, limit=2, window=60, now=0).allowed
    assert second.take("k", amount=1, limit=2, window=60, now=1).used == 2
    assert not first.take("k", amount=1, limit=2, window=60, now=2).allowed


def test_the_default_store_without_redis_is_the_sqlite_file(settings, tmp_path):
    settings.RATE_LIMIT_STORE = "sqlite"
    settings.RATE_LIMIT_DATABASE = tmp_path / "limits.sqlite3"
    assert rate_store.take("k", limit=1, window=60).allowed
    assert (tmp_path / "limits.sqlite3").exists()
    assert not rate_store.take("k", limit=1, window=60).allowed


# --- Races: the last allowance is spent once -----------------------------------------------------


@pytest.mark.parametrize("key", [f"k{round}" for round in range(5)])
def test_threads_racing_for_the_last_allowance_spend_it_once(store, key):
    # 20 threads take at once (a barrier releases them together) from a limit of 5, as 20 requests on the
    # threads of several replicas would. The Django cache's read-then-write let 6 to all 20 through in most
    # rounds (hence five of them).
    racers = 20
    barrier = threading.Barrier(racers, timeout=30)

    def take(_: int) -> bool:
        barrier.wait()
        return store.take(key, amount=1, limit=5, window=60, now=1000).allowed

    with ThreadPoolExecutor(racers) as pool:
        allowed = list(pool.map(take, range(racers)))
    assert allowed.count(True) == 5
    assert store.take(key, amount=0, limit=5, window=60, now=1001).used == 5


def _race_in_a_process(where: tuple[str, str, str], threads: int, barrier, results) -> None:
    store = new_store(*where)

    def take(_: int) -> bool:
        barrier.wait()
        return store.take("k", amount=1, limit=5, window=60, now=1000).allowed

    with ThreadPoolExecutor(threads) as pool:
        results.put(sum(pool.map(take, range(threads))))


def test_processes_racing_for_the_last_allowance_spend_it_once(where):
    # Three processes (three replicas, or three workers of one server), five threads each, released at once.
    context = multiprocessing.get_context("spawn")
    processes, threads = 3, 5
    barrier = context.Barrier(processes * threads, timeout=60)
    results = context.Queue()
    racers = [
        context.Process(target=_race_in_a_process, args=(where, threads, barrier, results))
        for _ in range(processes)
    ]
    for racer in racers:
        racer.start()
    allowed = sum(results.get(timeout=120) for _ in racers)
    for racer in racers:
        racer.join()
    new_store(*where).clear()
    assert allowed == 5


# --- Redis ---------------------------------------------------------------------------------------


def test_a_redis_key_is_forgotten_two_windows_after_its_last_spending(redis_url):
    client = redis.Redis.from_url(redis_url)
    prefix = f"imagery-test:{uuid.uuid4().hex}:"
    store = RedisStore(client, prefix=prefix)
    assert store.take("k", amount=1, limit=5, window=60, now=1000).allowed
    # Keys that never come back leave Redis; no sooner than their last slot stops counting.
    assert 61_000 < client.pttl(prefix + "k") <= 120_000
    store.clear()
    assert client.exists(prefix + "k") == 0


def test_clearing_a_redis_store_leaves_other_keys_alone(redis_url):
    client = redis.Redis.from_url(redis_url)
    prefix = f"imagery-test:{uuid.uuid4().hex}:"
    other = f"imagery-test:{uuid.uuid4().hex}:other"
    client.set(other, "kept", ex=60)
    store = RedisStore(client, prefix=prefix)
    store.take("k", amount=1, limit=5, window=60, now=1000)
    store.clear()
    assert client.get(other) == b"kept"
    client.delete(other)


def test_with_redis_the_default_store_counts_there(settings, redis_rate_limits, redis_prefix, redis_url):
    assert rate_store.take("k", limit=1, window=60).allowed
    assert not rate_store.take("k", limit=1, window=60).allowed
    assert redis.Redis.from_url(redis_url).exists(redis_prefix + "k") == 1
