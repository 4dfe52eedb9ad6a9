"""`manage.py wait_for_database`: block until the database accepts connections.

The container's entrypoint runs it before `migrate`: on a fresh stack, or after a database restart, the app
may start before PostgreSQL listens, and a migration that fails on a refused connection would end the
container for nothing.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError, connection


class Command(BaseCommand):
    help = "Wait until the default database accepts connections; fail after --timeout seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection.ensure_connection()
            except OperationalError as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if time.monotonic() >= deadline:
                    raise CommandError(f"The database did not answer within {timeout:g} s: {reason}") from exc
                self.stderr.write(f"Waiting for the database: {reason}")
                time.sleep(1)
            else:
                connection.close()
                self.stdout.write("The database answers.")
                return
