"""The queue's side of events: the tasks (Django's task framework, `django_tasks` for Django 5.2) and how
they are enqueued. Every task is idempotent: deliveries are claimed before they are sent (deliveries.py).

New events wake a worker with a `drain_webhooks` task, which sends whatever is due in batches: one task
for many events, so the queue's cost per task is not paid per event. Where the backend can defer a task,
the wake-ups a process sends are coalesced: at most one per WAKE_SECONDS, run that much later, so it
finds every event committed before it (the database backend defers; so does RQ with its scheduler).
Without deferral, each commit enqueues the deliveries it made (`deliver_webhooks`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from django.utils import timezone
from django_tasks import task

from events import deliveries

# A worker polls its queue about once a second (db_worker's default interval): waiting this long before a
# drain costs events little time, and an upload pays for an enqueue only once per WAKE_SECONDS.
WAKE_SECONDS = 0.25
# A drain task works this long at most (tasks are bounded), then hands over to another.
DRAIN_SECONDS = 20.0

_wake_lock = threading.Lock()
_next_wake = 0.0  # time.monotonic() before which a wake-up is already scheduled by this process


@task()
def deliver_webhooks(delivery_ids: list[int]) -> int:
    """Try the given deliveries (those still due and unclaimed); how many were delivered."""
    return deliveries.deliver(delivery_ids)


@task()
def drain_webhooks() -> int:
    """Deliver whatever is due for up to DRAIN_SECONDS; more left: another drain is enqueued."""
    delivered, more = deliveries.drain(seconds=DRAIN_SECONDS)
    if more:
        drain_webhooks.enqueue()
    return delivered


@task()
def relay_webhooks() -> int:
    """Enqueue the deliveries a lost enqueue or a dead worker left behind."""
    return deliveries.relay()


def enqueue(delivery_ids: list[int], *, run_after: dt.datetime | None = None) -> None:
    """Hand deliveries to the queue: now, or at `run_after` where the backend can defer (else the relay
    enqueues them once they are overdue)."""
    job = deliver_webhooks
    if run_after is not None:
        if not job.get_backend().supports_defer:
            return
        job = job.using(run_after=run_after)
    job.enqueue(delivery_ids)


def wake(delivery_ids: list[int]) -> None:
    """After a commit that recorded deliveries: make sure a worker comes for them soon."""
    global _next_wake
    if not drain_webhooks.get_backend().supports_defer:
        deliver_webhooks.enqueue(delivery_ids)
        return
    now = time.monotonic()
    with _wake_lock:
        if now < _next_wake:
            return  # a drain already enqueued by this process runs after this commit
        _next_wake = now + WAKE_SECONDS
    try:
        drain_webhooks.using(run_after=timezone.now() + dt.timedelta(seconds=WAKE_SECONDS)).enqueue()
    except BaseException:
        _next_wake = 0.0  # the next commit tries again (the relay covers this one)
        raise
