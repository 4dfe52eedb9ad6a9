"""Delivering: deliveries claimed before they are sent (so a duplicate task, or a second worker, sends
nothing twice), each try's outcome and next try; `drain`, which delivers whatever is due in batches; the
relay that enqueues what a lost enqueue or a dead worker left; a retry asked for.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from events import clock, retries, sending, tasks
from events.models import Delivery, DeliveryStatus, Event, WebhookEndpoint
from events.sending import Answer

logger = logging.getLogger(__name__)

# Deliveries claimed at once by `drain`: one query claims them, one fetches them, one marks them delivered.
BATCH = 50


# How long a claim holds beyond one try's timeouts: a worker that dies leaves its claims to lapse, then
# the relay enqueues them again. A batch whose claim is running out stops and gives the rest back.
# WEBHOOK_CLAIM_LEASE_SECONDS (default 60): lower, a dead worker's deliveries come back sooner.
def _lease_seconds() -> float:
    return float(settings.WEBHOOK_CLAIM_LEASE_SECONDS)


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


def _try_seconds() -> float:
    return settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT


def _claim(where: Q, *, limit: int) -> tuple[uuid.UUID, dt.datetime, list[Delivery]]:
    """Claim up to `limit` pending, due, unclaimed deliveries matching `where`: (token, lease, them).

    A conditional update: of two workers after the same rows, each row goes to one (PostgreSQL and
    SQLite alike), and the token tells each which rows it won.
    """
    now = clock.now()
    token, lease = uuid.uuid4(), now + dt.timedelta(seconds=_lease_seconds() + _try_seconds())
    claimable = Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    ids = list(
        Delivery.objects.filter(where & claimable)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return token, lease, []
    Delivery.objects.filter(claimable, pk__in=ids).update(claim=token, claimed_until=lease)
    won = list(Delivery.objects.filter(claim=token).select_related("event", "endpoint").order_by("pk"))
    return token, lease, won


def _send(delivery: Delivery) -> Answer:
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return Answer(error="the endpoint is disabled")
    return sending.post(
        endpoint.url,
        secret=endpoint.secret,
        msg_id=delivery.event_id,
        timestamp=clock.now(),
        body=event_body(delivery.event),
    )


def _run(token: uuid.UUID, lease: dt.datetime, batch: list[Delivery]) -> list[Answer]:
    """Send each claimed delivery and record how it went; the rest goes back if the claim runs out."""
    answers: list[Answer] = []
    delivered: dict[tuple[int | None, str], list[int]] = defaultdict(list)
    # Endpoints that could not be reached in this batch: their other deliveries in it fail the same way
    # without waiting out the timeouts again, so one dead receiver does not hold up the others.
    unreachable: dict[int, Answer] = {}
    for index, delivery in enumerate(batch):
        if clock.now() + dt.timedelta(seconds=_try_seconds()) > lease:
            rest = [d.pk for d in batch[index:]]
            Delivery.objects.filter(pk__in=rest, claim=token).update(claim=None, claimed_until=None)
            break
        answer = unreachable.get(delivery.endpoint_id) or _send(delivery)
        if answer.status is None:
            unreachable[delivery.endpoint_id] = answer
        answers.append(answer)
        if answer.delivered:
            delivered[(answer.status, answer.body)].append(delivery.pk)
        else:
            _failed(token, delivery, answer)
        logger.debug("webhook %s to endpoint %s: %s", delivery.event_id, delivery.endpoint_id, answer)
    done = clock.now()
    for (status, body), ids in delivered.items():
        # One update for every delivery answered alike (most receivers answer every event the same).
        Delivery.objects.filter(pk__in=ids, claim=token).update(
            status=DeliveryStatus.DELIVERED,
            attempts=F("attempts") + 1,
            last_attempt_at=done,
            response_status=status,
            error="",
            response_body=body,
            claim=None,
            claimed_until=None,
            updated_at=done,
        )
    return answers


def _failed(token: uuid.UUID, delivery: Delivery, answer: Answer) -> None:
    """Record a failed try: the next one after a jittered backoff, or failed past the retry window."""
    done = clock.now()
    changes: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "last_attempt_at": done,
        "response_status": answer.status,
        "error": answer.error,
        "response_body": answer.body,
        "claim": None,
        "claimed_until": None,
        "updated_at": done,
    }
    retry_at: dt.datetime | None = done + retries.backoff(delivery.attempts + 1)
    gone = answer.status == 410
    if gone:
        # 410 Gone: the receiver says the endpoint is no more. It is disabled (an admin can enable it).
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(enabled=False)
        logger.warning("webhook endpoint %s answered 410 Gone: disabled", delivery.endpoint_id)
    if gone or not delivery.endpoint.enabled or retry_at > delivery.give_up_at:
        changes["status"], retry_at = DeliveryStatus.FAILED, None
    else:
        changes.update(next_attempt_at=retry_at, enqueued_at=done)
    # Only while the claim is still ours: a retry asked for meanwhile takes precedence.
    Delivery.objects.filter(pk=delivery.pk, claim=token).update(**changes)
    if retry_at is not None:
        tasks.enqueue([delivery.pk], run_after=retry_at)
    logger.info("webhook %s to endpoint %s failed: %s", delivery.event_id, delivery.endpoint_id, answer.error)


def deliver(delivery_ids: list[int]) -> int:
    """Try those of the given deliveries that are due and unclaimed; how many were delivered."""
    delivered = 0
    for start in range(0, len(delivery_ids), BATCH):
        ids = delivery_ids[start : start + BATCH]
        token, lease, batch = _claim(Q(pk__in=ids), limit=len(ids))
        delivered += sum(answer.delivered for answer in _run(token, lease, batch))
    return delivered


def attempt(delivery_id: int) -> Answer | None:
    """One try of one delivery; None when it is not due, or delivered or claimed already."""
    token, lease, batch = _claim(Q(pk=delivery_id), limit=1)
    answers = _run(token, lease, batch)
    return answers[0] if answers else None


def drain(*, seconds: float) -> tuple[int, bool]:
    """Deliver whatever is due, a batch at a time, for about `seconds`: (delivered, whether more was left).

    What a worker runs after events are recorded: one task sends many events (over kept connections), so
    the queue's own cost per task is not paid per event.
    """
    deadline = clock.now() + dt.timedelta(seconds=seconds)
    delivered = 0
    while clock.now() < deadline:
        token, lease, batch = _claim(Q(), limit=BATCH)
        if not batch:
            return delivered, False
        delivered += sum(answer.delivered for answer in _run(token, lease, batch))
    return delivered, True


def relay(*, limit: int = 1000) -> int:
    """Enqueue pending deliveries overdue by WEBHOOK_RELAY_SECONDS whose last enqueue is as old: lost
    between a commit and its enqueue, or claimed by a worker that died. How many were enqueued."""
    now = clock.now()
    cutoff = now - dt.timedelta(seconds=settings.WEBHOOK_RELAY_SECONDS)
    due = Delivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=cutoff, enqueued_at__lte=cutoff
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    Delivery.objects.filter(pk__in=ids).update(enqueued_at=now)
    for start in range(0, len(ids), BATCH):
        tasks.enqueue(ids[start : start + BATCH])
    logger.info("relay: %s overdue webhook deliveries enqueued", len(ids))
    return len(ids)


def prune(*, older_than: dt.timedelta) -> int:
    """Delete events older than `older_than` that have no pending delivery (with their deliveries); how
    many events went."""
    cutoff = clock.now() - older_than
    old = Event.objects.filter(created_at__lt=cutoff).exclude(deliveries__status=DeliveryStatus.PENDING)
    _, by_model = old.delete()
    return by_model.get(Event._meta.label, 0)


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Try a delivery again now, whatever its status (a delivered one is sent again: receivers
    deduplicate by `webhook-id`). A failed or delivered one gets one try; a pending one keeps its window."""
    now = clock.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            give_up_at=max(delivery.give_up_at, now) if delivery.status == DeliveryStatus.PENDING else now,
            claim=None,
            claimed_until=None,
            enqueued_at=now,
            updated_at=now,
        )

        def enqueue_retry() -> None:
            tasks.enqueue([delivery.pk])

        transaction.on_commit(enqueue_retry, robust=True)
    delivery.refresh_from_db()
    return delivery
