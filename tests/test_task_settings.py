"""TASK_BACKEND and its settings (config/tasks.py), as settings.py builds them from the environment."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.tasks import tasks_from_env


def test_the_database_queue_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASK_BACKEND", raising=False)
    monkeypatch.delenv("TASK_WORKER_ID", raising=False)
    built = tasks_from_env()
    assert built.backend == "database"
    assert built.worker_id == socket.gethostname()[:64]
    assert built.tasks == {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
    assert built.apps == ["django_tasks", "django_tasks_db"]
    assert built.rq_queues == {}


def test_rq_takes_its_redis_from_task_redis_url_or_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_BACKEND", "rq")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    monkeypatch.delenv("TASK_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_TIMEOUT", raising=False)
    bounded = "socket_connect_timeout=0.5&socket_timeout=0.5"  # REDIS_TIMEOUT's, as the cache's
    built = tasks_from_env()
    assert built.tasks["default"]["BACKEND"] == "django_tasks_rq.RQBackend"
    assert built.rq_queues == {"default": {"URL": f"redis://cache:6379/0?{bounded}", "DEFAULT_TIMEOUT": 300}}
    assert "django_rq" in built.apps
    monkeypatch.setenv("TASK_REDIS_URL", "redis://queue:6379/1")
    monkeypatch.setenv("TASK_TIMEOUT", "60")
    assert tasks_from_env().rq_queues == {
        "default": {"URL": f"redis://queue:6379/1?{bounded}", "DEFAULT_TIMEOUT": 60}
    }


def test_rq_without_a_redis_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_BACKEND", "rq")
    monkeypatch.delenv("TASK_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ImproperlyConfigured, match="TASK_REDIS_URL"):
        tasks_from_env()


@pytest.mark.parametrize("value", ["celery", "Database", ""])
def test_an_unknown_backend_stops_the_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TASK_BACKEND", value)
    with pytest.raises(ImproperlyConfigured, match="TASK_BACKEND must be one of database, rq, immediate"):
        tasks_from_env()


def test_a_worker_id_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_WORKER_ID", "worker-2")
    assert tasks_from_env().worker_id == "worker-2"
