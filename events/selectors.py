"""Reads: webhook endpoints and their deliveries, newest first."""

from __future__ import annotations

from django.db.models import QuerySet

from api.pagination import MAX_BIGINT
from events.models import Delivery, WebhookEndpoint


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("-created_at", "-id")


def endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    """Raises WebhookEndpoint.DoesNotExist (also for an id no database column holds)."""
    if not 0 < endpoint_id <= MAX_BIGINT:
        raise WebhookEndpoint.DoesNotExist
    return WebhookEndpoint.objects.get(pk=endpoint_id)


def delivery_list(*, endpoint_id: int) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(endpoint_id=endpoint_id)
        .select_related("event")
        .defer("event__payload")
        .order_by("-created_at", "-id")
    )


def delivery_get(*, endpoint_id: int, delivery_id: int) -> Delivery:
    """Raises Delivery.DoesNotExist (also for another endpoint's delivery)."""
    if not (0 < delivery_id <= MAX_BIGINT and 0 < endpoint_id <= MAX_BIGINT):
        raise Delivery.DoesNotExist
    return Delivery.objects.get(pk=delivery_id, endpoint_id=endpoint_id)
