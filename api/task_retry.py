"""Retries for tasks: Django's task API has none, so a failed attempt enqueues the next one itself.

A task that wants retries takes an `attempt` keyword (1 for the first run) and runs its work inside
`retrying(...)`: when the work raises, the same task is enqueued again with `attempt + 1`, to run no sooner
than the policy's backoff from now (exponential, with jitter so that tasks failed together do not retry
together), and the exception goes on, so this attempt's result says it failed. After `max_attempts`, or for an
exception the policy names as permanent, nothing is enqueued: the failure is logged and final. The work must
be idempotent, since an attempt that failed half-way runs again from the start.

A backend that cannot defer (`immediate`) runs the next attempt at once, without the wait.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django_tasks.base import Task

logger = logging.getLogger(__name__)

# The clock retries are scheduled by; tests set it.
clock: Callable[[], datetime] = timezone.now
# Where jitter comes from; tests seed their own.
jitter = random.Random()  # noqa: S311 (spreading retries, not a secret)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a task runs again after a failure."""

    max_attempts: int = 5
    first_delay: float = 10.0  # seconds before the second attempt (before jitter)
    max_delay: float = 3600.0  # no wait is longer than this
    # Exceptions that another attempt would meet again (a bad argument, a rendition over a limit).
    permanent: tuple[type[BaseException], ...] = ()

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): first_delay * 2^(attempt-1), capped,
        then between half and all of it ("equal jitter")."""
        base = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        return base / 2 + (rng or jitter).uniform(0, base / 2)


@contextmanager
def retrying(
    task: Task[..., Any], *, attempt: int, kwargs: dict[str, Any], policy: RetryPolicy
) -> Iterator[None]:
    """Run the body; when it raises, enqueue `task(**kwargs, attempt=attempt + 1)` after the policy's
    backoff (unless the attempts are spent or the exception is permanent), then let the exception go on."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, policy.permanent) or attempt >= policy.max_attempts:
            logger.error(
                "task %s failed for good on attempt %s of %s: %r",
                task.name,
                attempt,
                policy.max_attempts,
                exc,
            )
            raise
        delay = policy.delay(attempt)
        retry = task
        if task.get_backend().supports_defer:
            retry = task.using(run_after=clock() + timedelta(seconds=delay))
        logger.warning(
            "task %s failed on attempt %s (%r); attempt %s in %.0f s",
            task.name,
            attempt,
            exc,
            attempt + 1,
            delay,
        )
        retry.enqueue(**kwargs, attempt=attempt + 1)
        raise
