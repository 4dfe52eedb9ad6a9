"""The rate limiter's store (Redis) failing: requests go through, and soon.

Found by the chaos rig (bench/chaos, fault `redis-hang`): Redis stopped with SIGSTOP held every request for
5 s (redis-py's default timeouts, which the cache kept), and an upload checked by two limits 10 s. With a
timeout, each request still waited for it, and at 25 requests a second that kept every thread of three
replicas busy (p99 1.6 s): after a failure, a process now leaves the cache alone for a while.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from unittest import mock

import pytest
import redis

from api import rate_store, throttling
from config.caches import default_cache_from_env, redis_from_env
from tests.conftest import use_redis


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers, like a stopped
    Redis; closed after 10 s, so that a client with long timeouts fails the test rather than hangs it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    closer = threading.Timer(10, server.close)
    closer.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    closer.cancel()
    server.close()


def test_a_hung_rate_limit_store_costs_one_request_its_timeout(api, settings, hung_redis):
    # Any question to the hung store costs at least its 1 s timeout: the bounds below tell a request that
    # asked it from one that did not, with room for a busy machine.
    use_redis(settings, {"REDIS_URL": hung_redis, "REDIS_TIMEOUT": "1.0"})
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    started = time.monotonic()
    assert api.get("/images").status_code == 200  # over the limit, but the limiter cannot tell
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert api.get("/images").status_code == 200  # the limiter does not ask the hung store again
    assert time.monotonic() - started < 0.5


def test_a_stopped_rate_limit_store_lets_requests_through_at_once(api, settings):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    use_redis(settings, {"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    for _ in range(2):
        started = time.monotonic()
        assert api.get("/images").status_code == 200
        assert time.monotonic() - started < 1


def test_without_redis_url_the_cache_is_this_process_memory():
    with mock.patch.dict(os.environ, {"REDIS_URL": ""}):
        assert default_cache_from_env()["BACKEND"].endswith("LocMemCache")


def test_redis_calls_have_a_timeout():
    with mock.patch.dict(os.environ, {"REDIS_URL": "redis://127.0.0.1:6379/0"}):
        options = default_cache_from_env()["OPTIONS"]
        assert redis_from_env() == ("redis://127.0.0.1:6379/0", options)  # the rate limits' client's too
    assert options == {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def test_with_redis_every_limit_counts_there(api, settings, redis_rate_limits, redis_url, redis_prefix):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    assert api.get("/images").status_code == 200
    limited = api.get("/images")
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 61
    # Counted in Redis, where every server's processes see it.
    assert redis.Redis.from_url(redis_url).keys(redis_prefix + "throttle:THROTTLE_READS_PER_ADDRESS:*")


def test_after_a_failure_the_limiter_leaves_the_cache_alone_for_a_while(api, settings, monkeypatch):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    calls = []

    def unavailable(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("cache down")

    monkeypatch.setattr(rate_store.SQLiteStore, "take", unavailable)
    for _ in range(3):
        assert api.get("/images").status_code == 200
    assert len(calls) == 1
    now = time.monotonic()
    monkeypatch.setattr(throttling.cache_breaker, "clock", lambda: now + throttling.CACHE_RETRY_SECONDS + 1)
    assert api.get("/images").status_code == 200
    assert len(calls) == 2  # asked again, failed again


def test_the_limiter_counts_again_once_the_cache_is_back(api, settings, monkeypatch):
    settings.THROTTLE_READS_PER_ADDRESS = "1/minute"
    throttling.cache_breaker.trip()
    assert api.get("/images").status_code == 200
    assert api.get("/images").status_code == 200  # not counted: the breaker is open
    now = time.monotonic()
    monkeypatch.setattr(throttling.cache_breaker, "clock", lambda: now + throttling.CACHE_RETRY_SECONDS + 1)
    assert api.get("/images").status_code == 200
    assert api.get("/images").status_code == 429
