"""Events: the outbox, webhook endpoints and their deliveries, and the tasks that deliver them.

It knows no domain: a payload is data. A domain service calls `events.record(kind, payload)` inside its own
transaction; the event and its deliveries commit (or roll back) with the change they report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def record(kind: str, payload: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
    """Record an event of `kind` in the caller's transaction (events/outbox.py); `payload` is the data or
    a function that makes it (called only when an endpoint wants the event)."""
    # Imported here: the package is imported while Django loads its apps, before models may be.
    from events.outbox import record as record_event

    record_event(kind=kind, payload=payload)
