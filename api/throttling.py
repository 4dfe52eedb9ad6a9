"""Rate limits, per API key and per client address, separately for uploads, reads and renders.

Uploads and reads are limited by every view (REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES). A render (work
done for a read, such as making an image's rendition for the first time) is limited only where a view
asks for it: `check_render_throttles`.
Failed API-key checks are counted per address (`AuthFailuresPerAddress`, used by api/auth.py): past the
limit, an address's requests that carry a key are refused before the key is looked at.

Counts live in api.rate_store, atomically: a SQLite file every process of the server shares by default,
Redis when REDIS_URL is set, which several servers share. A rate is a setting like "60/minute";
empty turns that limit off. When the store itself fails, requests are let through: an outage of the limiter
must not become an outage of the API. After a failure, the process leaves the store alone for
`CACHE_RETRY_SECONDS` (`cache_breaker`): a Redis that hangs costs one request its timeout (REDIS_TIMEOUT),
not every request, which would tie up every thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from api import rate_store

logger = logging.getLogger(__name__)

# How long a process lets requests through without asking the store, after the store failed.
CACHE_RETRY_SECONDS = 2.0


class CacheBreaker:
    """Open (the store is not asked) for CACHE_RETRY_SECONDS after a failure; then the next request tries."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0

    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = self.clock() + CACHE_RETRY_SECONDS

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


cache_breaker = CacheBreaker()


class _ImageryThrottle(SimpleRateThrottle):
    setting: str
    for_reads: bool | None  # None: whatever the method
    per_key: bool

    def __init__(self) -> None:
        # SimpleRateThrottle reads its rate at construction; ours come from settings, read per request.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self._wait: float | None = None

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting) or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if self.for_reads is not None and (request.method in SAFE_METHODS) != self.for_reads:
            return None
        if self.per_key:
            if request.auth is None:
                return None
            ident = f"key:{request.auth.pk}"
        else:
            ident = f"addr:{self.get_ident(request)}"
        return f"throttle:{self.setting}:{ident}"

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None or cache_breaker.is_open():
            return True
        try:
            taken = rate_store.take(key, limit=self.num_requests, window=self.duration)
        except Exception:
            logger.exception(
                "rate limiter unavailable; letting requests through for %s s without asking it",
                CACHE_RETRY_SECONDS,
            )
            cache_breaker.trip()
            return True
        if not taken.allowed:
            self._wait = taken.retry_after
        return taken.allowed

    def wait(self) -> float | None:
        return self._wait


class UploadsPerKey(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_UPLOADS_PER_KEY", False, True


class UploadsPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_UPLOADS_PER_ADDRESS", False, False


class ReadsPerKey(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_READS_PER_KEY", True, True


class ReadsPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_READS_PER_ADDRESS", True, False


class RendersPerKey(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_RENDERS_PER_KEY", None, True


class RendersPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_RENDERS_PER_ADDRESS", None, False


RENDER_THROTTLES = (RendersPerKey, RendersPerAddress)


def check_render_throttles(request: Request, view: Any) -> None:
    """Count one render against THROTTLE_RENDERS_*; raises Throttled (a 429 with Retry-After) past one."""
    waits = []
    for throttle_class in RENDER_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, view):
            waits.append(throttle.wait())
    if waits:
        durations = [wait for wait in waits if wait is not None]
        raise Throttled(wait=max(durations, default=None))


class AuthFailuresPerAddress(_ImageryThrottle):
    """Failed API-key checks per client address (THROTTLE_AUTH_FAILURES_PER_ADDRESS).

    Unlike the others it counts only what `record` is told (a failure), and `exhausted` only looks: a client
    past the limit is refused whatever key it sends, a right one included, so guessing learns nothing
    until the window has room again. The counts live in api.rate_store, like every other limit's.
    """

    setting, for_reads, per_key = "THROTTLE_AUTH_FAILURES_PER_ADDRESS", None, False

    def exhausted(self, request: Request) -> bool:
        """Whether this address has used up its failures; `wait()` then says for how long."""
        self.key = self.get_cache_key(request, None)
        if self.rate is None or self.key is None or cache_breaker.is_open():
            return False
        try:
            # Taking nothing from one less than the limit: refused exactly when the limit is spent.
            taken = rate_store.take(self.key, amount=0, limit=self.num_requests - 1, window=self.duration)
        except Exception:
            logger.exception("rate limiter unavailable; not counting failed authentications")
            cache_breaker.trip()
            return False
        if not taken.allowed:
            self._wait = taken.retry_after
        return not taken.allowed

    def record(self, request: Request) -> None:
        """Counts one failed check for this address (after `exhausted` said False for the same request)."""
        if self.rate is None or self.key is None or cache_breaker.is_open():
            return
        try:
            rate_store.take(self.key, limit=self.num_requests, window=self.duration)
        except Exception:
            logger.exception("rate limiter unavailable; not counting failed authentications")
            cache_breaker.trip()
