"""api.rate_store: what a key may spend in a sliding window, in each store (SQLite file, Django cache)."""

from __future__ import annotations

import sqlite3

import pytest
from django.core.cache import cache

from api import rate_store
from api.rate_store import CacheStore, SQLiteStore


@pytest.fixture(params=["sqlite", "cache"])
def store(request, tmp_path):
    cache.clear()
    return SQLiteStore(str(tmp_path / "counts.sqlite3")) if request.param == "sqlite" else CacheStore()


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
