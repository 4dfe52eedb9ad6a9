"""Liveness (/healthz) and readiness (/readyz): what a load balancer sees when a dependency fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client

# What /readyz reports of the task queue when nothing waits (the tests run tasks where they are enqueued);
# the queue's own numbers: tests/test_tasks.py.
EMPTY_QUEUE = {"queue": {"status": "ok", "depth": 0, "deferred": 0, "oldest_age_seconds": 0.0}}


def test_healthz_is_ok(api: Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_head(api: Client) -> None:
    assert api.head("/healthz").status_code == 200


def test_readyz_is_ok_when_database_and_storage_answer(api: Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "storage": "ok"},
        "reports": EMPTY_QUEUE,
    }


def test_readyz_is_503_when_the_database_fails(api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("connection refused")

    # Undone before the test's transaction is rolled back, which needs a working cursor.
    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", unreachable)
        response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "storage": "ok"},
        "reports": EMPTY_QUEUE,
    }


@pytest.mark.filesystem_only  # S3's failures: tests/test_s3.py
def test_readyz_is_503_when_storage_cannot_be_created(api: Client, settings: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    settings.MEDIA_ROOT = blocker / "media"
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "storage": "unavailable"},
        "reports": EMPTY_QUEUE,
    }
