"""`manage.py deliver_webhooks [--every SECONDS] [--prune-days DAYS]`: the relay, once or in a loop beside
the worker, and the pruning of old events.

It enqueues the pending deliveries that a lost enqueue (a crash between a commit and its enqueue) or a
worker that died mid-send left overdue by WEBHOOK_RELAY_SECONDS; the worker then delivers them. With
`--prune-days`, events older than that with no pending delivery are deleted with their deliveries.
With `--every`, a database outage is waited out (1 s, doubling to 30 s, api.outages), not fatal.
`manage.py task_worker` runs the relay itself (TASK_WORKER_SWEEPS); this command is for a relay of its
own, or a cron job.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from api.outages import DATABASE_ERRORS, Backoff
from events.deliveries import prune, relay


class Command(BaseCommand):
    help = "Enqueue overdue webhook deliveries (the relay); with --every, keep doing it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=0, metavar="SECONDS", help="Run again every SECONDS (0: once)."
        )
        parser.add_argument(
            "--prune-days",
            type=float,
            default=0,
            metavar="DAYS",
            help="Also delete events older than DAYS with no pending delivery (0: keep all).",
        )

    def handle(self, *args: Any, every: float, prune_days: float, **options: Any) -> None:
        backoff = Backoff()
        while True:
            try:
                self.sweep(prune_days=prune_days, report=not every)
            except DATABASE_ERRORS as exc:
                if not every:
                    raise
                # The database went away: wait (1 s, doubling to 30 s while it stays away), go on.
                time.sleep(backoff.failed("relay", exc))
                continue
            backoff.reset()
            if not every:
                return
            time.sleep(every)
            # A long-lived process: a connection the database dropped, or past CONN_MAX_AGE, is replaced.
            close_old_connections()

    def sweep(self, *, prune_days: float, report: bool) -> None:
        found = relay()
        if found or report:
            self.stdout.write(f"{found} overdue deliveries enqueued")
        if prune_days > 0 and (pruned := prune(older_than=dt.timedelta(days=prune_days))):
            self.stdout.write(f"{pruned} events older than {prune_days:g} days deleted")
