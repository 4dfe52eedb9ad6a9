"""Delivering: one try of a delivery (claimed first, so a duplicate task sends nothing), its outcome and
its next try; the relay that enqueues what a lost enqueue or a dead worker left; a retry asked for.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from events import clock, retries, sending, tasks
from events.models import Delivery, DeliveryStatus, Event
from events.sending import Answer

logger = logging.getLogger(__name__)


def event_body(event: Event) -> str:
    """What is POSTed: the same bytes on every try (the signature covers them)."""
    return json.dumps(
        {
            "id": event.id,
            "type": event.kind,
            "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": event.payload,
        },
        separators=(",", ":"),
    )


def deliver(delivery_ids: list[int]) -> int:
    """Try each of the deliveries that is due and not claimed; how many were delivered."""
    return sum(1 for pk in delivery_ids if (answer := attempt(pk)) is not None and answer.delivered)


def attempt(delivery_id: int) -> Answer | None:
    """One try of a pending, due delivery; None when it is not (delivered already, claimed, not yet due).

    The claim is a conditional update: of two workers running the same task, one sends. It lasts longer
    than a try can take; a worker that dies holding it leaves the delivery to the relay once it lapses.
    """
    now = clock.now()
    lease = now + dt.timedelta(seconds=settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT + 30)
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=lease)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if endpoint.enabled:
        answer = sending.post(
            endpoint.url,
            secret=endpoint.secret,
            msg_id=delivery.event_id,
            timestamp=now,
            body=event_body(delivery.event),
        )
    else:
        answer = Answer(error="the endpoint is disabled")
    done = clock.now()
    changes: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "last_attempt_at": done,
        "response_status": answer.status,
        "error": answer.error,
        "response_body": answer.body,
        "claimed_until": None,
        "updated_at": done,
    }
    retry_at = None
    if answer.delivered:
        changes["status"] = DeliveryStatus.DELIVERED
    else:
        retry_at = done + retries.backoff(delivery.attempts + 1)
        if not endpoint.enabled or retry_at > delivery.give_up_at:
            changes["status"], retry_at = DeliveryStatus.FAILED, None
        else:
            changes.update(next_attempt_at=retry_at, enqueued_at=done)
    # Only while the claim is still ours: a retry asked for meanwhile takes precedence.
    Delivery.objects.filter(pk=delivery_id, claimed_until=lease).update(**changes)
    if retry_at is not None:
        tasks.enqueue([delivery_id], run_after=retry_at)
    logger.info(
        "webhook %s to endpoint %s: %s",
        delivery.event_id,
        endpoint.pk,
        "delivered" if answer.delivered else answer.error,
    )
    return answer


def relay(*, limit: int = 1000) -> int:
    """Enqueue pending deliveries overdue by WEBHOOK_RELAY_SECONDS whose last enqueue is as old: lost
    between a commit and its enqueue, or held by a worker that died. How many were enqueued."""
    now = clock.now()
    cutoff = now - dt.timedelta(seconds=settings.WEBHOOK_RELAY_SECONDS)
    due = Delivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff, enqueued_at__lte=cutoff
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    Delivery.objects.filter(pk__in=ids).update(enqueued_at=now)
    for start in range(0, len(ids), 100):
        tasks.enqueue(ids[start : start + 100])
    logger.info("relay: %s overdue webhook deliveries enqueued", len(ids))
    return len(ids)


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Try a delivery again now, whatever its status (a delivered one is sent again: receivers
    deduplicate by `webhook-id`). A failed or delivered one gets one try; a pending one keeps its window."""
    now = clock.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            give_up_at=max(delivery.give_up_at, now) if delivery.status == DeliveryStatus.PENDING else now,
            claimed_until=None,
            enqueued_at=now,
            updated_at=now,
        )

        def enqueue_retry() -> None:
            tasks.enqueue([delivery.pk])

        transaction.on_commit(enqueue_retry, robust=True)
    delivery.refresh_from_db()
    return delivery
