"""The outbox (`Event`), where events go (`WebhookEndpoint`) and each try to get one there (`Delivery`)."""

from __future__ import annotations

import base64
import secrets
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from events.kinds import EventKind

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
URL_MAX_LENGTH = 2000
# How much of a receiver's answer is kept: enough to show why it refused, never a whole page.
RESPONSE_PREFIX_BYTES = 256


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class Event(models.Model):
    """Something that happened, written in the same transaction as the change it reports (the outbox).

    Its id is the `webhook-id` of every delivery and every retry of it: receivers deduplicate by it.
    """

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="event_created_at")]  # pruning
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EventKind.values), name="event_kind_known")
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.kind}"


class WebhookEndpoint(models.Model):
    """A URL that is sent the events it subscribes to (`events`; empty: every kind), signed with `secret`."""

    url = models.URLField(max_length=URL_MAX_LENGTH)
    events = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    secret = models.CharField(max_length=80, default=new_secret, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    def wants(self, kind: str) -> bool:
        return not self.events or kind in self.events


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """One event on its way to one endpoint: tried until delivered, or failed after the retry window."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=9, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next try is due; tries after `give_up_at` are not made (the delivery fails).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    give_up_at = models.DateTimeField()
    # When a task was last asked to deliver it: the relay re-enqueues what is overdue long after that.
    enqueued_at = models.DateTimeField(default=timezone.now)
    # A worker sending it holds it until then, under its token (a claim; another worker skips it).
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")
    response_body = models.CharField(max_length=RESPONSE_PREFIX_BYTES, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at", "-id"], name="delivery_endpoint_newest"),
            # The relay's question: pending deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"], name="delivery_pending_due", condition=Q(status="pending")
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="delivery_status_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id}: {self.status}"
