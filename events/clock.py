"""The time events are recorded, tried and retried by: one function, so tests can set it."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def now() -> dt.datetime:
    return timezone.now()
