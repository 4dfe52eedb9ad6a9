"""The outbox: an event and its deliveries are written in the caller's transaction, and handed to the
queue only once that commits.

A rolled-back change leaves no event; a process that dies between the commit and the enqueue leaves
pending deliveries that the relay (deliveries.relay) finds and enqueues. An event no enabled endpoint
wants is not stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from events import clock, retries, tasks
from events.kinds import EventKind
from events.models import Delivery, Event, WebhookEndpoint


def record(*, kind: str, payload: dict[str, Any] | Callable[[], dict[str, Any]]) -> Event | None:
    """Write the event `kind` with `payload` (JSON data) and a delivery per endpoint that wants it.

    Call it inside the transaction of the change it reports. `payload` may be a function that makes the
    data: it is called only when an endpoint wants the event. Returns the event, or None when no enabled
    endpoint subscribes to `kind`. ValueError for a kind EventKind does not name.
    """
    if kind not in EventKind.values:
        raise ValueError(f"unknown event kind {kind!r}")
    # Plain values, unordered: this runs inside every upload's transaction.
    enabled = WebhookEndpoint.objects.filter(enabled=True).order_by().values_list("id", "events")
    endpoints = [pk for pk, kinds in enabled if not kinds or kind in kinds]
    if not endpoints:
        return None
    now = clock.now()
    data = payload() if callable(payload) else payload
    # bulk_create: one INSERT without save()'s machinery, as for the deliveries (an upload waits for it).
    (event,) = Event.objects.bulk_create([Event(kind=kind, payload=data, created_at=now)])
    give_up_at = now + retries.window()
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            event=event,
            endpoint_id=endpoint_id,
            next_attempt_at=now,
            give_up_at=give_up_at,
            enqueued_at=now,
            created_at=now,
            updated_at=now,
        )
        for endpoint_id in endpoints
    )
    # robust: a queue that refuses the task must not fail a change that has committed; the relay
    # enqueues the delivery later.
    ids = [d.pk for d in deliveries]

    def wake_a_worker() -> None:  # a named function: Django logs a failed callback by its name
        tasks.wake(ids)

    transaction.on_commit(wake_a_worker, robust=True)
    return event
