"""Rate limits, per API key and per client address: a count of uploads and of reads, and a budget of what
renders cost.

Uploads and reads are limited by every view (REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES). A render (work
done for a read, such as making an image's rendition for the first time) is charged by its cost (CPU
seconds and bytes stored, `RenderCost`) where a view asks: `render_budget_reserve` charges an estimate
before the work and refuses it past a budget, `RenderCharge.settle` corrects the charge to what the work
measured after. Budgets slide like every limit here: any span of one period sees at most the budget (and
one counting slot, api.rate_store).
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
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from api import rate_store
from api.exceptions import ProblemError

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


class ChunksPerAddress(_ImageryThrottle):
    """The parts of one upload sent in several requests (a resumable upload's chunks), whatever the
    method: the view that takes them uses this instead of the upload limits, which its creation met."""

    setting, for_reads, per_key = "THROTTLE_UPLOAD_CHUNKS_PER_ADDRESS", None, False


class CostlyReadsPerKey(_ImageryThrottle):
    """Reads whose work grows with what they ask (a search across the whole table rather than a page of
    an index), counted besides the reads: a view adds these for such requests (`get_throttles`), since a
    count of requests is no bound on their cost when one costs a hundred times another."""

    setting, for_reads, per_key = "THROTTLE_COSTLY_READS_PER_KEY", True, True


class CostlyReadsPerAddress(_ImageryThrottle):
    setting, for_reads, per_key = "THROTTLE_COSTLY_READS_PER_ADDRESS", True, False


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
    unit: int  # counter units per unit of the setting: integers, as api.rate_store counts
    per_key: bool
    measure_unit: int = 1  # counter units per unit of the measure

    def parse(self) -> tuple[int, int] | None:
        """(limit in counter units, period in seconds), None when off (settings.py checked its form)."""
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
    # (budget, counter key, units charged, the budget's period)
    charged: list[tuple[_Budget, str, int, int]] = field(default_factory=list)

    def settle(self, actual: RenderCost) -> None:
        """Charge `actual` instead of the estimate (a failed render: what it spent before failing)."""
        try:
            for budget, key, units, period in self.charged:
                delta = budget.units(actual) - units
                if delta:
                    rate_store.add(key, amount=delta, window=period)
        except Exception:
            logger.exception("rate limiter unavailable; a render's cost was not counted")
            cache_breaker.trip()
        self.charged = []


def render_budget_reserve(request: Request, estimate: RenderCost) -> RenderCharge:
    """Charge a render's estimated cost to the render budgets of the request's API key and address.

    Past a budget: Throttled (429, Retry-After: when the window has room for it), nothing charged. A
    render whose estimate alone is over a whole budget: CostOverBudget (413), since no wait would make room
    for it. Several requests of one client at once each see the others' estimates. When the store fails,
    the render goes ahead uncounted (see CacheBreaker).
    """
    charge = RenderCharge(estimate)
    if cache_breaker.is_open():
        return charge
    ident = BaseThrottle().get_ident(request)
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
            key = f"budget:{budget.setting}:{who}"
            taken = rate_store.take(key, amount=units, limit=limit, window=period)
            if taken.allowed:
                charge.charged.append((budget, key, units, period))
            else:
                waits.append(taken.retry_after)
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
