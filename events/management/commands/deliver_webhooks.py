"""`manage.py deliver_webhooks [--every SECONDS]`: the relay, once or in a loop beside the worker.

It enqueues the pending deliveries that a lost enqueue (a crash between a commit and its enqueue) or a
worker that died mid-send left overdue by WEBHOOK_RELAY_SECONDS; the worker then delivers them.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from events.deliveries import relay


class Command(BaseCommand):
    help = "Enqueue overdue webhook deliveries (the relay); with --every, keep doing it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, metavar="SECONDS", help="Run again every SECONDS (0: once)."
        )

    def handle(self, *args: Any, every: float, **options: Any) -> None:
        while True:
            found = relay()
            if found or not every:
                self.stdout.write(f"{found} overdue deliveries enqueued")
            if not every:
                return
            time.sleep(every)
            # A long-lived process: a connection the database dropped, or past CONN_MAX_AGE, is replaced.
            close_old_connections()
