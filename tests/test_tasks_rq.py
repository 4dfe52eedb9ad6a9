"""TASK_BACKEND=rq: the same tasks on RQ, against the Redis on 127.0.0.1:6379 (database 7, this file's own;
skipped when Redis does not answer). An RQ worker in burst mode runs them here, in this process."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.test import Client

from config.tasks import tasks_from_env
from tests.conftest import name_of, stored_names
from tests.images import quadrants

pytestmark = pytest.mark.django_db(transaction=True)

RQ_TEST_URL = os.environ.get("IMAGERY_TEST_RQ_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture
def rq_queue(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Tasks go to RQ in the test Redis (settings built as settings.py builds them), its database emptied."""
    client = redis.Redis.from_url(RQ_TEST_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis answers at {RQ_TEST_URL} ({error})")
    client.flushdb()
    monkeypatch.setenv("TASK_BACKEND", "rq")
    monkeypatch.setenv("TASK_REDIS_URL", RQ_TEST_URL)
    built = tasks_from_env()
    settings.TASK_BACKEND, settings.TASKS, settings.RQ_QUEUES = built.backend, built.tasks, built.rq_queues
    import django_rq

    yield django_rq.get_queue("default")
    client.flushdb()
    client.close()


def run_rq_worker(queue: Any) -> None:
    """An RQ worker in burst mode: every queued job, in this process (SimpleWorker: no fork), then return."""
    from django_tasks_rq.backend import Job
    from rq.worker import SimpleWorker

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker([queue], connection=queue.connection, job_class=Job).work(burst=True)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def renditions_of(body: dict[str, Any]) -> list[str]:
    digest = name_of(body).rsplit("/", 1)[-1].split(".")[0]
    return [name for name in stored_names() if f"renditions/{digest}/" in name]


def test_an_eager_render_runs_on_an_rq_worker(
    api: Client, posted: Callable[..., Any], rq_queue: Any, settings: Any
) -> None:
    settings.IMAGE_EAGER_PRESETS = ["thumb"]
    body = posted(quadrants((400, 200)))
    assert renditions_of(body) == []
    assert rq_queue.count == 1
    queue_report = api.get("/readyz").json()["reports"]["queue"]
    assert (queue_report["status"], queue_report["depth"]) == ("ok", 1)
    run_rq_worker(rq_queue)
    assert sorted(n.rsplit(".", 1)[-1] for n in renditions_of(body)) == ["png", "webp"]
    assert rq_queue.count == 0
    assert api.get("/readyz").json()["reports"]["queue"]["depth"] == 0
    # The first view is the stored file.
    response = api.get(f"/images/{body['id']}/file?preset=thumb")
    assert response.status_code == 200


def test_a_delete_s_renditions_go_on_an_rq_worker(
    api: Client, posted: Callable[..., Any], rq_queue: Any
) -> None:
    body = posted(quadrants((400, 200)))
    assert api.get(f"/images/{body['id']}/file?width=100").status_code == 200
    assert api.delete(f"/images/{body['id']}").status_code == 204
    assert len(renditions_of(body)) == 1
    run_rq_worker(rq_queue)
    assert stored_names() == []


def test_a_redis_that_does_not_answer_is_reported_without_a_500(
    api: Client, settings: Any, rq_queue: Any
) -> None:
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/7"}}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["reports"]["queue"] == {"status": "unavailable"}


def test_the_task_redis_is_bounded_by_redis_timeout(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every upload enqueues after its commit: a task Redis that hangs must fail within REDIS_TIMEOUT, as the
    cache's does (config/caches.py), not hold each request for redis-py's default 5 s per call."""
    monkeypatch.setenv("TASK_BACKEND", "rq")
    monkeypatch.setenv("TASK_REDIS_URL", "redis://queue.invalid:6379/7")
    monkeypatch.setenv("REDIS_TIMEOUT", "0.2")
    built = tasks_from_env()
    settings.RQ_QUEUES = built.rq_queues
    import django_rq

    options = django_rq.get_connection("default").connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.2, 0.2)
    assert options["db"] == 7
    # Timeouts the URL gives itself are kept.
    monkeypatch.setenv("TASK_REDIS_URL", "redis://queue.invalid:6379/7?socket_timeout=3")
    settings.RQ_QUEUES = tasks_from_env().rq_queues
    options = django_rq.get_connection("default").connection_pool.connection_kwargs
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (3.0, 0.2)
