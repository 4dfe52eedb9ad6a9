"""The Django cache, from the environment: Redis when `REDIS_URL` is set (where rate limits then count, shared
by every app server), else this process's memory (rate limits then count in api/rate_store.py's SQLite file).

`settings.py` builds `CACHES["default"]` with `default_cache_from_env()`; the tests call it too, pointed at a
Redis that hangs. Every Redis call is bounded by `REDIS_TIMEOUT` (connecting and each answer): the rate
limiter lets requests through when the cache fails (api/throttling.py), and a Redis that hangs (a stopped
process, a network partition) must count as failed within that time, not hold every request for redis-py's
default of 5 s per call.
"""

from __future__ import annotations

from typing import Any

from config.env import env


def default_cache_from_env() -> dict[str, Any]:
    url = env.str("REDIS_URL", default="")
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    timeout = env.float("REDIS_TIMEOUT", default=0.5)
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        # redis-py's defaults are 5 s each: a hung Redis held every request that long (bench/chaos found it).
        "OPTIONS": {"socket_connect_timeout": timeout, "socket_timeout": timeout},
    }
