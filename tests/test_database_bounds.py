"""Waits on PostgreSQL are bounded (config/databases.py): a stalled database answers 503, it does not hold
threads. The statement bound is checked on PostgreSQL itself (`make test-postgres`): a statement that waits
for a lock another session holds is cancelled, and the API answers 503 with Retry-After.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper

from config.databases import default_database_from_env
from tests.problems import assert_problem

POSTGRES = "postgres://user@db.example.com:5432/imagery"


def database(tmp_path: Path, **environ: str) -> dict[str, Any]:
    with mock.patch.dict(os.environ, environ, clear=True):
        return default_database_from_env(tmp_path)


def test_postgres_connections_and_statements_are_bounded_by_default(tmp_path: Path) -> None:
    options = database(tmp_path, DATABASE_URL=POSTGRES)["OPTIONS"]
    assert options == {"connect_timeout": 3, "options": "-c statement_timeout=5000"}


def test_postgres_bounds_come_from_the_environment_and_keep_the_urls_options(tmp_path: Path) -> None:
    url = f"{POSTGRES}?options=-c%20search_path%3Dimagery"
    environ = {"DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT": "5", "DATABASE_STATEMENT_TIMEOUT": "0.25"}
    options = database(tmp_path, **environ)["OPTIONS"]
    assert options == {"connect_timeout": 5, "options": "-c search_path=imagery -c statement_timeout=250"}


@pytest.mark.parametrize("environ", [{"DATABASE_CONNECT_TIMEOUT": "0"}, {"DATABASE_STATEMENT_TIMEOUT": "-1"}])
def test_bad_database_bounds_stop_the_start(tmp_path: Path, environ: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured):
        database(tmp_path, DATABASE_URL=POSTGRES, **environ)


def test_manage_py_leaves_an_operators_commands_unbounded() -> None:
    source = (Path(__file__).resolve().parents[1] / "manage.py").read_text()
    assert 'os.environ.setdefault("DATABASE_STATEMENT_TIMEOUT", "0")' in source


@pytest.fixture
def images_table_locked(db: None) -> Any:
    """Another session holds an exclusive lock on the images table (a migration, a long maintenance job)."""
    if connection.vendor != "postgresql":
        pytest.skip("the statement bound is PostgreSQL's")
    settings = connection.settings_dict
    locker = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    locker.execute("LOCK TABLE images_image IN ACCESS EXCLUSIVE MODE")
    yield
    locker.rollback()
    locker.close()


@pytest.mark.django_db(transaction=True)
def test_a_statement_waiting_on_a_lock_is_cancelled_at_the_bound(
    images_table_locked: None, tmp_path: Path
) -> None:
    environ = {"DATABASE_URL": "postgres://localhost/x", "DATABASE_STATEMENT_TIMEOUT": "0.2"}
    bounded = DatabaseWrapper(
        {**connection.settings_dict, "OPTIONS": database(tmp_path, **environ)["OPTIONS"]}
    )
    try:
        with pytest.raises(OperationalError, match="statement timeout"), bounded.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM images_image")
    finally:
        bounded.close()


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_503_while_the_images_table_is_locked(api: Any, images_table_locked: None) -> None:
    # `api` first: its check of rows and files runs after the lock is gone.
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 200")  # this test's own connection, as the setting makes it
    try:
        assert_problem(api.get("/images/1"), 503, "database_unavailable")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
