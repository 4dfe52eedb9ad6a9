"""Redis and the Django cache, from the environment: `REDIS_URL` names the Redis that app servers share
(where rate limits then count, api/rate_store.py), `REDIS_TIMEOUT` bounds every call to it.

`settings.py` reads `REDIS_URL` and `REDIS_OPTIONS` with `redis_from_env()` and builds `CACHES["default"]`
with `default_cache_from_env()`: Redis when `REDIS_URL` is set, else this process's memory (rate limits then
count in a SQLite file). The tests call both, pointed at a Redis that hangs. Every Redis call is bounded by
`REDIS_TIMEOUT` (connecting and each answer): the rate limiter lets requests through when Redis fails
(api/throttling.py), and a Redis that hangs (a stopped process, a network partition) must count as failed
within that time, not hold every request for redis-py's default of 5 s per call.
"""

from __future__ import annotations

from typing import Any

from config.env import env


def redis_from_env() -> tuple[str, dict[str, float]]:
    """`REDIS_URL` ('' when unset) and the socket options every Redis client of ours is built with."""
    url = env.str("REDIS_URL", default="")
    timeout = env.float("REDIS_TIMEOUT", default=0.5)
    # redis-py's defaults are 5 s each: a hung Redis held every request that long (bench/chaos found it).
    return url, {"socket_connect_timeout": timeout, "socket_timeout": timeout}


def default_cache_from_env() -> dict[str, Any]:
    url, options = redis_from_env()
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "OPTIONS": options}
