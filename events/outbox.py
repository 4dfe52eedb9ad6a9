"""The outbox: an event and its deliveries are written in the caller's transaction, and handed to the
queue only once that commits.

A rolled-back change leaves no event; a process that dies between the commit and the enqueue leaves
pending deliveries that the relay (deliveries.relay) finds and enqueues. An event no enabled endpoint
wants is not stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import connection, models, transaction

from events import clock, retries, tasks
from events.kinds import EventKind
from events.models import Delivery, DeliveryStatus, Event, WebhookEndpoint, new_event_id


def record(*, kind: str, payload: dict[str, Any] | Callable[[], dict[str, Any]]) -> str | None:
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
    event_id = new_event_id()
    ids = _insert(event_id=event_id, kind=kind, data=data, endpoint_ids=endpoints, now=now)
    # robust: a queue that refuses the task must not fail a change that has committed; the relay
    # enqueues the delivery later.

    def wake_a_worker() -> None:  # a named function: Django logs a failed callback by its name
        tasks.wake(ids)

    transaction.on_commit(wake_a_worker, robust=True)
    return event_id


def _insert(
    *, event_id: str, kind: str, data: dict[str, Any], endpoint_ids: list[int], now: dt.datetime
) -> list[int]:
    """The event's row and its deliveries' in two INSERT statements; the deliveries' ids.

    Written as SQL, with the columns and value conversions the models define, because this runs inside
    every upload's transaction: the ORM's bulk_create took about 0.3 ms a statement here, this a tenth
    of that (bench/webhooks.py). RETURNING is PostgreSQL's and SQLite's (3.35+) alike.
    """
    ops = connection.ops
    stamp = ops.adapt_datetimefield_value(now)
    give_up_at = ops.adapt_datetimefield_value(now + retries.window())
    event = Event._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ops.quote_name(event.db_table)} "  # noqa: S608 (names from the model)
            f"({_columns(Event, 'id', 'kind', 'payload', 'created_at')}) VALUES (%s, %s, %s, %s)",
            [event_id, kind, ops.adapt_json_value(data, None), stamp],
        )
        fields = ("event", "endpoint", "status", "attempts", "next_attempt_at", "give_up_at", "enqueued_at")
        fields += ("error", "response_body", "created_at", "updated_at")
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        values: list[Any] = []
        for endpoint_id in endpoint_ids:
            values += [event_id, endpoint_id, DeliveryStatus.PENDING, 0, stamp, give_up_at, stamp, "", ""]
            values += [stamp, stamp]
        cursor.execute(
            f"INSERT INTO {ops.quote_name(Delivery._meta.db_table)} "  # noqa: S608 (names from the model)
            f"({_columns(Delivery, *fields)}) VALUES {', '.join([row] * len(endpoint_ids))} "
            f"RETURNING {ops.quote_name(Delivery._meta.pk.column)}",
            values,
        )
        return [row_id for (row_id,) in cursor.fetchall()]


def _columns(model: type[models.Model], *names: str) -> str:
    return ", ".join(connection.ops.quote_name(model._meta.get_field(name).column) for name in names)
