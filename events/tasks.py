"""The queue's side of events: the tasks (Django's task framework, `django_tasks` for Django 5.2) and
how they are enqueued. Each task is idempotent: a delivery is claimed before it is sent (deliveries.py).
"""

from __future__ import annotations

import datetime as dt
import logging

from django_tasks import task

from events import deliveries

logger = logging.getLogger(__name__)


@task()
def deliver_webhooks(delivery_ids: list[int]) -> int:
    """Try the given deliveries (those still due and unclaimed); how many were delivered."""
    return deliveries.deliver(delivery_ids)


@task()
def relay_webhooks() -> int:
    """Enqueue the deliveries a lost enqueue or a dead worker left behind."""
    return deliveries.relay()


def enqueue(delivery_ids: list[int], *, run_after: dt.datetime | None = None) -> None:
    """Hand deliveries to the queue: now, or at `run_after` where the backend can defer (else the relay
    enqueues them once they are due)."""
    job = deliver_webhooks
    if run_after is not None:
        if not job.get_backend().supports_defer:
            return
        job = job.using(run_after=run_after)
    job.enqueue(delivery_ids)
