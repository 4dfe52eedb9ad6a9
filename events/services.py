"""Writes on webhook endpoints: create (with a new secret), change, delete."""

from __future__ import annotations

from events.models import WebhookEndpoint
from events.targets import check_url


def endpoint_create(*, url: str, events: list[str] | None = None, enabled: bool = True) -> WebhookEndpoint:
    """A new endpoint with its own secret. TargetRefused for a URL that may not be called."""
    check_url(url)
    return WebhookEndpoint.objects.create(url=url, events=_unique(events or []), enabled=enabled)


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given; the secret stays. Pending deliveries go to the new URL."""
    if url is not None:
        check_url(url)
        endpoint.url = url
    if events is not None:
        endpoint.events = _unique(events)
    if enabled is not None:
        endpoint.enabled = enabled
    endpoint.save(update_fields=["url", "events", "enabled"])
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its deliveries (a pending one is not sent)."""
    endpoint.delete()


def _unique(kinds: list[str]) -> list[str]:
    return sorted(set(kinds))
