"""The database, from the environment: `DATABASE_URL` (default: SQLite in the data folder).

`settings.py` builds `DATABASES["default"]` with `default_database_from_env()`; the tests call it too. On
PostgreSQL every wait is bounded, so a database that stalls (a lock held, an overloaded server, a host that
drops packets) costs a request a 503 after a few seconds instead of holding its thread:
`DATABASE_CONNECT_TIMEOUT` (seconds to connect) and `DATABASE_STATEMENT_TIMEOUT` (seconds any statement may
run, a lock wait included; 0: no bound). manage.py turns the statement bound off for its commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.env import env


def default_database_from_env(data_dir: Path) -> dict[str, Any]:
    database: dict[str, Any] = env.db("DATABASE_URL", default=f"sqlite:///{data_dir / 'db.sqlite3'}")
    # A new connection per request costs several ms; keep them (seconds, 0 = close after each request).
    database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    database["CONN_HEALTH_CHECKS"] = True
    options = database.setdefault("OPTIONS", {})
    if database["ENGINE"] == "django.db.backends.postgresql":
        connect = env.int("DATABASE_CONNECT_TIMEOUT", default=3)
        statement = env.float("DATABASE_STATEMENT_TIMEOUT", default=5.0)
        if connect < 1 or statement < 0:
            raise ImproperlyConfigured(
                "DATABASE_CONNECT_TIMEOUT must be 1 or more, DATABASE_STATEMENT_TIMEOUT 0 or more (seconds)."
            )
        # libpq's: without it, connecting to a host that drops packets waits for the kernel (minutes).
        options.setdefault("connect_timeout", connect)
        # The server's bound on each statement; an `options` given in DATABASE_URL is kept.
        options["options"] = (
            f"{options.get('options', '')} -c statement_timeout={round(statement * 1000)}".strip()
        )
    elif database["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers work while a writer commits; IMMEDIATE avoids "database is locked" upgrades.
        options.update(
            {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            }
        )
        # SQLite creates the file but not its folder.
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    return database
