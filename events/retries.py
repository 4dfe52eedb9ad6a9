"""When a failed delivery is tried again: exponential backoff with full jitter, for a bounded time.

The n-th retry waits a random time in [0, min(cap, base * 2**(n-1))] ("full jitter"): receivers that
came back after an outage are not hit by every delivery at the same instant.
"""

from __future__ import annotations

import datetime as dt
import random

from django.conf import settings

_random = random.SystemRandom()


def backoff(attempts: int, *, rng: random.Random = _random) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed try (1 for the first)."""
    ceiling = min(
        settings.WEBHOOK_RETRY_MAX_SECONDS,
        settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 32),
    )
    return dt.timedelta(seconds=rng.uniform(0, ceiling))


def window() -> dt.timedelta:
    """How long a delivery is tried before it fails (WEBHOOK_RETRY_HOURS)."""
    return dt.timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
