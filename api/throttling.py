"""Rate limits, per API key and per client address: a count of uploads and of reads, and a budget of what
renders cost.

Uploads and reads are limited by every view (REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES). A render (work
done for a read, such as making an image's rendition for the first time) is charged by its cost (CPU
seconds and bytes stored, `RenderCost`) where a view asks: `render_budget_reserve` charges an estimate
before the work and refuses it past a budget, `RenderCharge.settle` corrects the charge to what the work
measured after. A budget is counted in fixed windows (the minute, the hour) of the period its setting
names, so any span of one period sees at most two windows' worth.

Counts live in the Django cache (local memory by default, Redis when REDIS_URL is set, which several app
processes must share). A rate is a setting like "60/minute"; empty turns that limit off. When the cache
itself fails, requests are let through: an outage of the limiter must not become an outage of the API. After
a failure, the process leaves the cache alone for `CACHE_RETRY_SECONDS` (`cache_breaker`): a Redis that hangs
costs one request its timeout (REDIS_TIMEOUT), not every request, which would tie up every thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from api.exceptions import ProblemError

logger = logging.getLogger(__name__)

# How long a process lets requests through without asking the cache, after the cache failed.
CACHE_RETRY_SECONDS = 2.0


class CacheBreaker:
    """Open (the cache is not asked) for CACHE_RETRY_SECONDS after a failure; then the next request tries."""

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
        if cache_breaker.is_open():
            return True
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.exception(
                "rate limiter unavailable; letting requests through for %s s without asking it",
                CACHE_RETRY_SECONDS,
            )
            cache_breaker.trip()
            return True


class UploadsPerKey(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_UPLOADS_PER_KEY", False, True


class UploadsPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_UPLOADS_PER_ADDRESS", False, False


class ReadsPerKey(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_READS_PER_KEY", True, True


class ReadsPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_READS_PER_ADDRESS", True, False


# --- Render budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderCost:
    """What a render costs: the CPU it takes and the bytes it stores."""

    cpu_seconds: float
    stored_bytes: int


class CostOverBudget(ProblemError):
    """One render would cost more than a whole budget allows: no wait makes room for it."""

    status = 413
    code = "over_render_budget"


@dataclass(frozen=True)
class _Budget:
    setting: str  # "15/minute": so much of `measure` per period; empty: no budget
    measure: str  # a field of RenderCost
    unit: int  # counter units per unit of the setting: integers, for the cache's incr
    per_key: bool
    measure_unit: int = 1  # counter units per unit of the measure

    def parse(self) -> tuple[int, int] | None:
        """(limit in counter units, period in seconds), None when off; ImproperlyConfigured when bad."""
        raw = getattr(settings, self.setting) or ""
        if not raw:
            return None
        amount, _, period = raw.partition("/")
        try:
            limit = round(float(amount) * self.unit)
            seconds = _PERIODS[period.strip().lower()[:1]]
        except (ValueError, KeyError) as exc:
            raise ImproperlyConfigured(
                f"{self.setting}: an amount per second, minute, hour or day, not {raw!r}"
            ) from exc
        if limit <= 0:
            raise ImproperlyConfigured(f"{self.setting}: a positive amount, or empty for no budget")
        return limit, seconds

    def units(self, cost: RenderCost) -> int:
        return round(getattr(cost, self.measure) * self.measure_unit)


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# CPU is counted in milliseconds, bytes as bytes (settings name seconds and megabytes).
RENDER_BUDGETS = (
    _Budget("THROTTLE_RENDER_CPU_SECONDS_PER_KEY", "cpu_seconds", 1000, per_key=True, measure_unit=1000),
    _Budget("THROTTLE_RENDER_CPU_SECONDS_PER_ADDRESS", "cpu_seconds", 1000, per_key=False, measure_unit=1000),
    _Budget("THROTTLE_RENDER_MEGABYTES_PER_KEY", "stored_bytes", 1_000_000, per_key=True),
    _Budget("THROTTLE_RENDER_MEGABYTES_PER_ADDRESS", "stored_bytes", 1_000_000, per_key=False),
)


@dataclass
class RenderCharge:
    """The estimate charged to each budget for one render; `settle` corrects it to what was measured."""

    estimate: RenderCost
    # (budget, counter key, units charged, the counter's lifetime)
    charged: list[tuple[_Budget, str, int, int]] = field(default_factory=list)

    def settle(self, actual: RenderCost) -> None:
        """Charge `actual` instead of the estimate (a failed render: what it spent before failing)."""
        try:
            for budget, key, units, lifetime in self.charged:
                delta = budget.units(actual) - units
                if delta:
                    _add_to(key, delta, lifetime)
        except Exception:
            logger.exception("rate limiter unavailable; a render's cost was not counted")
            cache_breaker.trip()
        self.charged = []


# The budgets' windows follow this clock (tests set it, so that no window ends halfway through one).
budget_clock: Callable[[], float] = time.time


def render_budget_reserve(request: Request, estimate: RenderCost) -> RenderCharge:
    """Charge a render's estimated cost to the render budgets of the request's API key and address.

    Past a budget: Throttled (429, Retry-After: the end of its window), nothing charged. A window's first
    render always fits, unless its estimate alone is over the whole budget: CostOverBudget (413), since no
    wait would make room for it. Several requests of one client at once each see the others' estimates.
    When the cache fails, the render goes ahead uncounted (see CacheBreaker).
    """
    charge = RenderCharge(estimate)
    if cache_breaker.is_open():
        return charge
    ident = BaseThrottle().get_ident(request)
    now = budget_clock()
    waits: list[float] = []
    try:
        for budget in RENDER_BUDGETS:
            parsed = budget.parse()
            if parsed is None or (budget.per_key and request.auth is None):
                continue
            limit, period = parsed
            units = budget.units(estimate)
            if units > limit:
                charge.settle(RenderCost(0, 0))
                raise CostOverBudget(
                    f"This rendition would cost more than {budget.setting} allows in all; "
                    "ask for a smaller size or a cheaper format."
                )
            who = f"key:{request.auth.pk}" if budget.per_key else f"addr:{ident}"
            window = int(now // period)
            key = f"budget:{budget.setting}:{who}:{window}"
            total = _add_to(key, units, 2 * period)
            if total > limit and total - units > 0:
                _add_to(key, -units, 2 * period)
                waits.append((window + 1) * period - now)
            else:
                charge.charged.append((budget, key, units, 2 * period))
    except CostOverBudget:
        raise
    except Exception:
        logger.exception(
            "rate limiter unavailable; letting renders through for %s s without asking it",
            CACHE_RETRY_SECONDS,
        )
        cache_breaker.trip()
        return RenderCharge(estimate)
    if waits:
        charge.settle(RenderCost(0, 0))
        raise Throttled(wait=max(waits))
    return charge


def _add_to(key: str, delta: int, lifetime: int) -> int:
    """Add `delta` to a counter in the rate limits' cache (made at 0, to live `lifetime` s); its total."""
    counters = _ImageryThrottle.cache
    for _attempt in range(2):
        counters.add(key, 0, timeout=lifetime)
        try:
            return counters.incr(key, delta)
        except ValueError:  # expired between add and incr
            continue
    return counters.incr(key, delta)
